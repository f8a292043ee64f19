"""Who is asking: the person behind a portal or API request, typed as a `User`.

Views call `caller(request)` instead of reading `request.user`, which Django and DRF type as a user
that may be anonymous. The views' guards (`portal/access.py`, the API's permission classes) let only
signed-in people through, so the refusal here is a backstop, never the first check.
"""

from django.http import HttpRequest
from rest_framework.request import Request

from accounts.errors import NotAuthenticated
from accounts.models import User


def caller(request: HttpRequest | Request) -> User:
    """The signed-in user making `request` (for an API key, the key's user); `NotAuthenticated`
    (401 `not_authenticated`) when no one is signed in."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user
