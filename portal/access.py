"""Who may open a portal page. Each guard signs people in first, then answers 403 for the wrong role.

The services check roles again on every write; these guards only keep pages from being shown to
people who could not use them. Objects are looked up through the same scoping as the API
(`coupons.selectors.scopes`), so another organisation's object is a 404, never a 403.
"""

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.models import Role, User

P = ParamSpec("P")
View = Callable[..., HttpResponse]


def _guard(allowed: Callable[[User], bool]) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            assert isinstance(user, User)
            if not allowed(user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def signed_in(view: View) -> View:
    return _guard(lambda user: user.is_active)(view)


def enterprise_member(view: View) -> View:
    return _guard(lambda user: user.is_active and user.enterprise_id is not None)(view)


def provider_member(view: View) -> View:
    return _guard(lambda user: user.is_active and user.provider_id is not None)(view)


def staff(view: View) -> View:
    return _guard(lambda user: user.is_staff_member)(view)


def superuser(view: View) -> View:
    return _guard(lambda user: user.is_active and user.is_superuser)(view)


def role(*roles: Role) -> Callable[[View], View]:
    return _guard(lambda user: any(user.has_role(each) for each in roles))


def role_in_every_program(*roles: Role) -> Callable[[View], View]:
    """One of `roles`, reaching every program (`User.programs` empty): for pages that span every
    program, such as the audits (an audit run checks every program year's books at once)."""
    return _guard(lambda user: any(user.has_role(each) for each in roles) and user.program_limit is None)
