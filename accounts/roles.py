"""Checks of who may act: platform roles and organisation membership. Each raises PermissionDenied."""

from accounts.models import Role, User
from config.errors import NotFound, PermissionDenied


def require_role(user: User, *roles: Role) -> None:
    """The user holds one of `roles` (a superuser holds them all)."""
    if not any(user.has_role(role) for role in roles):
        words = " or ".join(role.value for role in roles)
        raise PermissionDenied(f"This action needs the {words} role.")


def require_superuser(user: User) -> None:
    if not (user.is_active and user.is_superuser):
        raise PermissionDenied("This action needs a superuser.")


def require_enterprise_member(user: User, enterprise_id: int) -> None:
    if not user.is_active or user.enterprise_id != enterprise_id:
        raise PermissionDenied("This action needs a member of the enterprise.")


def require_provider_member(user: User, provider_id: int) -> None:
    if not user.is_active or user.provider_id != provider_id:
        raise PermissionDenied("This action needs a member of the computing center.")


def require_program(user: User, program: str, *, what: str = "") -> None:
    """The user's roles reach the program (slug). Refused as NotFound, like any object out of the
    caller's scope: a staff member limited to other programs is not told that it exists."""
    if not user.acts_in_program(program):
        raise NotFound(f"No {what or 'program ' + repr(program)}.")
