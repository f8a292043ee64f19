"""The batched grant expiry (`grants_expire_batch`), which the annual reset runs a few hundred grants to
a transaction: each grant lapses exactly once whether a batch, another batch or a single expiry gets
to it first, the lapses are the single path's, to the fen, and overlapping batches do not deadlock.
The races run threads on PostgreSQL (tests/concurrency.py)."""

from datetime import timedelta

import pytest
from django.db import transaction

from coupons import books
from coupons.models import Application, Grant, Redemption
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.grants import grant_expire, grant_issue, grants_expire_batch
from coupons.services.redemptions import redemption_create
from coupons.services.reset import annual_reset, program_year_close
from coupons.services.years import year_end
from ledger.models import Transfer
from ledger.selectors import account_balance, account_get
from tests.claims import claim, grant_in, open_reimbursement_year
from tests.concurrency import race
from tests.controls import grant_revoke
from tests.coupons.conftest import IN_YEAR, YEAR, Cast, make_cast, open_year
from tests.evidence import invoice

AFTER = year_end(YEAR) + timedelta(seconds=1)


def issue_grants(cast: Cast, count: int) -> list[Grant]:
    """`count` grants of 1,000 + n fen in the open year, issued through the ledger as approvals issue
    them (the applications are written directly: their review is not what is tested here)."""
    program_year = open_year(cast.admin, pool_fen=10**9, cap_fen=10**9)
    applications = Application.objects.bulk_create(
        Application(
            enterprise=cast.enterprise,
            provider=cast.provider,
            program_id=program_year.program_id,
            year=program_year,
            contract_number=f"B-{n}",
            contract_fee_fen=10_000,
            compute_source="domestic",
            purpose="training",
            rate_bp=3000,
            rate_rule="test",
            eligible_fen=3_000,
            requested_fen=3_000,
            recommended_fen=1_000 + n,
            status="approved",
            submitted_by=cast.member,
            reviewed_by=cast.reviewer,
            approved_by=cast.approver,
        )
        for n in range(count)
    )
    with transaction.atomic():  # As an approval issues it: the contract's lock is held to the commit.
        return [
            grant_issue(application=application, approver=cast.approver, amount_fen=1_000 + n)
            for n, application in enumerate(applications)
        ]


def hold(cast: Cast, grant: Grant, bill_number: str, *, capture: bool = False) -> Redemption:
    """A redemption of 1,000 fen of bill (300 fen of coupon) on the grant, held or captured."""
    return redemption_create(
        grant=grant,
        bill_number=bill_number,
        bill_amount_fen=1_000,
        actor=cast.clerk,
        capture=capture,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


def available(grant: Grant) -> int:
    return account_balance(account_id=grant.account_id).available_fen


def lapsed_total() -> int:
    return account_balance(account_id=account_get(code=books.lapsed_code(YEAR)).pk).credits_posted


def assert_each_lapsed_once(grants: list[Grant], expected: dict[int, int]) -> None:
    """Every grant expired with its unused balance lapsed by one transfer, to the fen."""
    for grant in grants:
        grant.refresh_from_db()
        assert (grant.status, grant.lapsed_fen) == ("expired", expected[grant.pk]), grant.pk
        assert available(grant) == 0 and account_balance(account_id=grant.account_id).debits_pending == 0
    lapses = Transfer.objects.filter(reason="grant_lapse", debit_account_id__in=[g.account_id for g in grants])
    assert sorted(lapses.values_list("key", flat=True)) == sorted(
        f"grant:{g.application_id}:lapse" for g in grants if expected[g.pk] > 0
    )
    assert lapsed_total() == sum(expected.values())
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)


@pytest.mark.django_db(transaction=True)
def test_a_batch_racing_single_expiries_and_another_batch_lapses_each_grant_once():
    cast = make_cast()
    grants = issue_grants(cast, 12)
    hold(cast, grants[0], "H-0")  # Released by whichever expiry gets grants[0].
    hold(cast, grants[1], "C-1", capture=True)  # 300 fen used: the rest lapses.
    hold(cast, grants[5], "H-5")
    program_year_close(year=YEAR, now=year_end(YEAR))
    expected = {grant.pk: grant.amount_fen for grant in grants}
    expected[grants[1].pk] -= 300
    ids = [grant.pk for grant in grants]

    results = race(
        [
            lambda: grants_expire_batch(grant_ids=ids, now=AFTER),
            lambda: grants_expire_batch(grant_ids=ids[::-1], now=AFTER),
            *(lambda grant_id=grant_id: grant_expire(grant_id=grant_id, now=AFTER) for grant_id in ids[::-1]),
        ]
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    batches, singles = results[:2], dict(zip(ids[::-1], results[2:], strict=True))
    won: dict[int, list[int]] = {grant_id: [] for grant_id in ids}
    for batch in batches:
        for grant_id, lapsed_fen in batch.items():
            won[grant_id].append(lapsed_fen)
    for grant_id, lapsed_fen in singles.items():
        if lapsed_fen is not None:
            won[grant_id].append(lapsed_fen)
    assert won == {grant_id: [expected[grant_id]] for grant_id in ids}, "each grant expired once, by one racer"
    assert_each_lapsed_once(grants, expected)
    assert set(Redemption.objects.filter(bill_number__startswith="H-").values_list("status", flat=True)) == {"voided"}


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_in_any_order_do_not_deadlock():
    cast = make_cast()
    grants = issue_grants(cast, 16)
    for n in (2, 7, 9, 13):  # Holds: each batch also locks redemptions and the provider's accounts.
        hold(cast, grants[n], f"H-{n}")
    program_year_close(year=YEAR, now=year_end(YEAR))
    ids = [grant.pk for grant in grants]
    # Each batch names its grants in another order and overlaps the others.
    slices = [ids[0:10], ids[6:16][::-1], ids[3:13][::-1], ids[::2] + ids[1::2], ids[::-1]]

    results = race([lambda part=part: grants_expire_batch(grant_ids=part, now=AFTER) for part in slices])

    assert not [r for r in results if isinstance(r, Exception)], results
    expired = [grant_id for batch in results for grant_id in batch]
    assert sorted(expired) == sorted(ids), "every grant expired, each by one batch"
    assert_each_lapsed_once(grants, {grant.pk: grant.amount_fen for grant in grants})


def test_a_batch_skips_grants_already_expired_or_revoked(db, db_snapshot):
    cast = make_cast()
    grants = issue_grants(cast, 6)
    grant_revoke(grant=grants[4], actor=cast.approver, reason="cancelled", now=IN_YEAR)
    program_year_close(year=YEAR, now=year_end(YEAR))
    assert grant_expire(grant_id=grants[0].pk, now=AFTER) == 1_000
    assert grant_expire(grant_id=grants[3].pk, now=AFTER) == 1_003

    lapsed = grants_expire_batch(grant_ids=[g.pk for g in grants], now=AFTER)

    assert lapsed == {grants[1].pk: 1_001, grants[2].pk: 1_002, grants[5].pk: 1_005}
    assert lapsed_total() == 1_000 + 1_001 + 1_002 + 1_003 + 1_005
    assert Grant.objects.get(pk=grants[4].pk).status == "revoked"
    assert_each_lapsed_once([grants[n] for n in (0, 1, 2, 3, 5)], {grants[n].pk: 1_000 + n for n in (0, 1, 2, 3, 5)})
    # Run again (a redelivered task, a resumed reset): nothing is left to do, and nothing changes.
    before = db_snapshot()
    assert grants_expire_batch(grant_ids=[g.pk for g in grants], now=AFTER + timedelta(hours=1)) == {}
    assert db_snapshot() == before


def test_a_batch_writes_the_single_paths_lapses(db):
    """The same transfers, field for field (bar ids and times), as one `grant_expire` per grant."""
    cast = make_cast()
    grants = issue_grants(cast, 6)
    hold(cast, grants[2], "C-2", capture=True)
    program_year_close(year=YEAR, now=year_end(YEAR))
    fields = ("key", "debit_account_id", "credit_account_id", "amount_fen", "kind", "reason", "metadata", "chain")
    for grant in grants[:3]:
        grant_expire(grant_id=grant.pk, now=AFTER)
    singly = list(Transfer.objects.filter(reason="grant_lapse").order_by("pk").values(*fields))

    grants_expire_batch(grant_ids=[g.pk for g in grants[3:]], now=AFTER)

    batched = list(Transfer.objects.filter(reason="grant_lapse").order_by("pk").values(*fields))[3:]
    assert [t["key"] for t in singly + batched] == [f"grant:{g.application_id}:lapse" for g in grants]
    for single, batch in zip(singly, batched, strict=True):
        assert {k: v for k, v in single.items() if k not in ("key", "debit_account_id", "amount_fen")} == {
            k: v for k, v in batch.items() if k not in ("key", "debit_account_id", "amount_fen")
        }
    assert [t["amount_fen"] for t in singly + batched] == [1_000, 1_001, 1_002 - 300, 1_003, 1_004, 1_005]


def test_a_batch_rejects_submitted_claims_and_lapses_what_they_held(cast):
    open_reimbursement_year(cast.admin, cap_fen=600_000)
    grants = [grant_in(cast) for _ in range(2)]  # 300,000 fen each
    submitted = [claim(cast, grants[0], 200_000), claim(cast, grants[1], 100_000), claim(cast, grants[0], 100_000)]

    lapsed = grants_expire_batch(grant_ids=[g.pk for g in grants], now=grants[0].expires_at)

    assert lapsed == {grants[0].pk: 300_000, grants[1].pk: 300_000}  # The released holds lapse with the rest.
    for made in submitted:
        made.refresh_from_db()
        assert (made.status, made.decided_by_id, made.decision_reason) == ("rejected", None, "grant_expired")
    for grant in grants:
        assert account_balance(account_id=grant.account_id).debits_pending == 0
    assert program_year_figures(year=YEAR) == program_year_figures_from_rows(year=YEAR)


def test_the_reset_expires_a_batch_per_transaction_and_reports_each(db):
    cast = make_cast()
    grants = issue_grants(cast, 7)
    messages: list[str] = []

    report = annual_reset(year=YEAR, now=AFTER, progress=messages.append, batch_size=3)

    assert (report.grants_expired, report.lapsed_fen) == (7, sum(1_000 + n for n in range(7)))
    assert [m for m in messages if "grants expired" in m] == [
        f"{YEAR}: grants expired 3/7",
        f"{YEAR}: grants expired 6/7",
        f"{YEAR}: grants expired 7/7",
    ]
    assert_each_lapsed_once(grants, {g.pk: g.amount_fen for g in grants})
