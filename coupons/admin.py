"""Read-only admin for the coupon program: money and policy move only through coupons.services.

Amounts are shown in yuan (`config.money.yuan_text`). A program year's page shows its pool figures and a
grant's page its balance, both read from ledger account totals by `coupons.selectors`.
"""

from decimal import Decimal

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.money import yuan_text
from coupons.models import (
    Alert,
    Application,
    ApplicationEvent,
    AuditRun,
    CapOverride,
    Claim,
    Grant,
    Invoice,
    OutboxMessage,
    Program,
    ProgramYear,
    RateRuleSet,
    Redemption,
    RuleSetVersion,
    Settlement,
    StackingRule,
    StackingRuleProgram,
)
from coupons.selectors import grant_figures, program_year_figures
from ledger.admin import ReadOnlyAdmin


def percent(rate_bp: int) -> str:
    """Basis points for people: 3000 -> 30.00% (exact; no float)."""
    return f"{Decimal(rate_bp).scaleb(-2):.2f}%"


def _figures_table(rows: list[tuple[str, int]]) -> SafeString:
    """A small table of (label, amount in fen), amounts in yuan."""
    return format_html(
        "<table>{}</table>",
        format_html_join(
            "", '<tr><th>{}</th><td style="text-align: right">{}</td></tr>', ((k, yuan_text(v)) for k, v in rows)
        ),
    )


def _link(viewname: str, pk: object, text: object) -> SafeString:
    return format_html('<a href="{}">{}</a>', reverse(viewname, args=[pk]), text)


class _NoChangeInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(RateRuleSet)
class RateRuleSetAdmin(ReadOnlyAdmin):
    list_display = ["name", "ceiling", "rules_count", "created_at"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "ceiling", "rules_table", "created_at"]
    readonly_fields = ["ceiling", "rules_table", "created_at"]

    @admin.display(description="ceiling", ordering="ceiling_bp")
    def ceiling(self, rule_set: RateRuleSet) -> str:
        return percent(rule_set.ceiling_bp)

    @admin.display(description="rules")
    def rules_count(self, rule_set: RateRuleSet) -> int:
        return len(rule_set.rules)

    @admin.display(description="rules, first match wins")
    def rules_table(self, rule_set: RateRuleSet) -> SafeString:
        rows = [
            (index, rule["label"], percent(rule["rate_bp"]), rule["when"] or "always")
            for index, rule in enumerate(rule_set.rules, start=1)
        ]
        return format_html(
            "<table><tr><th>#</th><th>rule</th><th>rate</th><th>when</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>", rows),
        )


@admin.register(RuleSetVersion)
class RuleSetVersionAdmin(ReadOnlyAdmin):
    """A program year's rate policy from a day on (added through the API, never edited)."""

    list_display = ["program_year", "effective_from", "rule_set", "created_at"]
    list_filter = ["program_year__program"]
    list_select_related = ["program_year", "rule_set"]
    fields = ["program_year", "effective_from", "rule_set", "created_at"]
    ordering = ["program_year__program", "program_year__year", "effective_from"]


@admin.register(Program)
class ProgramAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "name_en", "level", "authority", "basis", "redemption_mode", "status"]
    list_filter = ["level", "basis", "status"]
    search_fields = ["slug", "name", "name_en", "authority"]
    fields = [
        "slug",
        "name",
        "name_en",
        "authority",
        "level",
        "region",
        "redemption_mode",
        "basis",
        "once_per_enterprise",
        "status",
        "created_at",
        "closed_at",
        "closed_by",
    ]


@admin.register(StackingRule)
class StackingRuleAdmin(ReadOnlyAdmin):
    """Written by `coupons.services.stacking.stacking_rule_create`, never changed."""

    list_display = ["name", "programs_joined", "share", "amount", "created_at"]
    search_fields = ["name", "programs__slug"]
    fields = ["name", "programs_joined", "share", "amount", "created_at"]
    readonly_fields = ["programs_joined", "share", "amount", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[StackingRule]:
        return super().get_queryset(request).prefetch_related("memberships")

    @admin.display(description="programs")
    def programs_joined(self, rule: StackingRule) -> str:
        return ", ".join(sorted(m.program_id for m in rule.memberships.all()))

    @admin.display(description="combined ceiling, share of the fee", ordering="share_bp")
    def share(self, rule: StackingRule) -> str:
        return percent(rule.share_bp)

    @admin.display(description="combined ceiling, amount", ordering="amount_fen")
    def amount(self, rule: StackingRule) -> str:
        return "none" if rule.amount_fen is None else yuan_text(rule.amount_fen)


@admin.register(StackingRuleProgram)
class StackingRuleProgramAdmin(ReadOnlyAdmin):
    list_display = ["rule", "program"]
    list_filter = ["program"]
    list_select_related = ["rule"]


@admin.register(ProgramYear)
class ProgramYearAdmin(ReadOnlyAdmin):
    list_display = [
        "program",
        "year",
        "status",
        "pool",
        "default_cap",
        "grace_days",
        "open_applications_at_close",
        "grant_validity",
        "grant_validity_months",
        "redemption_mode",
        "rule_set",
        "opened_at",
        "closed_at",
    ]
    list_filter = ["program", "status", "redemption_mode"]
    list_select_related = ["program", "rule_set"]
    fields = [
        "program",
        "year",
        "chain",
        "status",
        "pool",
        "default_cap",
        "grace_days",
        "open_applications_at_close",
        "grant_validity",
        "grant_validity_months",
        "redemption_mode",
        "acknowledgement_window_days",
        "contract_signed_within_year",
        "contract_term_months_max",
        "filing_certificate_required",
        "rule_set",
        "priced_by",
        "figures",
        "opened_at",
        "closed_at",
    ]
    readonly_fields = ["pool", "default_cap", "figures"]

    @admin.display(description="pool", ordering="pool_fen")
    def pool(self, year: ProgramYear) -> str:
        return yuan_text(year.pool_fen)

    @admin.display(description="default cap per enterprise", ordering="default_cap_fen")
    def default_cap(self, year: ProgramYear) -> str:
        return yuan_text(year.default_cap_fen)

    @admin.display(description="pool figures (from the ledger)")
    def figures(self, year: ProgramYear) -> SafeString:
        figures = program_year_figures(year=year.year, program=year.program_id)
        return _figures_table(
            [
                ("pool", figures.pool_fen),
                ("issued", figures.issued_fen),
                ("held", figures.held_fen),
                ("redeemed", figures.redeemed_fen),
                ("settled", figures.settled_fen),
                ("lapsed", figures.lapsed_fen),
                ("revoked", figures.revoked_fen),
                ("available", figures.available_fen),
            ]
        )


@admin.register(CapOverride)
class CapOverrideAdmin(ReadOnlyAdmin):
    list_display = ["enterprise", "year", "cap", "previous_cap", "requested_by", "granted_by", "created_at"]
    list_filter = ["year", ("enterprise", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["enterprise", "year", "requested_by", "granted_by"]
    search_fields = ["enterprise__name", "enterprise__uscc", "reason"]
    date_hierarchy = "created_at"
    fields = ["enterprise", "year", "cap", "previous_cap", "reason", "requested_by", "granted_by", "created_at"]
    readonly_fields = ["cap", "previous_cap", "created_at"]

    @admin.display(description="cap", ordering="cap_fen")
    def cap(self, override: CapOverride) -> str:
        return yuan_text(override.cap_fen)

    @admin.display(description="previous cap", ordering="previous_cap_fen")
    def previous_cap(self, override: CapOverride) -> str:
        return yuan_text(override.previous_cap_fen)


class ApplicationEventInline(_NoChangeInline):
    model = ApplicationEvent
    fields = ["at", "action", "actor", "note"]
    readonly_fields = ["at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApplicationEvent]:
        return super().get_queryset(request).select_related("actor")


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "contract_number",
        "enterprise",
        "provider",
        "year",
        "status",
        "compute_source",
        "purpose",
        "rate",
        "contract_fee",
        "eligible",
        "requested",
        "recommended",
        "created_at",
    ]
    list_display_links = ["id", "contract_number"]
    list_filter = [
        "status",
        "year",
        "compute_source",
        "purpose",
        ("provider", admin.RelatedOnlyFieldListFilter),
        ("enterprise", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["enterprise", "provider", "year"]
    search_fields = ["contract_number", "enterprise__name", "enterprise__uscc", "provider__name"]
    date_hierarchy = "created_at"
    inlines = [ApplicationEventInline]
    fieldsets = [
        (None, {"fields": ["enterprise", "provider", "year", "contract_number", "status", "grant_link"]}),
        (
            "Money",
            {"fields": ["compute_source", "purpose", "rate", "rate_rule", "contract_fee", "eligible", "requested"]},
        ),
        ("Review", {"fields": ["recommended", "review_note", "reject_reason"]}),
        (
            "Who",
            {
                "fields": [
                    "submitted_by",
                    "confirmed_by",
                    "reviewed_by",
                    "approved_by",
                    "rejected_by",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    readonly_fields = [
        "grant_link",
        "rate",
        "contract_fee",
        "eligible",
        "requested",
        "recommended",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="rate", ordering="rate_bp")
    def rate(self, application: Application) -> str:
        return percent(application.rate_bp)

    @admin.display(description="contract fee", ordering="contract_fee_fen")
    def contract_fee(self, application: Application) -> str:
        return yuan_text(application.contract_fee_fen)

    @admin.display(description="eligible", ordering="eligible_fen")
    def eligible(self, application: Application) -> str:
        return yuan_text(application.eligible_fen)

    @admin.display(description="requested", ordering="requested_fen")
    def requested(self, application: Application) -> str:
        return yuan_text(application.requested_fen)

    @admin.display(description="recommended", ordering="recommended_fen")
    def recommended(self, application: Application) -> str:
        return "-" if application.recommended_fen is None else yuan_text(application.recommended_fen)

    @admin.display(description="grant")
    def grant_link(self, application: Application) -> SafeString | str:
        grant = Grant.objects.filter(application=application).only("pk", "code").first()
        return "-" if grant is None else _link("admin:coupons_grant_change", grant.pk, grant.code)


@admin.register(ApplicationEvent)
class ApplicationEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "application", "action", "actor", "note"]
    list_filter = ["action"]
    list_select_related = ["application__enterprise", "actor"]
    search_fields = ["application__contract_number", "actor__username", "note"]
    date_hierarchy = "at"
    fields = ["application", "action", "actor", "note", "at"]
    readonly_fields = ["at"]


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = ["code", "enterprise", "provider", "year", "amount", "rate", "status", "issued_at", "expires_at"]
    list_filter = [
        "status",
        "year",
        ("provider", admin.RelatedOnlyFieldListFilter),
        ("enterprise", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["enterprise", "provider", "year"]
    search_fields = ["code", "enterprise__name", "enterprise__uscc", "application__contract_number"]
    date_hierarchy = "issued_at"
    fieldsets = [
        (None, {"fields": ["code", "application", "enterprise", "provider", "year", "status"]}),
        ("Money", {"fields": ["amount", "rate", "balance", "redemptions_link", "account"]}),
        ("Issue", {"fields": ["issued_by", "issued_at", "expires_at"]}),
        ("Revocation", {"fields": ["revoked_by", "revoked_at", "revoke_reason", "revoked"]}),
    ]
    readonly_fields = ["amount", "rate", "balance", "redemptions_link", "revoked", "issued_at"]

    @admin.display(description="amount", ordering="amount_fen")
    def amount(self, grant: Grant) -> str:
        return yuan_text(grant.amount_fen)

    @admin.display(description="rate", ordering="rate_bp")
    def rate(self, grant: Grant) -> str:
        return percent(grant.rate_bp)

    @admin.display(description="returned to the pool on revocation", ordering="revoked_fen")
    def revoked(self, grant: Grant) -> str:
        return yuan_text(grant.revoked_fen)

    @admin.display(description="balance (from the ledger)")
    def balance(self, grant: Grant) -> SafeString:
        figures = grant_figures(grant)
        return _figures_table(
            [
                ("available", figures["available_fen"]),
                ("held", figures["held_fen"]),
                ("redeemed", figures["redeemed_fen"]),
            ]
        )

    @admin.display(description="redemptions")
    def redemptions_link(self, grant: Grant) -> SafeString:
        count = Redemption.objects.filter(grant=grant).count()
        url = f"{reverse('admin:coupons_redemption_changelist')}?grant__id__exact={grant.pk}"
        return format_html('<a href="{}">{} redemption{}</a>', url, count, "" if count == 1 else "s")


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "bill_number",
        "grant",
        "provider",
        "status",
        "bill_amount",
        "coupon",
        "payable",
        "settlement",
        "created_at",
    ]
    list_display_links = ["id", "bill_number"]
    list_filter = [
        "status",
        ("grant__year", admin.RelatedFieldListFilter),
        ("provider", admin.RelatedOnlyFieldListFilter),
        ("grant__enterprise", admin.RelatedOnlyFieldListFilter),
        "reversed_to",
    ]
    list_select_related = ["grant", "provider", "settlement"]
    search_fields = ["bill_number", "grant__code", "grant__application__contract_number"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["grant", "provider", "bill_number", "status"]}),
        ("Money", {"fields": ["bill_amount", "rate", "requested", "coupon", "payable"]}),
        ("Invoice", {"fields": ["invoice_number", "invoice_document", "invoice_amount_fen"]}),
        ("Hold", {"fields": ["hold_transfer", "expires_at", "created_by", "created_at", "captured_at", "released_at"]}),
        (
            "Acknowledgement by the enterprise",
            {
                "fields": [
                    "acknowledgement",
                    "acknowledge_by",
                    "acknowledged_by",
                    "acknowledged_at",
                    "dispute_reason",
                    "dispute_resolved_by",
                    "dispute_resolved_at",
                    "dispute_note",
                ]
            },
        ),
        ("Reversal", {"fields": ["reversed_by", "reversed_at", "reversal_reason", "reversed_to"]}),
        ("Settlement", {"fields": ["settlement", "clawback_settlement"]}),
    ]
    readonly_fields = ["bill_amount", "rate", "requested", "coupon", "payable", "created_at"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # A grant's page links to its redemptions.
        return lookup == "grant__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="bill", ordering="bill_amount_fen")
    def bill_amount(self, redemption: Redemption) -> str:
        return yuan_text(redemption.bill_amount_fen)

    @admin.display(description="rate", ordering="rate_bp")
    def rate(self, redemption: Redemption) -> str:
        return percent(redemption.rate_bp)

    @admin.display(description="requested", ordering="requested_fen")
    def requested(self, redemption: Redemption) -> str:
        return "-" if redemption.requested_fen is None else yuan_text(redemption.requested_fen)

    @admin.display(description="coupon", ordering="coupon_fen")
    def coupon(self, redemption: Redemption) -> str:
        return yuan_text(redemption.coupon_fen)

    @admin.display(description="payable by the enterprise")
    def payable(self, redemption: Redemption) -> str:
        return yuan_text(redemption.payable_fen)


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "provider",
        "enterprise",
        "status",
        "total",
        "redemptions_count",
        "bank_reference",
        "created_by",
        "created_at",
        "paid_at",
    ]
    list_filter = [
        "status",
        ("provider", admin.RelatedOnlyFieldListFilter),
        ("enterprise", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["provider", "enterprise", "created_by"]
    search_fields = ["bank_reference", "provider__name", "provider__uscc", "enterprise__name", "enterprise__uscc"]
    date_hierarchy = "created_at"
    fields = [
        "provider",
        "enterprise",
        "status",
        "total",
        "redemptions_count",
        "clawbacks_count",
        "bank_reference",
        "created_by",
        "created_at",
        "paid_by",
        "paid_at",
    ]
    readonly_fields = ["total", "clawbacks_count", "created_at"]

    @admin.display(description="total (captured less clawbacks)", ordering="total_fen")
    def total(self, settlement: Settlement) -> str:
        return yuan_text(settlement.total_fen)

    @admin.display(description="clawbacks netted")
    def clawbacks_count(self, settlement: Settlement) -> int:
        return Redemption.objects.filter(clawback_settlement=settlement).count()


@admin.register(Claim)
class ClaimAdmin(ReadOnlyAdmin):
    """Claims of enterprise reimbursement (事后兑现): decided in the portal or the API, read here."""

    list_display = ["id", "grant", "enterprise", "status", "invoice_number", "bill_amount", "coupon", "settlement"]
    list_filter = [
        "status",
        ("grant__year", admin.RelatedFieldListFilter),
        ("enterprise", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["grant", "enterprise", "settlement"]
    search_fields = ["invoice_number", "grant__code", "enterprise__name"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["grant", "enterprise", "status", "invoice_number"]}),
        ("Evidence", {"fields": ["invoice_document", "payment_proof_document"]}),
        ("Money", {"fields": ["bill_amount", "rate", "requested", "coupon", "hold_transfer"]}),
        ("Decision", {"fields": ["created_by", "created_at", "decided_by", "decided_at", "decision_reason"]}),
        ("Settlement", {"fields": ["settlement"]}),
    ]
    readonly_fields = ["bill_amount", "rate", "requested", "coupon", "created_at"]

    @admin.display(description="bill", ordering="bill_amount_fen")
    def bill_amount(self, claim: Claim) -> str:
        return yuan_text(claim.bill_amount_fen)

    @admin.display(description="rate", ordering="rate_bp")
    def rate(self, claim: Claim) -> str:
        return percent(claim.rate_bp)

    @admin.display(description="requested", ordering="requested_fen")
    def requested(self, claim: Claim) -> str:
        return "-" if claim.requested_fen is None else yuan_text(claim.requested_fen)

    @admin.display(description="coupon", ordering="coupon_fen")
    def coupon(self, claim: Claim) -> str:
        return yuan_text(claim.coupon_fen)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    """The invoice register: each invoice number is used once while its use is live."""

    list_display = ["number", "enterprise", "redemption", "claim", "used_at", "released_at"]
    list_select_related = ["enterprise", "redemption", "claim"]
    search_fields = ["number"]
    date_hierarchy = "used_at"


@admin.register(AuditRun)
class AuditRunAdmin(ReadOnlyAdmin):
    """Audit runs and their findings; started by beat nightly, or by an auditor over the API."""

    list_display = ["id", "status", "started_by", "started_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["started_by"]
    date_hierarchy = "started_at"


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "message", "mailed_at"]
    list_filter = ["kind"]
    search_fields = ["key", "message"]
    date_hierarchy = "created_at"


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "task", "args", "dispatched_at", "attempts"]
    list_filter = ["task"]
