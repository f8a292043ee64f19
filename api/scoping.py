"""Querysets scoped to the caller before any lookup: another organisation's object is a 404."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from accounts.models import User

M = TypeVar("M", bound=Model)


def staff_only(queryset: QuerySet[M], user: User) -> QuerySet[M]:
    """The fund's internal records (sanctions, the model-filing register, approval requests): every
    active member of staff sees them; members of organisations see none, so each is a 404 to them."""
    return queryset if user.is_staff_member else queryset.none()


class ScopedQuerysetMixin:
    """For generic views: `scope(user)` gives the caller's queryset; schema generation gets none."""

    scoped_model: type[Model]
    scope: Callable[[Any], QuerySet[Any]]

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.scoped_model._default_manager.none()
        return type(self).scope(self.request.user)  # type: ignore[attr-defined]
