"""The words people read for the machine words of the API (docs/api.md: statuses, purposes, sources)."""

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

WORDS: dict[str, Promise] = {
    # Application
    "submitted": _("Submitted"),
    "confirmed": _("Confirmed by provider"),
    "reviewed": _("Reviewed"),
    "approved": _("Approved"),
    "rejected": _("Rejected"),
    "withdrawn": _("Withdrawn"),
    "carried": _("Carried into the next year"),
    # Grant
    "active": _("Active"),
    "expired": _("Expired"),
    "revoked": _("Revoked"),
    # Redemption
    "pending": _("Held"),
    "captured": _("Captured"),
    "voided": _("Voided"),
    "reversed": _("Reversed"),
    # Settlement
    "open": _("Open"),
    "paid": _("Paid"),
    # Enterprise and provider
    "verified": _("Verified"),
    "suspended": _("Suspended"),
    "planning_layout": _("Planning layout"),
    "matched_partner": _("Matched partner"),
    # A provider's history (accounts.ProviderChange.Kind)
    "listed": _("Listed"),
    "changed": _("Changed by approval"),
    "migrated": _("Recorded at migration"),
    # Program year and audit
    "draft": _("Draft"),
    "closed": _("Closed"),
    "running": _("Running"),
    "passed": _("Passed"),
    "failed": _("Failed"),
    # Compute source and purpose
    "domestic": _("Domestic compute"),
    "other": _("Other compute"),
    "training": _("Model training"),
    "inference": _("Inference"),
    "application": _("Application"),
    "maas": _("Model as a service (MaaS)"),
    "agent": _("Agent development"),
    # Alerts
    # xgettext:no-python-format
    "pool_80": _("Pool 80% used"),
    # xgettext:no-python-format
    "pool_95": _("Pool 95% used"),
    # xgettext:no-python-format
    "cap_90": _("Enterprise at 90% of its cap"),
    "audit_failed": _("Audit check failed"),
}


# The audit's checks (coupons.services.audit.CHECKS), said for people; the code name stays beside it.
AUDIT_CHECK_WORDS: dict[str, Promise] = {
    "account_totals_equal_transfers": _("Every account's totals equal the sum of its transfers"),
    "debits_equal_credits": _("Debits equal credits"),
    "no_limited_account_overdrawn": _("No limited account is overdrawn"),
    "hash_chain_intact": _("The ledger's hash chains are intact"),
    "issued_within_pool": _("Coupons issued stay within the pool"),
    "granted_within_cap": _("Each enterprise's coupons stay within its cap"),
    "redemptions_within_rate": _("Each redemption is within the rate of its bill"),
    "contract_bills_within_fee": _("A contract's bills stay within its fee"),
    "closed_years_hold_nothing": _("Closed years hold nothing"),
    "grants_match_ledger": _("Coupons match their ledger accounts"),
    "redemptions_match_ledger": _("Redemptions match the ledger"),
    "settlements_match_ledger": _("Settlements match the ledger"),
    "claims_match_ledger": _("Claims match the ledger"),
    "pool_figures_match_rows": _("Pool figures from the ledger match the records"),
    "two_people_decided": _("Two different people asked for and decided every sensitive action"),
    "stored_files_intact": _("Every stored document still has the bytes it was uploaded with"),
    "invoices_used_once": _("Each invoice is used once"),
    "settled_redemptions_have_evidence": _("Every settled bill has its invoice and the enterprise's confirmation"),
    "stacking_within_ceiling": _("A contract subsidised by several programs stays within their combined ceiling"),
}

# Words whose meaning depends on the object: an enterprise's "pending" is not a redemption's.
KIND_WORDS: dict[str, dict[str, Promise]] = {
    "enterprise": {"pending": _("Pending verification")},
    "approval": {"pending": _("Awaiting decision")},
    # A document's kind, or what it proves where it is cited (evidence.models.Kind).
    "document": {
        "contract": _("Signed contract"),
        "invoice": _("Invoice"),
        "payment_proof": _("Proof of payment"),
        "delivery_proof": _("Proof of delivery or usage"),
        "filing_certificate": _("Model filing certificate"),
        "other": _("Other document"),
    },
}

# The sensitive actions that need a second person (approvals), said for people.
APPROVAL_ACTION_WORDS: dict[str, Promise] = {
    "cap_override": _("Relaxed cap"),
    "redemption_reverse": _("Reverse a redemption"),
    "grant_revoke": _("Revoke a coupon"),
    "settlement_pay": _("Pay a settlement"),
    "provider_change": _("Change a computing center's listing"),
    "sanction_set": _("Sanction an organisation"),
    "role_grant": _("Grant platform roles"),
    "user_programs_widen": _("Widen the programs a staff user reaches"),
    "rule_set_version_add": _("Add a rule-set version"),
    "stacking_rule_create": _("Write a stacking rule"),
    "program_close": _("Close a program"),
}

# A program year's "open" is not a settlement's "open" (not yet paid): its own words.
YEAR_STATUS_WORDS: dict[str, Promise] = {
    "draft": pgettext_lazy("program year status", "Draft"),
    "open": pgettext_lazy("program year status", "Open"),
    "closed": pgettext_lazy("program year status", "Closed"),
}


def choices(*values: str) -> list[tuple[str, Promise]]:
    """Form choices for machine words, labelled in the person's language."""
    return [(value, WORDS[value]) for value in values]
