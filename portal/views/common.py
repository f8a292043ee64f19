"""What every portal view shares: calling a service and saying its refusal, paging, the home page,
and sign-in (accounts.forms.SignInForm: the API's lockout, and the second factor)."""

from collections.abc import Callable
from typing import Any, Final, TypeVar

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.forms import SignInForm
from accounts.models import User
from config.errors import ApplicationError
from portal.errors import describe_with_detail

PAGE_SIZE: Final = 50
T = TypeVar("T")


def attempt(request: HttpRequest, action: Callable[[], T], success: str) -> T | None:
    """Run one service call; on success say `success`, on a refusal say why. None when refused."""
    try:
        result = action()
    except ApplicationError as error:
        messages.error(request, describe_with_detail(error))
        return None
    messages.success(request, success)
    return result


def attempt_with(request: HttpRequest, form: Any, action: Callable[[dict[str, Any]], object], success: str) -> None:
    """A small form posted from a page: when valid, one service call with its cleaned data (said as
    `attempt` says it); when not, what is wrong with it."""
    if form.is_valid():
        attempt(request, lambda: action(form.cleaned_data), success)
    else:
        form_refused(request, form)


def form_refused(request: HttpRequest, form: Any) -> None:
    """Say what is wrong with a small form posted from a list (its own errors, in the person's language)."""
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{label}: {error}" if label else str(error))


def page_of(request: HttpRequest, queryset: QuerySet[Any]) -> Page[Any]:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Back to the page the form was on, if it is ours; else `fallback` (a URL name)."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)
    return redirect(fallback)


def home(request: HttpRequest) -> HttpResponse:
    """Each person's first page: the one their role works from."""
    user = request.user
    if not user.is_authenticated:
        return redirect("portal:login")
    assert isinstance(user, User)
    if user.enterprise_id is not None:
        return redirect("portal:enterprise_home")
    if user.provider_id is not None:
        return redirect("portal:provider_home")
    if user.is_staff_member:
        return redirect("portal:dashboard")
    return redirect("portal:public_awards")


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True


def logout_done(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(reverse("portal:login"))
