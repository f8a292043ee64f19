"""Admin for people and organisations.

Enterprises register, get verified and suspended, and providers are listed, through
`accounts.services`, which check credit codes and who may act; so here organisations are read-only,
except that a superuser may correct an enterprise's or a provider's name. Related parties are added
through the service too. Users keep Django's UserAdmin, which also shows each user's organisation
(set when the user is created, so read-only here) and roles (groups); a superuser may limit a staff
member's roles to programs (`User.programs`, checked by `accounts.services.user_programs_clean`).
"""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.models import Group
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import (
    AccessToken,
    ApiKey,
    Enterprise,
    EnterpriseFlagsEvent,
    Facility,
    ModelFiling,
    Provider,
    ProviderChange,
    RelatedParty,
    Sanction,
    User,
)
from accounts.services import user_programs_clean
from config.errors import ApplicationError
from ledger.admin import ReadOnlyAdmin


def _is_superuser(request: HttpRequest) -> bool:
    return isinstance(request.user, User) and request.user.is_active and request.user.is_superuser


class _ViewOnly:
    """Nothing is added, changed or deleted here: the services do that."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class _OrganisationAdmin(admin.ModelAdmin):
    """Read-only, except that a superuser may correct the name."""

    editable_fields = ("name",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return _is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        fields = [field.name for field in self.model._meta.concrete_fields if not field.primary_key]
        return [name for name in fields if name not in self.editable_fields] + ["members_count"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(members_total=Count("members"))

    @admin.display(description="members", ordering="members_total")
    def members_count(self, organisation: Enterprise | Provider) -> int:
        return int(getattr(organisation, "members_total", 0))


@admin.register(Enterprise)
class EnterpriseAdmin(_OrganisationAdmin):
    list_display = [
        "name",
        "uscc",
        "status",
        "has_registered_model",
        "model_filing_number",
        "foundation_model_developer",
        "small_or_medium",
        "has_registered_model_verified",
        "foundation_model_developer_verified",
        "small_or_medium_verified",
        "members_count",
        "verified_at",
        "created_at",
    ]
    list_filter = ["status", "has_registered_model", "foundation_model_developer", "small_or_medium"]
    search_fields = ["name", "uscc", "model_filing_number"]
    date_hierarchy = "created_at"
    ordering = ["name"]


@admin.register(Provider)
class ProviderAdmin(_OrganisationAdmin):
    list_display = ["name", "uscc", "listing", "status", "members_count", "created_at"]
    list_filter = ["listing", "status"]
    search_fields = ["name", "uscc"]
    ordering = ["name"]


@admin.register(Facility)
class FacilityAdmin(_ViewOnly, admin.ModelAdmin):
    """Facilities change only through an approved provider change (the API or the portal)."""

    list_display = ["provider", "compute_source", "description", "listed_from", "listed_until"]
    list_filter = ["compute_source"]
    search_fields = ["provider__name", "description"]
    list_select_related = ["provider"]


@admin.register(ProviderChange)
class ProviderChangeAdmin(_ViewOnly, admin.ModelAdmin):
    """The insert-only history of listing changes."""

    list_display = ["at", "provider", "kind", "requested_by", "decided_by", "reason"]
    list_filter = ["kind"]
    search_fields = ["provider__name", "reason"]
    list_select_related = ["provider", "requested_by", "decided_by"]
    date_hierarchy = "at"


def _organisation_name(code: OuterRef) -> Coalesce:
    """The name of the enterprise or provider with this credit code, if one is registered."""
    return Coalesce(
        Subquery(Enterprise.objects.filter(uscc=code).values("name")[:1]),
        Subquery(Provider.objects.filter(uscc=code).values("name")[:1]),
    )


@admin.register(RelatedParty)
class RelatedPartyAdmin(_ViewOnly, admin.ModelAdmin):
    list_display = ["uscc_low", "low_name", "uscc_high", "high_name", "note", "created_by", "created_at"]
    search_fields = ["uscc_low", "uscc_high", "note"]
    list_select_related = ["created_by"]
    date_hierarchy = "created_at"
    readonly_fields = ["low_name", "high_name", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RelatedParty]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                low_organisation=_organisation_name(OuterRef("uscc_low")),
                high_organisation=_organisation_name(OuterRef("uscc_high")),
            )
        )

    @admin.display(description="organisation", ordering="low_organisation")
    def low_name(self, party: RelatedParty) -> str:
        return str(getattr(party, "low_organisation", None) or "-")

    @admin.display(description="organisation", ordering="high_organisation")
    def high_name(self, party: RelatedParty) -> str:
        return str(getattr(party, "high_organisation", None) or "-")


# A role is a group's name: renaming or deleting a group would grant or take away roles without the
# two superusers a role grant needs (found from outside: one superuser renamed "auditor" to "finance"
# and decided their own payment with an account holding it). Groups are shown, never changed here.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(ReadOnlyAdmin):
    list_display = ["name"]
    search_fields = ["name"]


class UserChangeForm(DjangoUserChangeForm):
    def clean_programs(self) -> list[str]:
        """The same checks as the API (`PUT /users/{id}/programs/`): known slugs, staff only."""
        try:
            return user_programs_clean(user=self.instance, programs=list(self.cleaned_data.get("programs") or []))
        except ApplicationError as error:
            raise forms.ValidationError(error.detail) from error


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    list_display = [
        "username",
        "email",
        "enterprise",
        "provider",
        "role_names",
        "programs",
        "is_staff",
        "is_superuser",
        "is_active",
        "last_login",
    ]
    list_filter = [
        "is_superuser",
        "is_staff",
        "is_active",
        "groups",
        ("enterprise", admin.RelatedOnlyFieldListFilter),
        ("provider", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["enterprise", "provider"]
    search_fields = ["username", "first_name", "last_name", "email", "enterprise__name", "provider__name"]
    # Membership is fixed when accounts.services creates the user: shown, not edited.
    # The programs a staff member's roles are limited to (empty: every program): shown, set through
    # PUT /api/v1/users/{id}/programs/, where widening waits for a second superuser.
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Organisation", {"fields": ("enterprise", "provider")}),
        ("Programs", {"fields": ("programs",)}),
    )
    # Roles are granted by two people (POST /api/v1/users/ and an approved `role_grant` request), never
    # by one superuser here: groups, permissions and the superuser flag are shown, not edited.
    readonly_fields = ["enterprise", "provider", "groups", "user_permissions", "is_superuser", "is_staff", "programs"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def role_names(self, user: User) -> str:
        return ", ".join(sorted(group.name for group in user.groups.all()))


@admin.register(AccessToken)
class AccessTokenAdmin(ReadOnlyAdmin):
    """Bearer tokens: who holds one, until when. Only a prefix is shown; the secret is never stored."""

    list_display = ["prefix", "user", "created_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "prefix"]
    list_select_related = ["user"]
    exclude = ["key_hash"]


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Computing centers' machine credentials. Created and revoked through the API only."""

    list_display = ["name", "prefix", "provider", "created_by", "created_at", "revoked_at"]
    list_filter = ["revoked_at", "provider"]
    search_fields = ["name", "prefix", "provider__name"]
    list_select_related = ["provider", "created_by"]
    exclude = ["key_hash"]


@admin.register(EnterpriseFlagsEvent)
class EnterpriseFlagsEventAdmin(ReadOnlyAdmin):
    """Who declared and who confirmed which flags of an enterprise, and when (insert-only)."""

    list_display = ["enterprise", "action", "flags", "actor", "at"]
    list_filter = ["action"]
    search_fields = ["enterprise__name", "enterprise__uscc", "actor__username"]
    list_select_related = ["enterprise", "actor"]


@admin.register(ModelFiling)
class ModelFilingAdmin(ReadOnlyAdmin):
    """The register of filed models; reviewers record and verify through the API or the portal."""

    list_display = [
        "filing_number",
        "model_name",
        "holder_name",
        "holder_uscc",
        "recorded_by",
        "verified_by",
        "verified_at",
    ]
    list_filter = ["verified_at"]
    search_fields = ["filing_number", "model_name", "holder_name", "holder_uscc"]
    list_select_related = ["recorded_by", "verified_by"]


@admin.register(Sanction)
class SanctionAdmin(ReadOnlyAdmin):
    """Organisations excluded from the program for a period; set under four eyes, never edited."""

    list_display = ["uscc", "valid_from", "valid_until", "reason", "requested_by", "decided_by", "created_at"]
    list_filter = ["valid_from"]
    search_fields = ["uscc", "reason"]
    list_select_related = ["requested_by", "decided_by"]


# Second-factor devices hold their users' TOTP keys and recovery codes: no one reads them here. An
# administrator resets a colleague's second factor with `manage.py reset_second_factor USERNAME`.
# (django_otp's apps come before this one in INSTALLED_APPS, so their admins are registered by now.)
admin.site.unregister(TOTPDevice)
admin.site.unregister(StaticDevice)
