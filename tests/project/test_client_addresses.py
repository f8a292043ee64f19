"""The client's address behind proxies (config/addresses.py): the sign-in lockout, the security log
and the throttles all see the address the outermost trusted proxy saw, and believe no
X-Forwarded-For entry a client could have written."""

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from accounts.authentication import client_address as logged_address
from accounts.signin import lockout_address
from api.throttles import AnonThrottle
from config.addresses import client_address

PROXY = "172.18.0.5"  # What REMOTE_ADDR is behind the compose file's nginx.


def request_from(forwarded: str | None):
    headers = {"REMOTE_ADDR": PROXY}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/api/v1/ping/", **headers)


def addresses(request) -> set[str | None]:
    """The address as each user of it reads it: they must agree."""
    return {
        client_address(request),
        lockout_address(request),
        logged_address(request),
        AnonThrottle().get_ident(Request(request)),
    }


@pytest.mark.parametrize(
    ("trusted", "forwarded", "seen"),
    [
        (0, None, PROXY),
        (0, "203.0.113.7", PROXY),  # No proxy trusted: the header is anybody's, ignored.
        (1, "203.0.113.7", "203.0.113.7"),  # nginx appended what it saw.
        (1, "10.0.0.1, 203.0.113.7", "203.0.113.7"),  # The client wrote the first entry itself.
        (2, "203.0.113.7, 10.1.2.3", "203.0.113.7"),  # Two proxies, each appending.
        (2, "203.0.113.7", "203.0.113.7"),  # Fewer entries than proxies: the leftmost.
        (1, None, PROXY),  # Straight to the process, past the proxy.
    ],
)
def test_every_reader_of_the_client_address_sees_the_same_one(settings, trusted, forwarded, seen):
    settings.TRUSTED_PROXIES = trusted
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": trusted}

    assert addresses(request_from(forwarded)) == {seen}
