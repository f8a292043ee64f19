"""The audit: a clean program passes every check; each kind of direct SQL tampering is caught."""

import pgtrigger
import pytest
from django.core import mail
from django.db import connection

from accounts.models import Enterprise
from approvals.services import approval_request_approve
from coupons.models import AuditRun
from coupons.services.audit import CHECKS, audit_execute, audit_run_create
from coupons.services.grants import grant_revoke_request
from coupons.services.redemptions import redemption_create, redemption_reverse_request
from coupons.services.settlements import settlement_create, settlement_pay_request
from coupons.services.years import cap_override_request
from ledger.chain import ledger_seal
from tests.coupons.conftest import CAP_FEN, IN_YEAR, YEAR, grant_for
from tests.evidence import invoice
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(cast, year):
    """A year with grants, holds, captures, a reversal, a revocation and a paid settlement, sealed."""
    grant = grant_for(cast, fee_fen=1_000_000)
    redemption_create(
        grant=grant, bill_number="H", bill_amount_fen=50_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    captured = redemption_create(
        grant=grant,
        bill_number="C",
        bill_amount_fen=100_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    reversed_ = redemption_create(
        grant=grant,
        bill_number="R",
        bill_amount_fen=20_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    # The sensitive actions, each asked for by one person and approved by another (approvals).
    approve = approval_request_approve
    approve(
        request_id=redemption_reverse_request(redemption=reversed_, requester=cast.reviewer, reason="dispute").pk,
        decider=cast.approver,
    )
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    finance2 = UserFactory(roles=["finance"])
    approve(
        request_id=settlement_pay_request(settlement=settlement, requester=cast.finance, bank_reference="B1").pk,
        decider=finance2,
    )
    revoked = grant_for(cast, fee_fen=100_000)
    approve(
        request_id=grant_revoke_request(grant=revoked, requester=cast.approver2, reason="cancelled").pk,
        decider=cast.approver,
    )
    Enterprise.objects.filter(pk=cast.enterprise.pk).update(
        foundation_model_developer=True, foundation_model_developer_verified=True
    )
    cast.enterprise.refresh_from_db()
    approve(
        request_id=cap_override_request(
            year=YEAR, enterprise=cast.enterprise, cap_fen=CAP_FEN + 1, reason="relaxed", requester=cast.reviewer
        ).pk,
        decider=cast.approver2,
    )
    ledger_seal()
    return {"grant": grant, "captured": captured, "revoked": revoked}


def audit() -> AuditRun:
    return audit_execute(run_id=audit_run_create().pk)


def failed_checks(run: AuditRun) -> set[str]:
    return {check["name"] for check in run.checks if not check["ok"]}


def test_a_clean_program_passes_every_check(program):
    run = audit()
    assert run.status == "passed", [c for c in run.checks if not c["ok"]]
    assert [c["name"] for c in run.checks] == [name for name, _ in CHECKS]
    examined = {c["name"]: c["details"]["examined"] for c in run.checks}
    # Each check looked at its whole population (no year is closed yet, so that one saw none).
    assert examined.pop("closed_years_hold_nothing") == 0
    # A provider-deduction year has no claims (tests/coupons/test_claims_audit.py audits a year that has).
    assert examined.pop("claims_match_ledger") == 0
    assert all(count > 0 for count in examined.values()), examined
    assert run.finished_at is not None


def tamper(*statements: str) -> None:
    triggers = (
        "ledger.Transfer:transfer_insert_only",
        "ledger.TransferSeal:seal_insert_only",
        "approvals.ApprovalRequest:approval_request_never_deleted",
    )
    with pgtrigger.ignore(*triggers), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for statement in statements:
            cursor.execute(statement, [])


TAMPERING = {
    "a changed transfer amount": (
        [
            "UPDATE ledger_transfer SET amount_fen = amount_fen + 1 WHERE reason = 'redemption_capture' AND id = "
            "(SELECT min(id) FROM ledger_transfer WHERE reason = 'redemption_capture')"
        ],
        {"account_totals_equal_transfers", "hash_chain_intact"},
    ),
    "a deleted transfer": (
        [
            "DELETE FROM ledger_transferseal WHERE transfer_id = (SELECT max(id) FROM ledger_transfer)",
            "DELETE FROM ledger_transfer WHERE id = (SELECT max(id) FROM ledger_transfer)",
        ],
        {"account_totals_equal_transfers"},
    ),
    "a transfer moved to another account": (
        [
            "UPDATE ledger_transfer SET credit_account_id = "
            "(SELECT id FROM ledger_account WHERE code LIKE 'lapsed:%%') "
            "WHERE reason = 'redemption_capture' AND id = (SELECT min(id) FROM ledger_transfer WHERE reason = "
            "'redemption_capture')"
        ],
        {"account_totals_equal_transfers", "hash_chain_intact"},
    ),
    "an edited account total": (
        ["UPDATE ledger_account SET credits_posted = credits_posted + 500 WHERE code LIKE 'provider:%%'"],
        {"account_totals_equal_transfers", "debits_equal_credits"},
    ),
    "a grant above its cap": (
        ["UPDATE coupons_grant SET amount_fen = 9000000 WHERE id = (SELECT min(id) FROM coupons_grant)"],
        {"granted_within_cap", "grants_match_ledger", "issued_within_pool"},
    ),
    "a redemption above rate times bill": (
        [
            "ALTER TABLE coupons_redemption DROP CONSTRAINT coupons_redemption_within_rate",
            "UPDATE coupons_redemption SET coupon_fen = bill_amount_fen WHERE bill_number = 'H'",
        ],
        {"redemptions_within_rate", "redemptions_match_ledger"},
    ),
    "a changed chain link": (
        ["UPDATE ledger_transferseal SET link = md5(link) || md5(link) WHERE sequence = 3"],
        {"hash_chain_intact"},
    ),
    "bills past the contract fee": (
        ["UPDATE coupons_redemption SET bill_amount_fen = 2000000 WHERE bill_number = 'H'"],
        {"contract_bills_within_fee"},
    ),
    "a redemption whose status was changed": (
        ["UPDATE coupons_redemption SET status = 'captured' WHERE bill_number = 'H'"],
        {"redemptions_match_ledger", "grants_match_ledger"},
    ),
    "a settlement total edited": (
        ["UPDATE coupons_settlement SET total_fen = total_fen + 100"],
        {"settlements_match_ledger"},
    ),
    "a pool credited twice": (
        [
            "UPDATE ledger_account SET debits_posted = debits_posted * 2 WHERE code LIKE 'appropriation:%%'",
            "UPDATE ledger_account SET credits_posted = credits_posted * 2 WHERE code LIKE 'pool:%%'",
        ],
        {"issued_within_pool", "account_totals_equal_transfers"},
    ),
    "a limited account overdrawn by hand": (
        [
            "ALTER TABLE ledger_account DROP CONSTRAINT ledger_account_debits_must_not_exceed_credits",
            "UPDATE ledger_account SET debits_posted = credits_posted + 1 WHERE code LIKE 'grant:%%' AND id = "
            "(SELECT min(id) FROM ledger_account WHERE code LIKE 'grant:%%')",
        ],
        {"no_limited_account_overdrawn", "account_totals_equal_transfers"},
    ),
    "a grant's rate raised with its application's, past the policy": (
        [
            "UPDATE coupons_application SET rate_bp = 3500, eligible_fen = contract_fee_fen * 3500 / 10000 "
            "WHERE id = (SELECT application_id FROM coupons_grant WHERE id = (SELECT min(id) FROM coupons_grant))",
            "UPDATE coupons_grant SET rate_bp = 3500 WHERE id = (SELECT min(id) FROM coupons_grant)",
        ],
        {"grant_rates_match_policy"},
    ),
    "a pricing input claimed that staff never confirmed": (
        [
            "UPDATE coupons_application SET priced_small_or_medium = true "
            "WHERE id = (SELECT application_id FROM coupons_grant WHERE id = (SELECT min(id) FROM coupons_grant))"
        ],
        {"grant_rates_match_policy"},
    ),
    "the registered-model rate without a verified filing": (
        [
            "INSERT INTO accounts_modelfiling (filing_number, model_name, holder_name, holder_uscc, recorded_by_id, "
            "recorded_at) SELECT 'Zhejiang-X', 'x', 'x', '', id, now() FROM accounts_user ORDER BY id LIMIT 1",
            "UPDATE coupons_application SET priced_has_registered_model = true, "
            "model_filing_id = (SELECT id FROM accounts_modelfiling WHERE filing_number = 'Zhejiang-X') "
            "WHERE id = (SELECT application_id FROM coupons_grant WHERE id = (SELECT min(id) FROM coupons_grant))",
        ],
        {"grant_rates_match_policy"},
    ),
    "a related party listed before approval, slipped past it": (
        [
            "INSERT INTO accounts_relatedparty (uscc_low, uscc_high, note, created_by_id, created_at) "
            "SELECT least(e.uscc, p.uscc), greatest(e.uscc, p.uscc), '', g.issued_by_id, "
            "g.issued_at - interval '1 day' FROM coupons_grant g JOIN accounts_enterprise e ON e.id = g.enterprise_id "
            "JOIN accounts_provider p ON p.id = g.provider_id ORDER BY g.id LIMIT 1"
        ],
        {"grants_to_eligible_pairs"},
    ),
    "a sanctioned provider granted anyway": (
        [
            "INSERT INTO accounts_sanction (uscc, reason, valid_from, valid_until, requested_by_id, decided_by_id, "
            "created_at) SELECT p.uscc, 'fraud', '2000-01-01', NULL, g.issued_by_id, "
            "(SELECT min(id) FROM accounts_user WHERE id <> g.issued_by_id), g.issued_at - interval '1 day' "
            "FROM coupons_grant g JOIN accounts_provider p ON p.id = g.provider_id ORDER BY g.id LIMIT 1"
        ],
        {"grants_to_eligible_pairs"},
    ),
    "a reversal decided by the person who asked for it": (
        [
            "ALTER TABLE coupons_redemption DROP CONSTRAINT coupons_redemption_reversal_four_eyes",
            "UPDATE coupons_redemption SET reversed_by_id = reversal_requested_by_id WHERE status = 'reversed'",
        ],
        {"two_people_decided"},
    ),
    "an application approved by its reviewer": (
        [
            "ALTER TABLE coupons_application DROP CONSTRAINT coupons_application_four_eyes",
            "UPDATE coupons_application SET approved_by_id = reviewed_by_id WHERE status = 'approved'",
        ],
        {"two_people_decided"},
    ),
    "a settlement paid by its creator": (
        [
            "ALTER TABLE coupons_settlement DROP CONSTRAINT coupons_settlement_payment_four_eyes",
            "UPDATE coupons_settlement SET paid_by_id = created_by_id WHERE status = 'paid'",
        ],
        {"two_people_decided"},
    ),
    "a revocation with no approved request behind it": (
        ["DELETE FROM approvals_approvalrequest WHERE action = 'grant_revoke'"],
        {"two_people_decided"},
    ),
    "a cap override granted by someone other than the request's decider": (
        ["UPDATE coupons_capoverride SET granted_by_id = (SELECT min(id) FROM accounts_user WHERE is_superuser)"],
        {"two_people_decided"},
    ),
    "a revoked grant given its money back": (
        ["UPDATE coupons_grant SET revoked_fen = 0 WHERE status = 'revoked'"],
        {"grants_match_ledger", "pool_figures_match_rows"},
    ),
}


@pytest.mark.parametrize("kind", list(TAMPERING), ids=list(TAMPERING))
def test_tampering_is_detected(kind, program):
    statements, expected = TAMPERING[kind]
    tamper(*statements)
    run = audit()
    assert run.status == "failed"
    assert expected <= failed_checks(run), (kind, failed_checks(run))


def test_a_failed_audit_alerts_the_auditors(program, django_capture_on_commit_callbacks):
    auditor = UserFactory(roles=["auditor"], email="auditor@fund.example")
    UserFactory(roles=["reviewer"], email="reviewer@fund.example")
    tamper("UPDATE coupons_settlement SET total_fen = total_fen + 1")
    with django_capture_on_commit_callbacks(execute=True):  # The alert is mailed from the outbox.
        audit()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [auditor.email]
    assert "settlements_match_ledger" in mail.outbox[0].subject


def test_a_check_that_cannot_run_fails_the_audit(program, monkeypatch):
    from coupons.services import audit as audit_module

    def broken():
        raise RuntimeError("the replica is down")

    monkeypatch.setattr(audit_module, "CHECKS", [*audit_module.CHECKS, ("broken", broken)])
    run = audit()
    assert run.status == "failed"
    broken_check = next(c for c in run.checks if c["name"] == "broken")
    assert broken_check == {"name": "broken", "ok": False, "details": {"error": "RuntimeError: the replica is down"}}


def test_a_finished_run_is_not_run_again(program):
    run = audit()
    checks = run.checks
    again = audit_execute(run_id=run.pk)
    assert again.checks == checks and again.finished_at == run.finished_at
