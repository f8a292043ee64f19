"""Grants: issued on approval in one ledger batch against the pool and the cap; revoked when one member
of staff asks and a different approver approves (`approvals`); expired into the year's lapsed account
once past their expiry, which the year's policy sets."""

import calendar
import datetime as dt
from collections.abc import Sequence
from typing import Final

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.roles import require_role
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create, reason_clean
from config.errors import InvalidState
from coupons import books
from coupons.errors import CapExceeded, FourEyes, PoolExhausted
from coupons.grant_codes import grant_code
from coupons.locks import grant_lock
from coupons.models import Application, Claim, Grant, ProgramYear, Redemption
from coupons.services.reach import program_of_grant, reach_program
from coupons.services.stacking import contract_lock, stacking_require_room, stacking_room
from coupons.services.years import PROGRAM_TIME_ZONE, cap_account_ensure, year_end
from ledger.errors import ExceedsCredits
from ledger.selectors import account_balance, accounts_available_fen
from ledger.services import (
    TRANSFERS_PER_BATCH_MAX,
    TransferRequest,
    account_create,
    transfer_create,
    transfers_create,
)

ACTION_REVOKE = "grant_revoke"
EXPIRE_BATCH_SIZE: Final = 500
# Grants expired per transaction by `grants_expire_batch` (the annual reset's default): a few hundred
# grants make one ledger batch (at most `ledger.services.TRANSFERS_PER_BATCH_MAX` transfers), and a
# transaction that holds their locks for a fraction of a second.
GRANTS_EXPIRE_BATCH_SIZE: Final = 200


def months_after(moment: dt.datetime, months: int) -> dt.datetime:
    """The same wall-clock time `months` calendar months later in Asia/Shanghai, on the month's last
    day when it is shorter (31 January + 1 month = 28 or 29 February)."""
    local = timezone.localtime(moment, PROGRAM_TIME_ZONE)
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    return local.replace(year=year, month=month, day=min(local.day, calendar.monthrange(year, month)[1]))


def grant_expires_at(*, program_year: ProgramYear, issued_at: dt.datetime) -> dt.datetime:
    """When a grant issued at `issued_at` in `program_year` expires, by the year's policy."""
    if program_year.grant_validity == ProgramYear.GrantValidity.MONTHS:
        assert program_year.grant_validity_months is not None, "the database requires the months"
        return months_after(issued_at, program_year.grant_validity_months)
    return year_end(program_year.year) + dt.timedelta(days=program_year.grace_days)


def grant_issue(*, application: Application, approver: User, amount_fen: int) -> Grant:
    """Issue the grant of an approved application. The caller holds the application's lock.

    One ledger batch debits the pool (`pool:P:Y → grant:P:Y:A`) and the cap (`cap:P:Y:E → cap_used:P:Y`):
    both limits are CHECK constraints, so racing approvals can never pass either.

    A contract that other programs subsidise too is granted at most what their grants leave of the
    combined ceiling: `amount_fen` is lowered to it (the grant's amount says what was issued), and
    `stacking_ceiling` refuses when nothing is left. The contract's lock, which every program's
    approval and submission for it takes, serialises approvals racing in two programs.
    """
    contract_lock(provider_id=application.provider_id, contract_number=application.contract_number)
    room = stacking_room(
        program=application.program_id,
        provider_id=application.provider_id,
        contract_number=application.contract_number,
        contract_fee_fen=application.contract_fee_fen,
        exclude_application_id=application.pk,
        count_open=False,
    )
    if room is not None:
        amount_fen = min(amount_fen, stacking_require_room(room, contract_number=application.contract_number))
    year = application.year
    cap_account_id = cap_account_ensure(enterprise_id=application.enterprise_id, year=year)
    if year.redemption_mode == ProgramYear.RedemptionMode.ENTERPRISE_REIMBURSEMENT:
        # Here rather than in each claim: a claim then only reads the account its hold credits.
        books.enterprise_account_ensure(application.enterprise_id)
    # The provider's account, which its redemptions credit, exists before the first one: never made on
    # the redemption's path.
    books.provider_account_ensure(application.provider_id)
    account = account_create(code=books.grant_account_code(year, application.pk), debits_must_not_exceed_credits=True)
    pool_id = books.account_id(books.pool_code(year))
    cap_used_id = books.account_id(books.cap_used_code(year))
    try:
        transfers_create(
            transfers=[
                TransferRequest.posted(
                    key=f"grant:{application.pk}:issue",
                    debit_account_id=pool_id,
                    credit_account_id=account.pk,
                    amount_fen=amount_fen,
                    reason="grant_issue",
                    chain=books.chain(year),
                ),
                TransferRequest.posted(
                    key=f"grant:{application.pk}:cap",
                    debit_account_id=cap_account_id,
                    credit_account_id=cap_used_id,
                    amount_fen=amount_fen,
                    reason="grant_cap",
                    chain=books.chain(year),
                ),
            ]
        )
    except ExceedsCredits as error:
        if error.account_code == books.pool_code(year):
            raise PoolExhausted(
                f"The {year.year} pool has {error.available_fen} fen left; the grant needs {amount_fen}.",
                available_fen=error.available_fen,
            ) from error
        raise CapExceeded(
            f"The enterprise has {error.available_fen} fen of its {year.year} cap left; the grant needs {amount_fen}.",
            available_fen=error.available_fen,
        ) from error
    return Grant.objects.create(
        code=grant_code(year=year.year, number=application.pk),
        application=application,
        enterprise_id=application.enterprise_id,
        provider_id=application.provider_id,
        year=year,
        amount_fen=amount_fen,
        rate_bp=application.rate_bp,
        account=account,
        issued_by=approver,
        expires_at=grant_expires_at(program_year=year, issued_at=timezone.now()),
    )


def grant_revoke_request(*, grant: Grant, requester: User, reason: str) -> ApprovalRequest:
    """A reviewer or approver asks for a grant's revocation; a different approver decides it."""
    require_role(requester, Role.REVIEWER, Role.APPROVER)
    program = program_of_grant(grant)
    reach_program(requester, program, f"grant {grant.pk}")
    reason = reason_clean(reason)
    if grant.status != Grant.Status.ACTIVE:
        raise InvalidState(f"Only an active grant is revoked; this one is {grant.status}.")
    return approval_request_create(
        action=ACTION_REVOKE,
        target=f"grant:{grant.pk}",
        payload={"grant": grant.pk, "code": grant.code, "program": program},
        reason=reason,
        requester=requester,
    )


def grant_revoke(
    *, grant: Grant, actor: User, requested_by: User, reason: str, now: dt.datetime | None = None
) -> Grant:
    """An approver revokes a grant someone else asked to revoke: outstanding holds are voided (and
    submitted claims rejected), and the unused balance goes back to the pool and to the enterprise's
    cap. Captured redemptions and approved claims stand.

    Called by the approval of a `grant_revoke` request (`coupons/approval_actions.py`)."""
    from coupons.services.claims import claims_release_on_grant_locked
    from coupons.services.redemptions import redemption_release_locked

    require_role(actor, Role.APPROVER)
    reach_program(actor, program_of_grant(grant), f"grant {grant.pk}")
    if requested_by.pk == actor.pk:
        raise FourEyes("The approver who revokes a grant may not be the one who asked for it.")
    reason = reason_clean(reason)
    with transaction.atomic():
        locked = grant_lock(grant.pk)
        if locked.status != Grant.Status.ACTIVE:
            raise InvalidState(f"Only an active grant is revoked; this one is {locked.status}.")
        holds = Redemption.objects.select_for_update().filter(grant=locked, status=Redemption.Status.PENDING)
        for redemption in holds.order_by("pk"):
            redemption_release_locked(
                redemption=redemption, status=Redemption.Status.VOIDED, reason="grant_revoked", now=now
            )
        claims_release_on_grant_locked(grant=locked, reason="grant_revoked", now=now)
        unused_fen = account_balance(account_id=locked.account_id).available_fen
        year = locked.year
        if unused_fen > 0:
            transfers_create(
                transfers=[
                    TransferRequest.posted(
                        key=f"grant:{locked.application_id}:revoke",
                        debit_account_id=locked.account_id,
                        credit_account_id=books.account_id(books.pool_code(year)),
                        amount_fen=unused_fen,
                        reason="grant_revoke",
                        chain=books.chain(year),
                    ),
                    TransferRequest.posted(
                        key=f"grant:{locked.application_id}:revoke_cap",
                        debit_account_id=books.account_id(books.cap_used_code(year)),
                        credit_account_id=books.account_id(books.cap_code(locked.enterprise_id, year)),
                        amount_fen=unused_fen,
                        reason="grant_revoke_cap",
                        chain=books.chain(year),
                    ),
                ]
            )
        locked.status = Grant.Status.REVOKED
        locked.revocation_requested_by = requested_by
        locked.revoked_by = actor
        locked.revoked_at = now or timezone.now()
        locked.revoke_reason = reason
        locked.revoked_fen = unused_fen
        locked.save(
            update_fields=[
                "status",
                "revocation_requested_by",
                "revoked_by",
                "revoked_at",
                "revoke_reason",
                "revoked_fen",
            ]
        )
        return locked


def grant_expire(*, grant_id: int, now: dt.datetime) -> int | None:
    """Lapse what is left on one grant past its expiry into `lapsed:P:Y`, voiding its outstanding
    holds (and rejecting its submitted claims) first; return the fen lapsed, or None when the grant
    was no longer active (expired by an earlier or concurrent run, or revoked).

    The grant's lock orders concurrent runs, and the ledger transfer key (`grant:<application>:lapse`)
    is the backstop: no redelivery or racing run can lapse a fen twice.
    """
    from coupons.services.claims import claims_release_on_grant_locked
    from coupons.services.redemptions import redemption_release_locked

    with transaction.atomic():
        grant = grant_lock(grant_id)
        if grant.status != Grant.Status.ACTIVE:
            return None
        assert now >= grant.expires_at, "a grant expires only after its expiry"
        holds = Redemption.objects.select_for_update().filter(grant=grant, status=Redemption.Status.PENDING)
        for redemption in holds.order_by("pk"):
            redemption_release_locked(
                redemption=redemption, status=Redemption.Status.VOIDED, reason="grant_expired", now=now
            )
        claims_release_on_grant_locked(grant=grant, reason="grant_expired", now=now)
        remaining_fen = account_balance(account_id=grant.account_id).available_fen
        if remaining_fen > 0:
            transfer_create(
                transfer=_lapse_request(grant, books.account_id(books.lapsed_code(grant.year)), remaining_fen), now=now
            )
        grant.status = Grant.Status.EXPIRED
        grant.lapsed_fen = remaining_fen
        grant.save(update_fields=["status", "lapsed_fen"])
        return remaining_fen


def _lapse_request(grant: Grant, lapsed_account_id: int, remaining_fen: int) -> TransferRequest:
    """The lapse of a grant's unused balance: one key per grant, whichever path expires it."""
    return _lapse_of(grant.application_id, grant.account_id, lapsed_account_id, remaining_fen, books.chain(grant.year))


def _lapse_of(
    application_id: int, account_id: int, lapsed_account_id: int, remaining_fen: int, chain: str
) -> TransferRequest:
    """`_lapse_request` from the grant's columns (the batch reads no Grant objects)."""
    return TransferRequest.posted(
        key=f"grant:{application_id}:lapse",
        debit_account_id=account_id,
        credit_account_id=lapsed_account_id,
        amount_fen=remaining_fen,
        reason="grant_lapse",
        chain=chain,
    )


# The batch's grants locked FOR UPDATE in id order (with their year's program, year and chain, which
# never change), then, sent in the same round trip and so run after the locks are held, whether any
# of them has a hold or a submitted claim to release, and the available balance of each grant's
# account (each statement reads what committed before it started: after the locks).
_BATCH_LOCK_SQL = """
SELECT g.id, g.status, g.expires_at, g.account_id, g.application_id, g.year_id, y.program_id, y.year, y.chain
  FROM coupons_grant g JOIN coupons_programyear y ON y.id = g.year_id
 WHERE g.id = ANY(%(ids)s::bigint[])
 ORDER BY g.id
   FOR UPDATE OF g
"""
_BATCH_BUSY_SQL = """
SELECT EXISTS (SELECT 1 FROM coupons_redemption WHERE grant_id = ANY(%(ids)s::bigint[]) AND status = %(pending)s)
    OR EXISTS (SELECT 1 FROM coupons_claim WHERE grant_id = ANY(%(ids)s::bigint[]) AND status = %(submitted)s)
"""
_BATCH_AVAILABLE_SQL = """
SELECT a.id, a.credits_posted - a.debits_posted - a.debits_pending
  FROM coupons_grant g JOIN ledger_account a ON a.id = g.account_id
 WHERE g.id = ANY(%(ids)s::bigint[])
"""


class _LapsedYear:
    """What `books` needs of a grant's year to name its lapsed account and chain (a `YearLike`)."""

    def __init__(self, pk: int, program_id: str, year: int, chain: str) -> None:
        self.pk, self.program_id, self.year, self.chain = pk, program_id, year, chain


def grants_expire_batch(*, grant_ids: Sequence[int], now: dt.datetime) -> dict[int, int]:
    """Expire many grants past their expiry in one transaction, as `grant_expire` expires one; return
    the fen lapsed per grant this call expired (a grant no longer active is left out: an earlier or
    concurrent run expired it, or it was revoked).

    One grant per transaction made the year end take minutes (each commit, lock and ledger batch
    paid for one grant); here a few hundred share them. The grants are locked FOR UPDATE in id
    order, all before anything else (the lock order of `coupons/services/__init__.py`: grant, then
    redemption or claim, then ledger accounts), so two overlapping batches, or a batch and single
    expiries, wait for each other instead of deadlocking. The holds and submitted claims of the
    batch's grants are locked next, each kind at once by id, then released as `grant_expire`
    releases them; the lapses are one ledger batch (`transfers_create`) with the single path's keys
    and fields, and the grant rows are updated in one statement. A batch killed before its commit
    leaves nothing; one racing a single expiry finds the grant expired under its lock and skips it,
    and the ledger's key would refuse a second lapse anyway.
    """
    if not grant_ids:
        return {}
    ids = sorted(set(grant_ids))
    with transaction.atomic():
        connection.ensure_connection()
        raw = connection.connection
        locked, busy, balances = psycopg.Cursor(raw), psycopg.Cursor(raw), psycopg.Cursor(raw)
        params = {"ids": ids, "pending": Redemption.Status.PENDING, "submitted": Claim.Status.SUBMITTED}
        with connection.wrap_database_errors, raw.pipeline():  # Errors as Django's, as the ORM raised them.
            locked.execute(_BATCH_LOCK_SQL, params, prepare=True)
            busy.execute(_BATCH_BUSY_SQL, params, prepare=True)
            balances.execute(_BATCH_AVAILABLE_SQL, params, prepare=True)
        grants = [row for row in locked.fetchall() if row[1] == Grant.Status.ACTIVE]
        ((has_holds_or_claims,),) = busy.fetchall()
        remaining = dict(balances.fetchall())
        if not grants:
            return {}
        assert all(now >= row[2] for row in grants), "a grant expires only after its expiry"
        if has_holds_or_claims:
            remaining = _release_holds_and_claims([row[0] for row in grants], [row[3] for row in grants], now)
        years: dict[int, tuple[int, str]] = {}  # year id -> (its lapsed account, its chain)
        lapses = []
        lapsed_fen = []
        for _, _, _, account_id, application_id, year_id, program_id, year, chain in grants:
            remaining_fen = remaining[account_id]
            if remaining_fen > 0:
                if year_id not in years:
                    lapsed_year = _LapsedYear(year_id, program_id, year, chain)
                    years[year_id] = (books.account_id(books.lapsed_code(lapsed_year)), books.chain(lapsed_year))
                lapsed_account_id, year_chain = years[year_id]
                lapses.append(_lapse_of(application_id, account_id, lapsed_account_id, remaining_fen, year_chain))
            lapsed_fen.append(remaining_fen)
        for start in range(0, len(lapses), TRANSFERS_PER_BATCH_MAX):
            transfers_create(transfers=lapses[start : start + TRANSFERS_PER_BATCH_MAX], now=now)
        # One statement for the batch (bulk_update's CASE per row cost more than the ledger batch).
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE coupons_grant g SET status = %s, lapsed_fen = v.lapsed_fen"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, lapsed_fen) WHERE g.id = v.id",
                [Grant.Status.EXPIRED, [row[0] for row in grants], lapsed_fen],
            )
        return {row[0]: fen for row, fen in zip(grants, lapsed_fen, strict=True)}


def _release_holds_and_claims(grant_ids: list[int], account_ids: list[int], now: dt.datetime) -> dict[int, int]:
    """For `grants_expire_batch`, when some of its grants (locked, active) have holds or submitted
    claims: lock the holds, then the claims, each kind at once by id, and release them as
    `grant_expire` does; return the grant accounts' available balances after."""
    from coupons.services.claims import claims_release_on_grant_locked
    from coupons.services.redemptions import redemption_release_locked

    holds = Redemption.objects.select_for_update().filter(grant_id__in=grant_ids, status=Redemption.Status.PENDING)
    for redemption in holds.order_by("pk"):
        redemption_release_locked(
            redemption=redemption, status=Redemption.Status.VOIDED, reason="grant_expired", now=now
        )
    # The submitted claims are locked at once, by id; each grant's release then finds its own locked.
    claimed = Claim.objects.select_for_update().filter(grant_id__in=grant_ids, status=Claim.Status.SUBMITTED)
    claimed_grants = sorted({claim.grant_id for claim in claimed.order_by("pk")})
    for grant in Grant.objects.select_related("year").filter(pk__in=claimed_grants).order_by("pk"):
        claims_release_on_grant_locked(grant=grant, reason="grant_expired", now=now)
    return accounts_available_fen(account_ids=account_ids)


def grants_due(*, now: dt.datetime, limit: int = EXPIRE_BATCH_SIZE) -> list[int]:
    """Ids of active grants past their expiry, oldest expiry first. Grants another transaction has
    locked are skipped (SKIP LOCKED): it is expiring or redeeming them now. The caller is in a
    transaction, which holds the locks until it ends."""
    return list(
        Grant.objects.select_for_update(skip_locked=True)
        .filter(status=Grant.Status.ACTIVE, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def grants_expire_due(*, now: dt.datetime | None = None, limit: int = EXPIRE_BATCH_SIZE) -> int:
    """Expire up to `limit` grants past their expiry, each in its own transaction; return how many
    this call expired. Safe to run twice at once: each grant lapses once."""
    now = now or timezone.now()
    due = list(
        Grant.objects.filter(status=Grant.Status.ACTIVE, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for grant_id in due if grant_expire(grant_id=grant_id, now=now) is not None)


def grant_usable_at(grant: Grant, moment: dt.datetime) -> bool:
    return grant.status == Grant.Status.ACTIVE and moment < grant.expires_at
