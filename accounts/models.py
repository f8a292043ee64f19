"""People and organisations.

`User` is the project's own user model from the first migration, because Django cannot switch to
a custom user model later. Platform roles and organisation membership are added on top of it by
the coupon domain.
"""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person who signs in: platform staff, or a member of an enterprise or a provider."""

    class Meta:
        db_table = "accounts_user"
        verbose_name = "user"
        verbose_name_plural = "users"
