"""The sign-in forms of the portal and the admin: username, password and, for a user who has a
second factor, its code. Both check through accounts.signin.sign_in_check, so they share the API's
lockout, and neither says which part was wrong."""

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.errors import SignInFailed, SignInThrottled
from accounts.second_factor import CODE_LENGTH_MAX
from accounts.signin import sign_in_check


class SignInForm(AuthenticationForm):
    code = forms.CharField(
        label=_("One-time code"),
        required=False,
        max_length=CODE_LENGTH_MAX,
        strip=True,
        help_text=_("Only if you set up two-step sign-in: the code your authenticator app shows, or a recovery code."),
        # Not inputmode=numeric: a recovery code has letters.
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
    )

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        try:
            signed_in = sign_in_check(
                request=self.request,  # type: ignore[arg-type]
                username=username,
                password=password,
                code=self.cleaned_data.get("code") or "",
                may_enrol=True,
            )
        except SignInThrottled as throttled:
            raise ValidationError(
                gettext("Too many failed sign-ins. Try again in %(seconds)s seconds.") % {"seconds": throttled.wait_s},
                code="throttled",
            ) from None
        except SignInFailed:
            raise ValidationError(
                gettext("The username, password or one-time code is wrong."), code="invalid_login"
            ) from None
        user = signed_in.user
        if signed_in.device is not None:
            # django_otp marks the session verified by this device when Django's login() runs.
            user.otp_device = signed_in.device  # type: ignore[attr-defined]
        self.confirm_login_allowed(user)
        self.user_cache = user
        return self.cleaned_data


class AdminSignInForm(SignInForm, AdminAuthenticationForm):
    """The admin's sign-in: the same check, and Django's own rule that only `is_staff` may enter."""
