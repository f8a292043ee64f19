"""`caller(request)`: the signed-in person behind a portal or API request, typed as a `User`."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from rest_framework.request import Request

from accounts.caller import caller
from accounts.errors import NotAuthenticated
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_caller_is_the_signed_in_user_of_a_portal_or_an_api_request():
    user = UserFactory()
    request = RequestFactory().get("/")
    request.user = user
    assert caller(request) is user
    api_request = Request(RequestFactory().get("/"))
    api_request.user = user
    assert caller(api_request) is user


def test_no_one_signed_in_is_refused_as_not_authenticated():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    with pytest.raises(NotAuthenticated) as refused:
        caller(request)
    assert (refused.value.code, refused.value.http_status) == ("not_authenticated", 401)
