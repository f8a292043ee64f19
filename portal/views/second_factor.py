"""Two-step sign-in: a signed-in person sets up an authenticator app (TOTP) and gets recovery codes.

Staff who must have one are sent here right after the password and reach nothing else until they
have confirmed a first code (accounts.middleware.SecondFactorMiddleware); others may choose to."""

from django import forms
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login

from accounts.models import User
from accounts.second_factor import (
    second_factor_enrol_begin,
    second_factor_enrol_confirm,
    second_factor_enrolled,
    second_factor_required,
    totp_secret,
)
from config.errors import InvalidState, ValidationFailed
from portal.errors import describe_with_detail


class FirstCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from the app"),
        max_length=6,
        min_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


@never_cache
@login_required(redirect_field_name=REDIRECT_FIELD_NAME)
def second_factor(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    if second_factor_enrolled(user):
        return render(request, "portal/second_factor.html", {"enrolled": True})
    form = FirstCodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            device, codes = second_factor_enrol_confirm(user=user, code=form.cleaned_data["code"])
        except ValidationFailed:
            form.add_error("code", gettext("The code is wrong or too old; enter the code the app shows now."))
        except InvalidState as error:
            form.add_error(None, describe_with_detail(error))
        else:
            # A new session key for the session that has now shown both factors.
            request.session.cycle_key()
            otp_login(request, device)
            return render(request, "portal/second_factor_codes.html", {"codes": codes})
    device = second_factor_enrol_begin(user=user)
    context = {
        "form": form,
        "required": second_factor_required(user),
        "uri": device.config_url,
        "secret": totp_secret(device),
    }
    return render(request, "portal/second_factor.html", context)
