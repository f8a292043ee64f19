"""People and organisations.

`User` is the project's own user model from the first migration, because Django cannot switch to
a custom user model later. A user is either platform staff, holding roles (`reviewer`,
`approver`, `finance`, `auditor`, as Django groups; a superuser holds every role; `programs` may
limit a staff member's roles to some programs, docs/programs.md), or a member of exactly one
organisation: an `Enterprise` that applies for coupons, or a `Provider` (an
intelligent computing center) that redeems them. Both organisations carry a unified social credit
code validated by its GB 32100-2015 check character. `RelatedParty` is the administrators' list
of pairs of codes that may not deal with each other under the program.

A provider's `Facility` rows say what it offers and when: a compute source (`ComputeSource`, the
one list of those words, which `coupons` imports from here) and a listing window of dates. A
provider takes part on a day when it is active and at least one facility's window covers the day
(`Provider.takes_part_on`); an application's compute source must be one it offers that day.
`ProviderChange` is the insert-only history of every change to a provider's status, listing or
facilities: who requested it, who decided it, when, and the provider before and after.
Eligibility rests on what staff checked, not on what an enterprise declares: each declared flag
(`has_registered_model`, `foundation_model_developer`, `small_or_medium`) has a `*_verified`
twin set by a reviewer, and a flag counts only when both are true; `EnterpriseFlagsEvent` is the
insert-only history of who declared and who verified which flags, when. `ModelFiling` is the
staff's register of filed (经备案) models that an application may rely on. `Sanction` lists
organisations (by credit code) excluded from the program for a period, set under four eyes.
"""

import datetime as dt
import unicodedata
from typing import Any, Final
from zoneinfo import ZoneInfo

import pgtrigger
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy

from accounts.uscc import validate_uscc

# The program's days are Beijing days: a listing window covers whole days in Asia/Shanghai. (The
# same zone as the program years in `coupons`, which this app may not import.)
LISTING_TIME_ZONE: Final = ZoneInfo("Asia/Shanghai")
# A staff member's program limit names programs by slug (`coupons.models.PROGRAM_SLUG_LENGTH_MAX`, which
# this app may not import) and names at most this many of them.
USER_PROGRAM_SLUG_LENGTH_MAX: Final = 24
USER_PROGRAMS_COUNT_MAX: Final = 50
FACILITY_DESCRIPTION_LENGTH_MAX: Final = 500


def listing_day(moment: dt.datetime | None = None) -> dt.date:
    """The program's day (Asia/Shanghai) of a moment, by default now."""
    return timezone.localtime(moment or timezone.now(), LISTING_TIME_ZONE).date()


class ComputeSource(models.TextChoices):
    """Where a contract's compute comes from. A provider's facilities offer them; applications name one."""

    DOMESTIC = "domestic", "domestic (国产) compute"
    OTHER = "other", "other compute"


class Role(models.TextChoices):
    REVIEWER = "reviewer", "reviewer"
    APPROVER = "approver", "approver"
    FINANCE = "finance", "finance"
    AUDITOR = "auditor", "auditor"


class Enterprise(models.Model):
    """An AI enterprise that applies for coupons."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending verification"
        VERIFIED = "verified", "verified"
        SUSPENDED = "suspended", "suspended"

    name = models.CharField(max_length=200)
    uscc = models.CharField("unified social credit code", max_length=18, unique=True, validators=[validate_uscc])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    has_registered_model = models.BooleanField(
        default=False, help_text="Owns a generative multimodal foundation model filed with the CAC (经备案)."
    )
    model_filing_number = models.CharField(max_length=100, blank=True)
    foundation_model_developer = models.BooleanField(
        default=False, help_text="Develops a large foundation model: may be granted a relaxed cap."
    )
    small_or_medium = models.BooleanField(
        default=False, help_text="A small or medium enterprise (the June 2025 revision rates them differently)."
    )
    # What staff confirmed of the declared flags. A declared flag counts only when confirmed;
    # changing a declared flag clears its confirmation until staff verify it again.
    has_registered_model_verified = models.BooleanField(default=False)
    foundation_model_developer_verified = models.BooleanField(default=False)
    small_or_medium_verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(has_registered_model=False) | ~Q(model_filing_number=""),
                name="accounts_enterprise_registered_model_has_filing_number",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "verified", "suspended"]), name="accounts_enterprise_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def flag_counts(self, flag: str) -> bool:
        """A flag counts only when the enterprise declared it and staff confirmed it."""
        assert flag in ENTERPRISE_FLAGS, flag
        return bool(getattr(self, flag)) and bool(getattr(self, f"{flag}_verified"))


RELATED_PARTY_NOTE_LENGTH_MAX: Final = 500  # A column of its own, shorter than a written reason.
ENTERPRISE_FLAGS = ("has_registered_model", "foundation_model_developer", "small_or_medium")


class EnterpriseFlagsEvent(models.Model):
    """One declaration or verification of an enterprise's flags: who, when, which flags, what values.

    Insert-only (a trigger refuses UPDATE and DELETE): it is the record of who vouched for what.
    """

    class Action(models.TextChoices):
        DECLARED = "declared", "declared by the enterprise"
        VERIFIED = "verified", "verified by staff"

    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="flags_events")
    action = models.CharField(max_length=16, choices=Action.choices)
    flags = models.JSONField(help_text='The flags set in this event: {"small_or_medium": true, ...}.')
    actor = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["declared", "verified"]), name="accounts_flags_event_action_valid"
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="enterprise_flags_event_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)
        ]

    def __str__(self) -> str:
        return f"{self.enterprise_id} {self.action} {self.flags} by {self.actor_id}"


class ModelFiling(models.Model):
    """A generative model filed with the CAC (经备案), in the staff's register.

    A reviewer records a filing and verifies it against the public filing list; only a verified
    filing gives an application the registered-model rate. The filing certificate will be a
    document (kind `filing_certificate`) once documents exist: it belongs here, beside the number.
    """

    filing_number = models.CharField(max_length=100, unique=True)
    model_name = models.CharField(max_length=200)
    holder_name = models.CharField(max_length=200, help_text="Who filed the model (an enterprise or a third party).")
    holder_uscc = models.CharField(max_length=18, blank=True, validators=[validate_uscc])
    recorded_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    verified_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(verified_by__isnull=True, verified_at__isnull=True)
                | Q(verified_by__isnull=False, verified_at__isnull=False),
                name="accounts_model_filing_verified_by_and_at",
            ),
            models.CheckConstraint(condition=~Q(filing_number=""), name="accounts_model_filing_has_number"),
            # Four eyes: a verified filing raises an application's rate, so its recorder never verifies it.
            models.CheckConstraint(
                condition=Q(verified_by__isnull=True) | ~Q(verified_by=F("recorded_by")),
                name="accounts_model_filing_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filing_number} ({self.model_name})"

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None


class Sanction(models.Model):
    """An organisation (by credit code) excluded from the program from one day to another.

    Set under four eyes: requested by a reviewer or an approver, decided by a different approver
    (a CHECK constraint too). `valid_until` is inclusive; empty means until further notice.
    """

    uscc = models.CharField(max_length=18, validators=[validate_uscc], db_index=True)
    reason = models.TextField()
    valid_from = models.DateField()
    valid_until = models.DateField(null=True, blank=True)
    requested_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="accounts_sanction_has_reason"),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gte=F("valid_from")),
                name="accounts_sanction_period_ordered",
            ),
            models.CheckConstraint(condition=~Q(requested_by=F("decided_by")), name="accounts_sanction_four_eyes"),
        ]
        triggers = [pgtrigger.Protect(name="sanction_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        until = self.valid_until.isoformat() if self.valid_until else "…"
        return f"{self.uscc} {self.valid_from.isoformat()}–{until}"


class Provider(models.Model):
    """An intelligent computing center listed by the city, where coupons are spent."""

    class Listing(models.TextChoices):
        PLANNING_LAYOUT = "planning_layout", "in the planning layout"
        MATCHED_PARTNER = "matched_partner", "compute-matching partner (算力撮合)"

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        SUSPENDED = "suspended", "suspended"

    name = models.CharField(max_length=200)
    uscc = models.CharField("unified social credit code", max_length=18, unique=True, validators=[validate_uscc])
    listing = models.CharField(max_length=20, choices=Listing.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(listing__in=["planning_layout", "matched_partner"]), name="accounts_provider_listing_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended"]), name="accounts_provider_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def takes_part(self) -> bool:
        """Active and listed: the provider's standing, whatever the day (see `takes_part_on`)."""
        return self.status == self.Status.ACTIVE and self.listing in self.Listing.values

    def facilities_on(self, day: dt.date) -> "models.QuerySet[Facility]":
        """The facilities whose listing window covers `day`."""
        return self.facilities.filter(Q(listed_until__isnull=True) | Q(listed_until__gte=day), listed_from__lte=day)

    def takes_part_on(self, day: dt.date) -> bool:
        """The one rule of who takes part on a day: an active, listed provider with at least one
        facility listed that day. Submission, confirmation, approval and redemption all ask it."""
        return self.takes_part and self.facilities_on(day).exists()

    def offers_on(self, compute_source: str, day: dt.date) -> bool:
        """Whether the provider takes part on `day` with a facility of this compute source."""
        return self.takes_part and self.facilities_on(day).filter(compute_source=compute_source).exists()


class Facility(models.Model):
    """What a computing center offers, and the days it is listed for it (both ends included).

    A provider's facilities are replaced as a whole when they change (through an approved
    provider change); the history of what they were is in `ProviderChange`.
    """

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="facilities")
    compute_source = models.CharField(max_length=16, choices=ComputeSource.choices)
    description = models.CharField(max_length=FACILITY_DESCRIPTION_LENGTH_MAX)
    listed_from = models.DateField()
    listed_until = models.DateField(
        null=True, blank=True, help_text="The last day listed; empty: until further notice."
    )

    class Meta:
        verbose_name_plural = "facilities"
        ordering = ["listed_from", "compute_source", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(compute_source__in=ComputeSource.values), name="accounts_facility_compute_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(listed_until__isnull=True) | Q(listed_until__gte=F("listed_from")),
                name="accounts_facility_window_ordered",
            ),
            models.CheckConstraint(condition=~Q(description=""), name="accounts_facility_description_given"),
        ]
        indexes = [models.Index(fields=["provider", "listed_from"], name="accounts_facility_window")]

    def __str__(self) -> str:
        until = self.listed_until.isoformat() if self.listed_until else "…"
        return f"{self.compute_source}: {self.description} ({self.listed_from.isoformat()} – {until})"


class ProviderChange(models.Model):
    """One change to a provider's status, listing or facilities. Insert-only (a trigger refuses
    UPDATE and DELETE), so it is the audit trail of when each center was listed for what.

    `kind` says how the change was made: `listed` when a superuser lists the center (they both ask
    and decide); `changed` when a superuser asked and someone else approved (a CHECK holds the two
    people apart); `migrated` for the facilities the migration gave the centers that existed
    before facilities were recorded (no person).
    """

    class Kind(models.TextChoices):
        LISTED = "listed", "listed"
        CHANGED = "changed", "changed"
        MIGRATED = "migrated", "migrated"

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="changes")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    requested_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    decided_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True, help_text="The provider's status, listing and facilities before.")
    after = models.JSONField(help_text="The provider's status, listing and facilities after.")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="listed", requested_by__isnull=False, decided_by=F("requested_by"))
                    | (
                        Q(kind="changed", requested_by__isnull=False, decided_by__isnull=False)
                        & ~Q(decided_by=F("requested_by"))
                    )
                    | Q(kind="migrated", requested_by__isnull=True, decided_by__isnull=True)
                ),
                name="accounts_provider_change_people",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="provider_change_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.provider_id} at {self.at:%Y-%m-%d %H:%M}"


class RelatedParty(models.Model):
    """Two organisations (by credit code) that the administrators list as related parties.

    Stored with the smaller code first, so each pair is listed once.
    """

    uscc_low = models.CharField(max_length=18, validators=[validate_uscc])
    uscc_high = models.CharField(max_length=18, validators=[validate_uscc])
    note = models.CharField(max_length=RELATED_PARTY_NOTE_LENGTH_MAX, blank=True)
    created_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "related parties"
        constraints = [
            models.UniqueConstraint(fields=["uscc_low", "uscc_high"], name="accounts_related_party_once"),
            models.CheckConstraint(condition=Q(uscc_low__lt=F("uscc_high")), name="accounts_related_party_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.uscc_low} ~ {self.uscc_high}"


# Usernames: histories, approval requests and the portal show them, so none may pass for another.
# A username is NFKC-normalised (`ａｄｍｉｎ` is `admin`), holds only ASCII letters, digits and
# @ . + - _ (so no Cyrillic `а` for `a`), and is unique whatever its case, in the database too.
USERNAME_LENGTH_MAX: Final = 150
USERNAME_PATTERN: Final = r"^[A-Za-z0-9@.+_-]+$"  # What ASCIIUsernameValidator takes, for PostgreSQL.


def username_normal(username: str) -> str:
    """The username as kept: NFKC-normalised, as Django's forms and `createsuperuser` do."""
    return unicodedata.normalize("NFKC", username)


def username_key(username: str) -> str:
    """One key per account however its username is written (case, width): what sign-in counts by."""
    return username_normal(username).lower()


class UsernameValidator(ASCIIUsernameValidator):
    message = gettext_lazy(
        "A username holds only ASCII letters (a-z, A-Z), digits and @ . + - _: "
        "no accented or other letters, and no spaces."
    )


class UserManager(DjangoUserManager["User"]):
    def get_by_natural_key(self, username: Any) -> "User":
        """The user signing in (ModelBackend) or named to `createsuperuser`: usernames differ by more
        than case or width. Only an ASCII username finds anyone, so no other letter (a dotless ı,
        which PostgreSQL's UPPER makes I) finds an account under a lockout key of its own."""
        if not isinstance(username, str):
            raise self.model.DoesNotExist
        username = username_normal(username)
        if not username.isascii():
            raise self.model.DoesNotExist
        return self.get(username__iexact=username)


class User(AbstractUser):
    """A person who signs in: platform staff with roles, or a member of one organisation."""

    username_validator = UsernameValidator()  # type: ignore[assignment]  # ASCII, not the Unicode one
    # AbstractUser's field, with ASCIIUsernameValidator's rule in place of the Unicode one (the
    # texts but the validator's message are Django's own, so they keep their translations).
    username = models.CharField(
        gettext_lazy("username"),
        max_length=USERNAME_LENGTH_MAX,
        unique=True,
        help_text=gettext_lazy("Required. 150 characters or fewer. Letters, digits and @/./+/-/_ only."),
        validators=[username_validator],
        error_messages={"unique": gettext_lazy("A user with that username already exists.")},
    )
    objects = UserManager()  # type: ignore[misc]

    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, null=True, blank=True, related_name="members")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, null=True, blank=True, related_name="members")
    receives_alerts = models.BooleanField(
        default=False, help_text="Mail this person the program's alerts (pool and cap thresholds, failed audits)."
    )
    # The programs (by slug) a staff member's roles are limited to; empty: every program. A list of
    # slugs, not a foreign key, because programs belong to `coupons`, which this app may not import
    # (docs/architecture.md); `coupons.services.staff.user_programs_set` checks each slug names a
    # program, and a slug that named none would only narrow what the person sees.
    programs = ArrayField(
        models.SlugField(max_length=USER_PROGRAM_SLUG_LENGTH_MAX),
        default=list,
        blank=True,
        help_text="The programs this staff member's roles are limited to (slugs); empty: every program.",
    )

    class Meta:
        db_table = "accounts_user"
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            # `Admin` and `ADMIN` are `admin` (accounts/migrations/0012 refused to add this over clashes).
            models.UniqueConstraint(
                Upper("username"),
                name="accounts_user_username_upper_unique",
                violation_error_message=gettext_lazy("A user with that username already exists."),
            ),
            models.CheckConstraint(condition=Q(username__regex=USERNAME_PATTERN), name="accounts_user_username_ascii"),
            models.CheckConstraint(
                condition=Q(enterprise__isnull=True) | Q(provider__isnull=True),
                name="accounts_user_one_organisation_at_most",
            ),
            # A superuser holds every platform role, so it may not also speak for an organisation.
            models.CheckConstraint(
                condition=Q(is_superuser=False) | Q(enterprise__isnull=True, provider__isnull=True),
                name="accounts_user_superuser_has_no_organisation",
            ),
            # Only staff are limited to programs: a superuser holds every role in every program, and a
            # member of an organisation sees what names its organisation, whatever the program.
            models.CheckConstraint(
                condition=Q(programs=[]) | Q(is_superuser=False, enterprise__isnull=True, provider__isnull=True),
                name="accounts_user_programs_only_for_staff",
            ),
            models.CheckConstraint(
                condition=Q(programs__len__lte=USER_PROGRAMS_COUNT_MAX), name="accounts_user_programs_count"
            ),
        ]
        triggers = [
            # A changed password revokes every bearer token issued before, whatever path changed it
            # (the portal, the admin, a service, a command, SQL). A rehash of the same password
            # after an upgrade of the hasher counts as a change too: the user signs in again.
            pgtrigger.Trigger(
                name="password_change_revokes_tokens",
                operation=pgtrigger.Update,
                when=pgtrigger.After,
                condition=pgtrigger.Q(old__password__df=pgtrigger.F("new__password")),
                func=(
                    "UPDATE accounts_accesstoken SET revoked_at = now() "
                    "WHERE user_id = NEW.id AND revoked_at IS NULL; RETURN NULL;"
                ),
            ),
        ]

    def has_role(self, role: Role) -> bool:
        """Whether this user holds a platform role. Members of organisations hold none."""
        if not self.is_active or self.enterprise_id is not None or self.provider_id is not None:
            return False
        if self.is_superuser:
            return True
        return role in self._group_names

    @cached_property
    def _group_names(self) -> frozenset[str]:
        """The user's groups, read once per request (a user object lives for one request)."""
        return frozenset(self.groups.values_list("name", flat=True))

    @property
    def roles(self) -> list[str]:
        return [role.value for role in Role if self.has_role(role)]

    @property
    def is_staff_member(self) -> bool:
        """Platform staff: a superuser or a holder of any role."""
        return self.is_active and (self.is_superuser or bool(self.roles))

    @property
    def program_limit(self) -> frozenset[str] | None:
        """The programs (slugs) this person's roles are limited to; None: every program (a superuser,
        or staff with no limit). Members of organisations are never limited by program."""
        if self.is_superuser or not self.programs:
            return None
        return frozenset(self.programs)

    def acts_in_program(self, program: str) -> bool:
        """Whether this person's roles reach the program named by its slug."""
        limit = self.program_limit
        return limit is None or program in limit


class AccessToken(models.Model):
    """A bearer token for a person, from POST /api/v1/auth/token/. Stored as its SHA-256 only."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class ApiKey(models.Model):
    """A computing center's machine credential, sent as `Authorization: Api-Key <key>`.

    Stored as its SHA-256 only and shown once. It acts through its own machine user, a member of
    the provider, so every action it takes is attributed to the key.
    """

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="api_keys")
    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="api_key")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
