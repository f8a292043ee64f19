"""The audit: recompute the books from their parts and compare, check by check.

Every check is one set-based SQL statement that returns the offending rows (at most FINDINGS_MAX)
and how many rows it examined, so a million transfers audit in seconds. A check holds only when
it examined what it had to and found nothing; a check that could not run fails, with the error
as its finding, and so does the run: an audit never passes by saying nothing.
"""

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Final

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import ENTERPRISE_FLAGS, EnterpriseFlagsEvent, User
from coupons.invoices import InvalidInvoiceNumber, invoice_number_normalise
from coupons.models import AuditRun, Grant, Invoice
from coupons.policy import ApplicationFacts, rate_for
from coupons.rule_sets import rule_set_versions
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.reach import reach_every_program
from evidence.audit import stored_files_findings
from ledger.audit import LEDGER_CHECKS, archived_chains, count_of, findings_of

FINDINGS_MAX: Final = 50
audit_log = logging.getLogger("coupons.audit")

Finding = dict[str, Any]


def _rows(sql: str, params: list[Any] | None = None) -> list[Finding]:
    return findings_of(sql, findings_max=FINDINGS_MAX, params=params)


def check_issued_within_pool() -> tuple[list[Finding], int]:
    """Per year: the pool was credited once with the year's pool, and what is issued net of
    revocations never passes it; the grants' amounts equal the pool's debits."""
    sql = """
        SELECT y.program_id AS program, y.year, y.pool_fen, appropriation.debits_posted AS appropriated_fen,
               pool.debits_posted AS issued_fen, pool.credits_posted - y.pool_fen AS revoked_fen,
               coalesce(g.granted, 0) AS granted_fen
          FROM coupons_programyear y
          JOIN ledger_account pool ON pool.code = 'pool:' || y.program_id || ':' || y.year
          JOIN ledger_account appropriation ON appropriation.code = 'appropriation:' || y.program_id || ':' || y.year
          LEFT JOIN (SELECT year_id, sum(amount_fen) AS granted FROM coupons_grant GROUP BY year_id) g
                 ON g.year_id = y.id
         WHERE y.status <> 'draft'
           AND (appropriation.debits_posted <> y.pool_fen
                OR pool.debits_posted - (pool.credits_posted - y.pool_fen) > y.pool_fen
                OR pool.debits_posted <> coalesce(g.granted, 0))
         ORDER BY y.program_id, y.year
    """
    return _rows(sql), count_of("SELECT count(*) FROM coupons_programyear WHERE status <> 'draft'")


def check_granted_within_cap() -> tuple[list[Finding], int]:
    """Per enterprise and year: granted net of revocations never passes its cap (default or relaxed)."""
    sql = """
        WITH caps AS (
            SELECT DISTINCT ON (year_id, enterprise_id) year_id, enterprise_id, cap_fen
              FROM coupons_capoverride ORDER BY year_id, enterprise_id, id DESC
        ), granted AS (
            SELECT year_id, enterprise_id, sum(amount_fen - revoked_fen) AS net_fen
              FROM coupons_grant GROUP BY year_id, enterprise_id
        )
        SELECT y.program_id AS program, y.year, g.enterprise_id, g.net_fen,
               coalesce(c.cap_fen, y.default_cap_fen) AS cap_fen
          FROM granted g JOIN coupons_programyear y ON y.id = g.year_id
          LEFT JOIN caps c ON c.year_id = g.year_id AND c.enterprise_id = g.enterprise_id
         WHERE g.net_fen > coalesce(c.cap_fen, y.default_cap_fen)
         ORDER BY g.year_id, g.enterprise_id
    """
    return _rows(sql), count_of("SELECT count(DISTINCT (year_id, enterprise_id)) FROM coupons_grant")


def check_redemptions_within_rate() -> tuple[list[Finding], int]:
    """Every coupon is at most floor(bill × rate), at the grant's rate."""
    sql = """
        SELECT r.id AS redemption_id, r.bill_amount_fen, r.rate_bp, g.rate_bp AS grant_rate_bp, r.coupon_fen
          FROM coupons_redemption r JOIN coupons_grant g ON g.id = r.grant_id
         WHERE r.coupon_fen <= 0 OR r.coupon_fen > r.bill_amount_fen * g.rate_bp / 10000 OR r.rate_bp <> g.rate_bp
         ORDER BY r.id
    """
    return _rows(sql), count_of("SELECT count(*) FROM coupons_redemption")


def check_contract_bills_within_fee() -> tuple[list[Finding], int]:
    """The live bills of a contract, redeemed or claimed on its grants in every program (programs that
    stack each grant the one contract), never add up past its fee (the smallest any of its applications
    states), and no bill number is redeemed twice on it."""
    sql = """
        WITH bills AS (
            SELECT grant_id, bill_number, bill_amount_fen FROM coupons_redemption
             WHERE status IN ('pending', 'captured')
            UNION ALL
            SELECT grant_id, NULL, bill_amount_fen FROM coupons_claim WHERE status IN ('submitted', 'approved', 'paid')
        ), of_contract AS (
            SELECT a.provider_id, a.contract_number, b.bill_number, b.bill_amount_fen
              FROM bills b JOIN coupons_grant g ON g.id = b.grant_id
              JOIN coupons_application a ON a.id = g.application_id
        ), fees AS (
            SELECT a.provider_id, a.contract_number, min(a.contract_fee_fen) AS contract_fee_fen
              FROM coupons_grant g JOIN coupons_application a ON a.id = g.application_id
             GROUP BY a.provider_id, a.contract_number
        )
        SELECT c.provider_id, c.contract_number, f.contract_fee_fen, sum(c.bill_amount_fen) AS billed_fen,
               count(c.bill_number) - count(DISTINCT c.bill_number) AS bills_repeated
          FROM of_contract c JOIN fees f USING (provider_id, contract_number)
         GROUP BY c.provider_id, c.contract_number, f.contract_fee_fen
        HAVING sum(c.bill_amount_fen) > f.contract_fee_fen OR count(c.bill_number) > count(DISTINCT c.bill_number)
         ORDER BY 1, 2
    """
    return _rows(sql), count_of(
        "SELECT count(DISTINCT (a.provider_id, a.contract_number)) FROM coupons_grant g "
        "JOIN coupons_application a ON a.id = g.application_id"
    )


def check_closed_years_hold_nothing() -> tuple[list[Finding], int]:
    """Grants past their expiry in a closed year are expired or revoked and hold nothing."""
    sql = """
        SELECT g.id AS grant_id, g.status, account.credits_posted - account.debits_posted AS balance_fen,
               account.debits_pending AS held_fen
          FROM coupons_grant g
          JOIN coupons_programyear y ON y.id = g.year_id
          JOIN ledger_account account ON account.id = g.account_id
         WHERE y.status = 'closed' AND g.expires_at <= %s
           AND (g.status = 'active'
                OR account.credits_posted - account.debits_posted <> 0
                OR account.debits_pending <> 0)
         ORDER BY g.id
    """
    return _rows(sql, [timezone.now()]), count_of(
        "SELECT count(*) FROM coupons_grant g JOIN coupons_programyear y ON y.id = g.year_id WHERE y.status = 'closed'"
    )


def check_grants_match_ledger() -> tuple[list[Finding], int]:
    """Each grant's account equals its amount and what its redemptions, claims, revocation and lapse moved."""
    sql = """
        WITH uses AS (
            SELECT grant_id,
                   CASE WHEN status = 'pending' THEN coupon_fen ELSE 0 END AS held,
                   CASE WHEN status IN ('captured', 'reversed') THEN coupon_fen ELSE 0 END AS spent,
                   CASE WHEN status = 'reversed' AND reversed_to = 'grant' THEN coupon_fen ELSE 0 END AS returned
              FROM coupons_redemption
            UNION ALL
            SELECT grant_id,
                   CASE WHEN status = 'submitted' THEN coupon_fen ELSE 0 END,
                   CASE WHEN status IN ('approved', 'paid') THEN coupon_fen ELSE 0 END,
                   0
              FROM coupons_claim
        ), moved AS (
            SELECT grant_id, sum(held) AS held, sum(spent) AS spent, sum(returned) AS returned
              FROM uses GROUP BY grant_id
        )
        SELECT g.id AS grant_id, g.code, g.amount_fen, account.credits_posted, account.debits_posted,
               account.debits_pending
          FROM coupons_grant g
          JOIN ledger_account account ON account.id = g.account_id
          LEFT JOIN moved m ON m.grant_id = g.id
         WHERE account.credits_posted <> g.amount_fen + coalesce(m.returned, 0)
            OR account.debits_pending <> coalesce(m.held, 0)
            OR account.debits_posted <> coalesce(m.spent, 0) + g.revoked_fen + g.lapsed_fen
            OR (NOT EXISTS (SELECT 1 FROM ledger_transfer t
                             WHERE t.key = 'grant:' || g.application_id || ':issue'
                               AND t.amount_fen = g.amount_fen AND t.credit_account_id = g.account_id)
                AND NOT EXISTS (SELECT 1 FROM ledger_transferkey k JOIN ledger_chainarchive x ON x.chain = k.chain
                                WHERE k.key = 'grant:' || g.application_id || ':issue'))
         ORDER BY g.id
    """
    return _rows(sql), count_of("SELECT count(*) FROM coupons_grant")


def check_redemptions_match_ledger() -> tuple[list[Finding], int]:
    """Each redemption's state is the state of its ledger transfers, amount for amount."""
    sql = """
        SELECT r.id AS redemption_id, r.status, r.coupon_fen,
               hold.amount_fen AS hold_fen, capture.amount_fen AS capture_fen, release.amount_fen AS release_fen,
               reverse.amount_fen AS reverse_fen
          FROM coupons_redemption r
          LEFT JOIN ledger_transfer hold ON hold.id = r.hold_transfer_id
          LEFT JOIN ledger_transfer capture ON capture.key = 'redemption:' || r.id || ':capture'
          LEFT JOIN ledger_transfer release ON release.pending_id = r.hold_transfer_id
                                            AND release.kind = 'void_pending'
          LEFT JOIN ledger_transfer reverse ON reverse.key = 'redemption:' || r.id || ':reverse'
         WHERE ((r.hold_transfer_id IS NOT NULL AND hold.amount_fen IS DISTINCT FROM r.coupon_fen)
            OR (r.status = 'pending' AND (hold.id IS NULL OR capture.id IS NOT NULL OR release.id IS NOT NULL))
            OR (r.status IN ('captured', 'reversed') AND capture.amount_fen IS DISTINCT FROM r.coupon_fen)
            OR (r.status IN ('voided', 'expired') AND (release.id IS NULL OR capture.id IS NOT NULL))
            OR ((r.status = 'reversed') <> (reverse.id IS NOT NULL))
            OR (r.status = 'reversed' AND reverse.amount_fen <> r.coupon_fen))
           -- A redemption of an archived year: its transfers left with the chain (docs/ledger-history.md).
           AND NOT EXISTS (SELECT 1 FROM ledger_transferkey k JOIN ledger_chainarchive x ON x.chain = k.chain
                            WHERE k.transfer_id = r.hold_transfer_id)
           AND NOT EXISTS (SELECT 1 FROM ledger_transferkey k JOIN ledger_chainarchive x ON x.chain = k.chain
                            WHERE k.key = 'redemption:' || r.id || ':capture')
         ORDER BY r.id
    """
    return _rows(sql), count_of("SELECT count(*) FROM coupons_redemption")


def check_settlements_match_ledger() -> tuple[list[Finding], int]:
    """Each settlement's total is its lines (redemptions, or an enterprise's claims) less its clawbacks,
    a paid one moved exactly that, and an enterprise settlement's claims are paid when it is."""
    sql = """
        WITH lines AS (
            SELECT settlement_id, sum(coupon_fen) AS fen, count(*) AS n FROM coupons_redemption
             WHERE settlement_id IS NOT NULL GROUP BY settlement_id
        ), claim_lines AS (
            SELECT settlement_id, sum(coupon_fen) AS fen,
                   count(*) FILTER (WHERE status = 'approved') AS approved_n,
                   count(*) FILTER (WHERE status = 'paid') AS paid_n
              FROM coupons_claim WHERE settlement_id IS NOT NULL GROUP BY settlement_id
        ), clawbacks AS (
            SELECT clawback_settlement_id AS settlement_id, sum(coupon_fen) AS fen FROM coupons_redemption
             WHERE clawback_settlement_id IS NOT NULL GROUP BY clawback_settlement_id
        ), paid AS (
            SELECT split_part(key, ':', 2)::bigint AS settlement_id,
                   sum(amount_fen) FILTER (WHERE split_part(key, ':', 3) = 'pay') AS pay_fen,
                   sum(amount_fen) FILTER (WHERE split_part(key, ':', 3) = 'clawback') AS clawback_fen
              FROM ledger_transfer WHERE key LIKE 'settlement:%%' GROUP BY 1
        )
        SELECT s.id AS settlement_id, s.status, s.total_fen, coalesce(l.fen, 0) AS lines_fen,
               coalesce(cl.fen, 0) AS claims_fen, coalesce(c.fen, 0) AS clawbacks_fen, p.pay_fen, p.clawback_fen
          FROM coupons_settlement s
          LEFT JOIN lines l ON l.settlement_id = s.id
          LEFT JOIN claim_lines cl ON cl.settlement_id = s.id
          LEFT JOIN clawbacks c ON c.settlement_id = s.id
          LEFT JOIN paid p ON p.settlement_id = s.id
         WHERE s.total_fen <> coalesce(l.fen, 0) + coalesce(cl.fen, 0) - coalesce(c.fen, 0)
            OR s.redemptions_count <> coalesce(l.n, 0)
            OR (s.enterprise_id IS NOT NULL AND (l.settlement_id IS NOT NULL OR c.settlement_id IS NOT NULL))
            OR (s.provider_id IS NOT NULL AND cl.settlement_id IS NOT NULL)
            OR (s.status = 'paid' AND (coalesce(p.pay_fen, 0) <> coalesce(l.fen, 0) + coalesce(cl.fen, 0)
                                       OR coalesce(p.clawback_fen, 0) <> coalesce(c.fen, 0)
                                       OR coalesce(cl.approved_n, 0) <> 0))
            OR (s.status = 'open' AND (p.settlement_id IS NOT NULL OR coalesce(cl.paid_n, 0) <> 0))
         ORDER BY s.id
    """
    # A settlement that paid (or clawed back) in an archived year, one transfer a year: some of its
    # transfers left with the chain, so it is not judged (docs/ledger-history.md).
    sql = f"""
        SELECT * FROM ({sql}) settlements
         WHERE NOT EXISTS (SELECT 1 FROM ledger_transferkey k JOIN ledger_chainarchive x ON x.chain = k.chain
                            WHERE k.key LIKE 'settlement:' || settlements.settlement_id || ':%%')
         ORDER BY settlement_id
    """
    return _rows(sql), count_of("SELECT count(*) FROM coupons_settlement")


def check_claims_match_ledger() -> tuple[list[Finding], int]:
    """Each claim's state is the state of its ledger transfers, amount for amount, at its grant's rate;
    and per enterprise and program year, the approvals posted to `enterprise:E` are its approved and
    paid claims, and its account holds what it is owed: approved claims not yet paid."""
    per_claim = """
        SELECT 'claim' AS kind, c.id AS claim_id, NULL::bigint AS enterprise_id, NULL::integer AS year,
               c.status, c.coupon_fen, hold.amount_fen AS hold_fen, approve.amount_fen AS approve_fen,
               release.id AS release_id, NULL::bigint AS ledger_fen
          FROM coupons_claim c
          JOIN coupons_grant g ON g.id = c.grant_id
          LEFT JOIN ledger_transfer hold ON hold.id = c.hold_transfer_id
          LEFT JOIN ledger_transfer approve ON approve.key = 'claim:' || c.id || ':approve'
          LEFT JOIN ledger_transfer release ON release.pending_id = c.hold_transfer_id
                                            AND release.kind = 'void_pending'
         WHERE hold.id IS NULL OR hold.amount_fen <> c.coupon_fen OR hold.kind <> 'pending'
            OR hold.debit_account_id <> g.account_id
            OR hold.credit_account_id IS DISTINCT FROM (SELECT id FROM ledger_account
                                                         WHERE code = 'enterprise:' || c.enterprise_id)
            OR c.enterprise_id <> g.enterprise_id OR c.rate_bp <> g.rate_bp
            OR c.coupon_fen > c.bill_amount_fen * g.rate_bp / 10000
            OR (c.status = 'submitted' AND (approve.id IS NOT NULL OR release.id IS NOT NULL))
            OR (c.status IN ('approved', 'paid') AND (approve.amount_fen IS DISTINCT FROM c.coupon_fen
                                                       OR release.id IS NOT NULL))
            OR (c.status = 'rejected' AND (release.id IS NULL OR approve.id IS NOT NULL))
    """
    # A claim of an archived year: its transfers left with the chain (docs/ledger-history.md).
    per_claim = f"""
        SELECT * FROM ({per_claim}) claims
         WHERE NOT EXISTS (SELECT 1 FROM coupons_claim c
                             JOIN ledger_transferkey k ON k.transfer_id = c.hold_transfer_id
                             JOIN ledger_chainarchive x ON x.chain = k.chain
                            WHERE c.id = claims.claim_id)
    """
    per_enterprise_year = """
        WITH approvals AS (
            SELECT split_part(a.code, ':', 2)::bigint AS enterprise_id, py.id AS year_id,
                   sum(t.amount_fen) AS fen
              FROM ledger_transfer t JOIN ledger_account a ON a.id = t.credit_account_id
              JOIN coupons_programyear py ON py.chain = t.chain
             WHERE t.key LIKE 'claim:%%:approve' GROUP BY 1, 2
        ), claimed AS (
            SELECT c.enterprise_id, g.year_id, sum(c.coupon_fen) AS fen
              FROM coupons_claim c JOIN coupons_grant g ON g.id = c.grant_id
              JOIN coupons_programyear py ON py.id = g.year_id
             WHERE c.status IN ('approved', 'paid')
               AND NOT EXISTS (SELECT 1 FROM ledger_chainarchive x WHERE x.chain = py.chain)
             GROUP BY 1, 2
        )
        SELECT 'enterprise_year' AS kind, NULL::bigint AS claim_id, enterprise_id, year_id AS year, NULL AS status,
               cl.fen AS coupon_fen, NULL::bigint AS hold_fen, ap.fen AS approve_fen, NULL::bigint AS release_id,
               NULL::bigint AS ledger_fen
          FROM claimed cl FULL JOIN approvals ap USING (enterprise_id, year_id)
         WHERE cl.fen IS DISTINCT FROM ap.fen
    """
    per_account = """
        WITH owed AS (
            SELECT enterprise_id,
                   sum(coupon_fen) FILTER (WHERE status = 'approved') AS approved,
                   sum(coupon_fen) FILTER (WHERE status = 'submitted') AS held
              FROM coupons_claim GROUP BY enterprise_id
        )
        SELECT 'enterprise_account' AS kind, NULL::bigint AS claim_id, o.enterprise_id, NULL::integer AS year,
               NULL AS status, coalesce(o.approved, 0) AS coupon_fen, coalesce(o.held, 0) AS hold_fen,
               NULL::bigint AS approve_fen, NULL::bigint AS release_id,
               a.credits_posted - a.debits_posted AS ledger_fen
          FROM owed o
          LEFT JOIN ledger_account a ON a.code = 'enterprise:' || o.enterprise_id
         WHERE a.id IS NULL OR a.credits_posted - a.debits_posted <> coalesce(o.approved, 0)
            OR a.credits_pending <> coalesce(o.held, 0) OR a.debits_pending <> 0
    """
    sql = (
        f"SELECT * FROM (({per_claim}) UNION ALL ({per_enterprise_year}) UNION ALL ({per_account})) f ORDER BY 1, 2, 3"
    )
    return _rows(sql), count_of("SELECT count(*) FROM coupons_claim")


def check_pool_figures_match_rows() -> tuple[list[Finding], int]:
    """Per year, the pool figures read from the ledger equal their recomputation from the rows."""
    findings = []
    years = _years()
    for program, year in years:
        ledger = program_year_figures(year=year, program=program)
        rows = program_year_figures_from_rows(year=year, program=program)
        if ledger != rows:
            findings.append({"program": program, "year": year, "ledger": ledger.as_dict(), "rows": rows.as_dict()})
    return findings, len(years)


def _flags_counted_at(events: list[EnterpriseFlagsEvent], moment: datetime) -> dict[str, bool]:
    """Replay an enterprise's flags history up to `moment`: which flags counted (declared and
    confirmed by staff) then. A declaration that changes a flag clears its confirmation."""
    declared = dict.fromkeys(ENTERPRISE_FLAGS, False)
    confirmed = dict.fromkeys(ENTERPRISE_FLAGS, False)
    for event in events:
        if event.at > moment:
            break
        for name, value in event.flags.items():
            if name not in ENTERPRISE_FLAGS:
                continue  # The filing number rides along with has_registered_model.
            if event.action == EnterpriseFlagsEvent.Action.DECLARED:
                if declared[name] != value:
                    confirmed[name] = False
                declared[name] = bool(value)
            else:
                confirmed[name] = bool(value)
    return {name: declared[name] and confirmed[name] for name in ENTERPRISE_FLAGS}


def check_grant_rates_match_policy() -> tuple[list[Finding], int]:
    """Each grant's rate is what the rule-set version that priced its application (recorded on it;
    its year's rule set for applications made before versions) gives for the inputs it was priced
    with, and that version is one of its year's; the registered-model input rests on a filing
    verified before submission, and every flag priced as true had been declared and confirmed by
    staff at submission."""
    findings: list[Finding] = []
    grants = Grant.objects.select_related(
        "application", "application__model_filing", "application__rule_set", "year__rule_set"
    ).order_by("pk")
    events_of: dict[int, list[EnterpriseFlagsEvent]] = {}
    versions_of: dict[int, set[int]] = {}
    examined = 0
    for grant in grants.iterator(chunk_size=1_000):
        examined += 1
        if len(findings) >= FINDINGS_MAX:
            continue
        application = grant.application
        facts = ApplicationFacts(
            purpose=application.purpose,
            compute_source=application.compute_source,
            has_registered_model=application.priced_has_registered_model,
            foundation_model_developer=application.priced_foundation_model_developer,
            small_or_medium=application.priced_small_or_medium,
            contracted_total_fen=application.priced_contracted_total_fen,
            loan_rate_bp=application.loan_rate_bp,
            project_investment_fen=application.project_investment_fen,
        )
        # The rule-set version that priced it (an application made before versions has none recorded:
        # its year's rule set priced it).
        rule_set = application.rule_set or grant.year.rule_set
        rate = rate_for(rules=rule_set.rules, ceiling_bp=rule_set.ceiling_bp, facts=facts)
        problems = []
        if rate.rate_bp != application.rate_bp or rate.rate_bp != grant.rate_bp:
            problems.append("rate_not_from_policy")
        if grant.year_id not in versions_of:
            versions_of[grant.year_id] = {version.rule_set.pk for version in rule_set_versions(grant.year)}
        if rule_set.pk not in versions_of[grant.year_id]:
            problems.append("rule_set_not_of_year")
        filing = application.model_filing
        if application.priced_has_registered_model and (
            filing is None or filing.verified_at is None or filing.verified_at > application.created_at
        ):
            problems.append("registered_model_without_verified_filing")
        if application.enterprise_id not in events_of:
            events_of[application.enterprise_id] = list(
                EnterpriseFlagsEvent.objects.filter(enterprise_id=application.enterprise_id).order_by("at", "id")
            )
        counted = _flags_counted_at(events_of[application.enterprise_id], application.created_at)
        for name in ("foundation_model_developer", "small_or_medium"):
            if getattr(application, f"priced_{name}") and not counted[name]:
                problems.append(f"{name}_not_confirmed_at_submission")
        if problems:
            findings.append(
                {
                    "grant_id": grant.pk,
                    "application_id": application.pk,
                    "problems": problems,
                    "rate_bp": grant.rate_bp,
                    "application_rate_bp": application.rate_bp,
                    "policy_rate_bp": rate.rate_bp,
                }
            )
    return findings, examined


def check_grants_to_eligible_pairs() -> tuple[list[Finding], int]:
    """No grant was issued to an enterprise and provider that were the same organisation, listed
    as related parties, or either sanctioned on the day (Asia/Shanghai), as known at approval."""
    sql = """
        WITH grants AS (
            SELECT g.id AS grant_id, g.issued_at, (g.issued_at AT TIME ZONE 'Asia/Shanghai')::date AS issued_on,
                   e.uscc AS enterprise_uscc, p.uscc AS provider_uscc
              FROM coupons_grant g
              JOIN accounts_enterprise e ON e.id = g.enterprise_id
              JOIN accounts_provider p ON p.id = g.provider_id
        )
        SELECT g.grant_id, g.enterprise_uscc, g.provider_uscc,
               g.enterprise_uscc = g.provider_uscc AS same_organisation,
               EXISTS (SELECT 1 FROM accounts_relatedparty r
                        WHERE r.uscc_low = least(g.enterprise_uscc, g.provider_uscc)
                          AND r.uscc_high = greatest(g.enterprise_uscc, g.provider_uscc)
                          AND r.created_at <= g.issued_at) AS related_parties,
               (SELECT array_agg(s.id ORDER BY s.id) FROM accounts_sanction s
                 WHERE s.uscc IN (g.enterprise_uscc, g.provider_uscc) AND s.created_at <= g.issued_at
                   AND s.valid_from <= g.issued_on
                   AND (s.valid_until IS NULL OR s.valid_until >= g.issued_on)) AS sanction_ids
          FROM grants g
         WHERE g.enterprise_uscc = g.provider_uscc
            OR EXISTS (SELECT 1 FROM accounts_relatedparty r
                        WHERE r.uscc_low = least(g.enterprise_uscc, g.provider_uscc)
                          AND r.uscc_high = greatest(g.enterprise_uscc, g.provider_uscc)
                          AND r.created_at <= g.issued_at)
            OR EXISTS (SELECT 1 FROM accounts_sanction s
                        WHERE s.uscc IN (g.enterprise_uscc, g.provider_uscc) AND s.created_at <= g.issued_at
                          AND s.valid_from <= g.issued_on
                          AND (s.valid_until IS NULL OR s.valid_until >= g.issued_on))
         ORDER BY g.grant_id
    """
    return _rows(sql), count_of("SELECT count(*) FROM coupons_grant")


def check_two_people_decided() -> tuple[list[Finding], int]:
    """Every approval, cap override, reversal, revocation, payment and approved claim was asked for (or
    reviewed, or claimed) by one person and decided by a different one, and each sensitive action
    matches the approved request (`approvals`) that let it happen: same requester, same decider. A
    reversal by an upheld dispute matches the dispute instead: the disputer asked, the person who
    resolved it decided."""
    approved_request = """
        EXISTS (SELECT 1 FROM approvals_approvalrequest q
                 WHERE q.action = %s AND q.target = {target} AND q.status = 'approved'
                   AND q.requested_by_id = {requester} AND q.decided_by_id = {decider})
    """

    def matched(action: str, target: str, requester: str, decider: str) -> str:
        return approved_request.format(target=target, requester=requester, decider=decider).replace("%s", f"'{action}'")

    sql = f"""
        SELECT 'application' AS kind, a.id, a.reviewed_by_id AS requested_by, a.approved_by_id AS decided_by
          FROM coupons_application a
         WHERE a.status = 'approved' AND (a.approved_by_id IS NULL OR a.reviewed_by_id IS NULL
                                          OR a.approved_by_id = a.reviewed_by_id)
        UNION ALL
        SELECT 'cap_override', o.id, o.requested_by_id, o.granted_by_id
          FROM coupons_capoverride o
         WHERE o.requested_by_id = o.granted_by_id
            OR NOT {
        matched("cap_override", "'cap:' || o.enterprise_id || ':' || o.year_id", "o.requested_by_id", "o.granted_by_id")
    }
        UNION ALL
        SELECT 'redemption_reverse', r.id, r.reversal_requested_by_id, r.reversed_by_id
          FROM coupons_redemption r
         WHERE r.status = 'reversed'
           AND (r.reversal_requested_by_id IS NULL OR r.reversed_by_id IS NULL
                OR r.reversal_requested_by_id = r.reversed_by_id
                OR NOT ({
        matched("redemption_reverse", "'redemption:' || r.id", "r.reversal_requested_by_id", "r.reversed_by_id")
    }
                        -- An upheld dispute: the enterprise's dispute asked, the reviewer's resolution decided.
                        OR (r.acknowledgement = 'upheld' AND r.reversal_requested_by_id = r.acknowledged_by_id
                            AND r.reversed_by_id = r.dispute_resolved_by_id)))
        UNION ALL
        SELECT 'grant_revoke', g.id, g.revocation_requested_by_id, g.revoked_by_id
          FROM coupons_grant g
         WHERE g.status = 'revoked'
           AND (g.revocation_requested_by_id IS NULL OR g.revoked_by_id IS NULL
                OR g.revocation_requested_by_id = g.revoked_by_id
                OR NOT {matched("grant_revoke", "'grant:' || g.id", "g.revocation_requested_by_id", "g.revoked_by_id")})
        UNION ALL
        SELECT 'settlement_pay', st.id, st.payment_requested_by_id, st.paid_by_id
          FROM coupons_settlement st
         WHERE st.status = 'paid'
           AND (st.payment_requested_by_id IS NULL OR st.paid_by_id IS NULL
                OR st.paid_by_id = st.payment_requested_by_id OR st.paid_by_id = st.created_by_id
                OR NOT {
        matched("settlement_pay", "'settlement:' || st.id", "st.payment_requested_by_id", "st.paid_by_id")
    })
        UNION ALL
        SELECT 'claim_decision', c.id, c.created_by_id, c.decided_by_id
          FROM coupons_claim c
         WHERE c.status IN ('approved', 'paid') AND (c.decided_by_id IS NULL OR c.decided_by_id = c.created_by_id)
         ORDER BY 1, 2
    """
    total = count_of(
        """SELECT (SELECT count(*) FROM coupons_application WHERE status = 'approved')
                + (SELECT count(*) FROM coupons_capoverride)
                + (SELECT count(*) FROM coupons_redemption WHERE status = 'reversed')
                + (SELECT count(*) FROM coupons_grant WHERE status = 'revoked')
                + (SELECT count(*) FROM coupons_settlement WHERE status = 'paid')
                + (SELECT count(*) FROM coupons_claim WHERE status IN ('approved', 'paid'))"""
    )
    return _rows(sql), total


def check_stored_files_intact() -> tuple[list[Finding], int]:
    """Every stored document file still hashes to its recorded SHA-256, and no file sits in storage
    without its row (evidence/audit.py)."""
    return stored_files_findings(findings_max=FINDINGS_MAX)


def check_invoices_used_once() -> tuple[list[Finding], int]:
    """No invoice is in use twice: the register's live numbers are in their one written form and
    distinct once normalised again (beside the unique index, which a number stored in another form
    would slip past), and no invoice document's bytes stand behind two different live numbers."""
    findings: list[Finding] = []
    by_number: dict[str, list[int]] = {}
    examined = 0
    live = Invoice.objects.filter(released_at__isnull=True).order_by("pk").values_list("pk", "number")
    for invoice_id, number in live.iterator(chunk_size=5_000):
        examined += 1
        try:
            normalised = invoice_number_normalise(number)
        except InvalidInvoiceNumber:
            findings.append({"problem": "invalid_number", "invoice_ids": [invoice_id], "number": number})
            continue
        if normalised != number:
            findings.append({"problem": "not_normalised", "invoice_ids": [invoice_id], "number": number})
        by_number.setdefault(normalised, []).append(invoice_id)
    findings += [
        {"problem": "number_used_twice", "invoice_ids": ids, "number": number}
        for number, ids in sorted(by_number.items())
        if len(ids) > 1
    ]
    sql = """
        SELECT 'document_for_two_numbers' AS problem, d.sha256,
               array_agg(i.id ORDER BY i.id) AS invoice_ids, array_agg(DISTINCT i.number) AS numbers
          FROM coupons_invoice i JOIN evidence_document d ON d.id = i.document_id
         WHERE i.released_at IS NULL
         GROUP BY d.sha256
        HAVING count(DISTINCT i.number) > 1
         ORDER BY d.sha256
    """
    findings += _rows(sql)
    return findings[:FINDINGS_MAX], examined


def check_settled_redemptions_have_evidence() -> tuple[list[Finding], int]:
    """Every redemption a settlement took (captured, or reversed since) has its invoice document (of
    kind invoice) and the enterprise's confirmation, a window that passed, or a dismissed dispute."""
    sql = """
        SELECT r.id AS redemption_id, r.settlement_id, r.status, r.acknowledgement,
               r.invoice_document_id, d.kind AS invoice_document_kind
          FROM coupons_redemption r LEFT JOIN evidence_document d ON d.id = r.invoice_document_id
         WHERE r.settlement_id IS NOT NULL
           AND (r.invoice_document_id IS NULL OR d.kind <> 'invoice'
                OR r.acknowledgement NOT IN ('confirmed', 'deemed_confirmed', 'dismissed'))
         ORDER BY r.id
    """
    return _rows(sql), count_of("SELECT count(*) FROM coupons_redemption WHERE settlement_id IS NOT NULL")


def check_stacking_within_ceiling() -> tuple[list[Finding], int]:
    """A contract (provider, contract number) granted in several programs: every two of them are
    joined by a stacking rule, and its grants net of revocations never pass the tightest ceiling of
    those rules on the smallest fee its granted applications state (coupons/services/stacking.py).
    The rules are those written by its last grant: a rule written later judges later grants only
    (found from outside: a rule written afterwards made every audit fail for contracts granted right)."""
    sql = """
        WITH granted AS (
            SELECT a.provider_id, a.contract_number, a.program_id, a.contract_fee_fen,
                   g.amount_fen - g.revoked_fen AS net_fen, g.issued_at
              FROM coupons_grant g JOIN coupons_application a ON a.id = g.application_id
        ), contracts AS (
            SELECT provider_id, contract_number, array_agg(DISTINCT program_id ORDER BY program_id) AS programs,
                   min(contract_fee_fen) AS fee_fen, sum(net_fen) AS net_fen, max(issued_at) AS last_issued_at
              FROM granted GROUP BY provider_id, contract_number
            HAVING count(DISTINCT program_id) > 1
        ), pairs AS (
            SELECT c.provider_id, c.contract_number, c.last_issued_at, p1, p2
              FROM contracts c, unnest(c.programs) p1, unnest(c.programs) p2
             WHERE p1 < p2
        ), rule_pairs AS (
            SELECT r.id AS rule_id, r.created_at, m1.program_id AS p1, m2.program_id AS p2
              FROM coupons_stackingrule r
              JOIN coupons_stackingruleprogram m1 ON m1.rule_id = r.id
              JOIN coupons_stackingruleprogram m2 ON m2.rule_id = r.id AND m1.program_id < m2.program_id
        ), joined AS (
            SELECT p.provider_id, p.contract_number,
                   count(*) FILTER (WHERE NOT EXISTS (
                       SELECT 1 FROM rule_pairs rp
                        WHERE rp.p1 = p.p1 AND rp.p2 = p.p2 AND rp.created_at <= p.last_issued_at)) AS unjoined_pairs,
                   array_agg(DISTINCT rp.rule_id) FILTER (WHERE rp.rule_id IS NOT NULL) AS rule_ids
              FROM pairs p LEFT JOIN rule_pairs rp
                ON rp.p1 = p.p1 AND rp.p2 = p.p2 AND rp.created_at <= p.last_issued_at
             GROUP BY p.provider_id, p.contract_number
        ), judged AS (
            SELECT c.provider_id, c.contract_number, c.programs, c.fee_fen, c.net_fen, j.unjoined_pairs,
                   (SELECT min(CASE WHEN r.amount_fen IS NULL THEN c.fee_fen * r.share_bp / 10000
                                    ELSE least(c.fee_fen * r.share_bp / 10000, r.amount_fen) END)
                      FROM coupons_stackingrule r WHERE r.id = ANY(j.rule_ids)) AS ceiling_fen
              FROM contracts c JOIN joined j USING (provider_id, contract_number)
        )
        SELECT provider_id, contract_number, programs, fee_fen, net_fen, ceiling_fen, unjoined_pairs
          FROM judged
         WHERE unjoined_pairs > 0 OR ceiling_fen IS NULL OR net_fen > ceiling_fen
         ORDER BY provider_id, contract_number
    """
    # Every granted contract is looked at: those granted in one program only pass at once.
    examined = """
        SELECT count(DISTINCT (a.provider_id, a.contract_number))
          FROM coupons_grant g JOIN coupons_application a ON a.id = g.application_id
    """
    return _rows(sql), count_of(examined)


def _years() -> list[tuple[str, int]]:
    """Every program year that opened, as (program, year)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT program_id, year FROM coupons_programyear WHERE status <> 'draft' ORDER BY 1, 2")
        return [(program, year) for (program, year) in cursor.fetchall()]


CHECKS: Final[list[tuple[str, Callable[[], tuple[list[Finding], int]]]]] = [
    # The ledger's own checks first (ledger/audit.py), then the coupon program's.
    *((name, partial(check, findings_max=FINDINGS_MAX)) for name, check in LEDGER_CHECKS),
    ("issued_within_pool", check_issued_within_pool),
    ("granted_within_cap", check_granted_within_cap),
    ("redemptions_within_rate", check_redemptions_within_rate),
    ("contract_bills_within_fee", check_contract_bills_within_fee),
    ("closed_years_hold_nothing", check_closed_years_hold_nothing),
    ("grants_match_ledger", check_grants_match_ledger),
    ("redemptions_match_ledger", check_redemptions_match_ledger),
    ("settlements_match_ledger", check_settlements_match_ledger),
    ("claims_match_ledger", check_claims_match_ledger),
    ("pool_figures_match_rows", check_pool_figures_match_rows),
    ("grant_rates_match_policy", check_grant_rates_match_policy),
    ("grants_to_eligible_pairs", check_grants_to_eligible_pairs),
    ("two_people_decided", check_two_people_decided),
    ("stored_files_intact", check_stored_files_intact),
    ("invoices_used_once", check_invoices_used_once),
    ("settled_redemptions_have_evidence", check_settled_redemptions_have_evidence),
    ("stacking_within_ceiling", check_stacking_within_ceiling),
]


def _run_check(name: str, check: Callable[[], tuple[list[Finding], int]]) -> dict[str, Any]:
    try:
        with transaction.atomic():  # A failing statement must not poison the checks after it.
            findings, examined = check()
    except Exception as error:  # An audit that cannot run a check has failed that check.
        audit_log.exception("audit check %s could not run", name)
        return {"name": name, "ok": False, "details": {"error": f"{type(error).__name__}: {error}"}}
    return {"name": name, "ok": not findings, "details": {"examined": examined, "findings": findings}}


def audit_run_create(*, started_by: User | None = None) -> AuditRun:
    return AuditRun.objects.create(started_by=started_by)


def audit_run_start(*, started_by: User) -> AuditRun:
    """An auditor starts an audit: the run and the outbox message that runs it in the background
    commit together (coupons/services/outbox.py), so a run is never left without its message."""
    from coupons.services.outbox import outbox_enqueue

    reach_every_program(started_by, "An audit")
    with transaction.atomic():
        run = audit_run_create(started_by=started_by)
        outbox_enqueue(task="coupons.tasks.run_audit", args=[run.pk])
    return run


def audit_execute(*, run_id: int, now: datetime | None = None) -> AuditRun:
    """Run every check for an AuditRun and store the findings (a finished run is left alone).

    A failed run's result and its alert are stored in one transaction, and the alert is mailed
    from the outbox after it commits: a mail server that is down loses no alert, and a rerun of
    a finished run (a retried task) has nothing left to do."""
    run = AuditRun.objects.get(pk=run_id)
    if run.status != AuditRun.Status.RUNNING:
        return run
    results = [_run_check(name, check) for name, check in CHECKS]
    for result in results:
        # Chains archived out of the database are reported, not verified: each with its dump's
        # manifest hash, against which the dump is checked (docs/ledger-history.md).
        if result["name"] == "hash_chain_intact" and "findings" in result["details"]:
            result["details"]["archived_chains"] = archived_chains()
    with transaction.atomic():
        run = AuditRun.objects.select_for_update().get(pk=run_id)
        if run.status != AuditRun.Status.RUNNING:  # Another worker finished it meanwhile.
            return run
        run.checks = results
        run.status = AuditRun.Status.PASSED if all(r["ok"] for r in results) else AuditRun.Status.FAILED
        run.finished_at = now or timezone.now()
        run.save(update_fields=["checks", "status", "finished_at"])
        if run.status == AuditRun.Status.FAILED:
            from coupons.services.alerts import alert_audit_failed

            audit_log.error("audit %s failed: %s", run.pk, ", ".join(r["name"] for r in results if not r["ok"]))
            alert_audit_failed(run)
    return run
