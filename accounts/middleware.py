"""Holds a session signed in with the password alone to what it may do until a code is given.

After django_otp's OTPMiddleware (which says whether the session was verified by a device). For a
signed-in person who needs a second factor (accounts.second_factor.second_factor_required) and whose
session was not verified by one:
- if they have an authenticator (they enrolled after this session began), the session ends and they
  sign in again with a code;
- if they have none (staff where staff must have one), only the enrolment page, sign-out, the
  language switch and static files open; every other page sends them to enrolment, and the API
  answers 403 `permission_denied`.
"""

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts.models import User
from accounts.second_factor import second_factor_enrolled, second_factor_required
from api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE
from config.errors import ErrorCode

API_PREFIX = "/api/"


def _problem(status: int, code: ErrorCode, title: str, detail: str) -> JsonResponse:
    """The API's problem details (api.problems), answered before DRF sees the request."""
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "detail": detail, "code": code}
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


class SecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def _open_while_enrolling(self, path: str) -> bool:
        open_paths = (reverse("portal:second_factor"), reverse("portal:logout"), "/i18n/", "/" + settings.STATIC_URL)
        return path.startswith(open_paths)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            isinstance(user, User)
            and user.is_authenticated
            and not user.is_verified()  # type: ignore[attr-defined]
            and second_factor_required(user)
        ):
            if second_factor_enrolled(user):
                logout(request)
                if request.path.startswith(API_PREFIX):
                    return _problem(401, ErrorCode.NOT_AUTHENTICATED, "Authentication is required.", "Sign in again.")
                return redirect(settings.LOGIN_URL)
            if not self._open_while_enrolling(request.path):
                if request.path.startswith(API_PREFIX):
                    return _problem(
                        403,
                        ErrorCode.PERMISSION_DENIED,
                        "You may not take this action.",
                        "Set up two-step sign-in in the portal first.",
                    )
                return redirect("portal:second_factor")
        return self.get_response(request)
