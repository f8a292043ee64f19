"""The project's admin site: Django's, signing in through accounts.signin (the lockout shared with
the portal and the API) with a second-factor code, and open only to a session verified by a code
when the user needs one (what django-otp's OTPAdminSite checks, for users who need a code only)."""

from django.contrib import admin
from django.http import HttpRequest

from accounts.forms import AdminSignInForm
from accounts.models import User
from accounts.second_factor import second_factor_required


def session_verified(request: HttpRequest) -> bool:
    """Whether the signed-in person has given the second factor this session, when they need one."""
    user = request.user
    if not isinstance(user, User):
        return False
    return not second_factor_required(user) or bool(user.is_verified())  # type: ignore[attr-defined]


class CouponsAdminSite(admin.AdminSite):
    login_form = AdminSignInForm
    login_template = "admin/coupons_login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and session_verified(request)
