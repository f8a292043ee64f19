"""The annual reset: close year Y, release its holds, lapse its unused coupons once
the grace period is over, carry or withdraw its open applications by its policy, and open Y+1.
Grants that the year's policy makes valid for months from issue outlive the close: the reset
leaves them and their holds alone until they expire.

Every step is idempotent and the reset is resumable: killed at any point and run again, it picks
up where it stopped, and each grant expires exactly once. The year's row lock orders two resets
started at once; the grants are expired a few hundred to a transaction (`grants_expire_batch`),
each under the grant's lock and with a ledger transfer key of its own (`grant:<application>:lapse`),
so no broker redelivery, concurrent run or single expiry can lapse a fen twice, and a kill loses at
most the batch in flight, which the next run does again.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.roles import require_superuser
from config.errors import InvalidState
from coupons.errors import ProgramClosed
from coupons.locks import program_year_lock, redemption_lock
from coupons.models import DEFAULT_PROGRAM, Grant, Program, ProgramYear, Redemption, RuleSetVersion
from coupons.rule_sets import rule_set_versions, year_first_day
from coupons.services.grants import GRANTS_EXPIRE_BATCH_SIZE, grant_expire, grants_expire_batch
from coupons.services.redemptions import redemption_release_locked
from coupons.services.year_end import applications_settle_at_close, applications_stranded_by_close
from coupons.services.years import _program_year_insert, year_end

__all__ = [
    "ResetReport",
    "annual_reset",
    "grant_expire",
    "grants_expire_batch",
    "program_year_close",
    "program_year_close_now",
]

RESET_BATCH_SIZE: Final = 500

Progress = Callable[[str], None]


@dataclass
class ResetReport:
    year: int
    program: str = DEFAULT_PROGRAM
    closed: bool = False
    holds_released: int = 0
    grants_expired: int = 0
    lapsed_fen: int = 0
    next_year_opened: bool = False
    waiting_for_grace: bool = False
    applications_carried: int = 0
    applications_withdrawn: int = 0
    grants_outliving_the_year: int = 0  # Grants valid for months from issue that expire after now.


def _quiet(_: str) -> None:
    return None


def program_year_close(
    *, year: int, now: dt.datetime, actor: User | None = None, program: str = DEFAULT_PROGRAM
) -> ProgramYear:
    """Close an open year to new applications (a closed year stays closed). A superuser may close
    early; then grants valid to year end expire `grace_days` after the close instead of after year
    end. Grants valid for months from issue keep their expiry: the close does not shorten them."""
    if actor is not None:
        require_superuser(actor)
    with transaction.atomic():
        program_year = program_year_lock(year, program)
        if program_year.status == ProgramYear.Status.CLOSED:
            return program_year
        if program_year.status != ProgramYear.Status.OPEN:
            raise InvalidState(f"Program year {year} is {program_year.status}; only an open year closes.")
        program_year.status = ProgramYear.Status.CLOSED
        program_year.closed_at = now
        program_year.save(update_fields=["status", "closed_at"])
        if program_year.grant_validity == ProgramYear.GrantValidity.MONTHS:
            return program_year
        expiry = min(now, year_end(year)) + dt.timedelta(days=program_year.grace_days)
        Grant.objects.filter(year=program_year, status=Grant.Status.ACTIVE, expires_at__gt=expiry).update(
            expires_at=expiry
        )
        return program_year


def program_year_close_now(
    *, year: int, actor: User, now: dt.datetime | None = None, program: str = DEFAULT_PROGRAM
) -> ProgramYear:
    """A superuser closes a year now; its annual reset is queued in the same transaction (the
    outbox, coupons/services/outbox.py) and runs in the background once the close commits."""
    from coupons.services.outbox import outbox_enqueue

    with transaction.atomic():
        program_year = program_year_close(year=year, now=now or timezone.now(), actor=actor, program=program)
        outbox_enqueue(task="coupons.tasks.annual_reset", args=[year, program])
    return program_year


def _release_holds(program_year: ProgramYear, now: dt.datetime, progress: Progress) -> int:
    """Void every hold still outstanding on the year's grants (each in its own transaction)."""
    released = 0
    while True:
        due = list(
            Redemption.objects.filter(grant__year=program_year, status=Redemption.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)[:RESET_BATCH_SIZE]
        )
        if not due:
            return released
        for pk in due:
            with transaction.atomic():
                locked = redemption_lock(pk)
                if locked.status == Redemption.Status.PENDING:
                    redemption_release_locked(
                        redemption=locked, status=Redemption.Status.VOIDED, reason="year_closed", now=now
                    )
                    released += 1
        progress(f"holds released: {released}")


def _prepare_next_year(program_year: ProgramYear) -> None:
    """Y+1 as an administrator prepared it, or a draft copy of Y's terms and policy.

    Created through the one insert of a year (`years._program_year_insert`), so Y+1 gets its ledger
    partitions when this commits, before `_open_next_year` writes its first transfer (the pool
    credited), as every year does: docs/ledger-history.md."""
    with transaction.atomic():
        # Y's row lock orders concurrent resets: one creates Y+1, the others find it.
        program_year_lock(program_year.year, program_year.program_id)
        if ProgramYear.objects.filter(program_id=program_year.program_id, year=program_year.year + 1).exists():
            return
        try:
            # Y+1 starts under the rates Y ended with: its last rule-set version.
            next_year = _program_year_insert(
                program=program_year.program,
                year=program_year.year + 1,
                pool_fen=program_year.pool_fen,
                default_cap_fen=program_year.default_cap_fen,
                grace_days=program_year.grace_days,
                relaxed_cap_ceiling_fen=program_year.relaxed_cap_ceiling_fen,
                region_division_prefixes=program_year.region_division_prefixes,
                open_applications_at_close=program_year.open_applications_at_close,
                grant_validity=program_year.grant_validity,
                grant_validity_months=program_year.grant_validity_months,
                rule_set=rule_set_versions(program_year)[-1].rule_set,
                priced_by=program_year.priced_by,
                redemption_mode=program_year.redemption_mode,
            )
        except InvalidState:
            # A superuser prepared Y+1 (which takes no lock of Y) since the check: it stands.
            return
        RuleSetVersion.objects.create(
            program_year=next_year, rule_set=next_year.rule_set, effective_from=year_first_day(next_year.year)
        )


def _open_next_year(program_year: ProgramYear, now: dt.datetime) -> bool:
    """Open the prepared Y+1; True if opened now."""
    from coupons.services.years import chain_partitions_ensure, program_year_open_system

    next_year = program_year.year + 1
    # Its partitions before its first transfer, outside the transaction below: its creation's hook
    # may have failed, or still be running in the reset that created it while this one opens it.
    prepared_chain = (
        ProgramYear.objects.filter(program_id=program_year.program_id, year=next_year, status=ProgramYear.Status.DRAFT)
        .values_list("chain", flat=True)
        .first()
    )
    if prepared_chain is not None and not connection.in_atomic_block:
        chain_partitions_ensure(prepared_chain)
    with transaction.atomic():
        prepared = ProgramYear.objects.select_for_update().get(program_id=program_year.program_id, year=next_year)
        if prepared.status != ProgramYear.Status.DRAFT:
            return False
        try:
            with transaction.atomic():
                program_year_open_system(year=next_year, program=program_year.program_id, now=now)
        except ProgramClosed:
            # Closed since the reset looked: Y+1 never opens; what was carried into it is withdrawn.
            applications_stranded_by_close(program=program_year.program_id, year=next_year)
            return False
        return True


def _expire_grants(
    due: "QuerySet[Grant]", now: dt.datetime, report: ResetReport, progress: Progress, batch_size: int
) -> None:
    """Expire the due grants a batch per transaction (`grants_expire_batch`), in id order, reporting
    after each batch. Each batch reads its ids after the one before committed, so a run resumed after
    a kill, or racing another, starts from what is still active."""
    total = due.count()
    done, after = 0, 0
    while batch := list(due.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size]):
        lapsed = grants_expire_batch(grant_ids=batch, now=now)
        report.grants_expired += len(lapsed)
        report.lapsed_fen += sum(lapsed.values())
        done, after = done + len(batch), batch[-1]
        progress(f"{report.year}: grants expired {min(done, total)}/{total}")


def annual_reset(
    *,
    year: int,
    now: dt.datetime | None = None,
    progress: Progress = _quiet,
    program: str = DEFAULT_PROGRAM,
    batch_size: int = GRANTS_EXPIRE_BATCH_SIZE,
) -> ResetReport:
    """Run (or finish) the reset of program `program`'s year `year`. Run it again at any time: it
    only does what is left. Each program's years reset on their own. Its grants expire `batch_size`
    to a transaction."""
    now = now or timezone.now()
    report = ResetReport(year=year, program=program)
    program_year = ProgramYear.objects.get(program_id=program, year=year)
    if program_year.status == ProgramYear.Status.OPEN:
        if now < year_end(year):
            raise InvalidState(f"Program year {year} runs until {year_end(year).isoformat()}; close it early instead.")
        program_year_close(year=year, now=year_end(year), program=program)
        report.closed = True
        progress(f"{year}: closed")
    program_year.refresh_from_db()
    if program_year.status != ProgramYear.Status.CLOSED:
        raise InvalidState(f"Program year {year} is {program_year.status}; there is nothing to reset.")
    due = Grant.objects.filter(year=program_year, status=Grant.Status.ACTIVE)
    if program_year.grant_validity == ProgramYear.GrantValidity.MONTHS:
        # Valid for months from issue: such grants outlive the close and keep their holds; the
        # grant expiry job (or a later run of this) lapses each once it is past its expiry.
        report.grants_outliving_the_year = due.filter(expires_at__gt=now).count()
        if report.grants_outliving_the_year:
            progress(f"{year}: {report.grants_outliving_the_year} grants stay valid for months after the close")
    else:
        report.holds_released = _release_holds(program_year, now, progress)
        if due.filter(expires_at__gt=now).exists():
            report.waiting_for_grace = True
            progress(f"{year}: grants expire after the grace period; run again then")
    _expire_grants(due.filter(expires_at__lte=now), now, report, progress, batch_size)
    # A closed program takes no new year: its open applications are withdrawn (year_end.py) and no
    # Y+1 is prepared or opened.
    program_open = Program.objects.filter(slug=program, status=Program.Status.ACTIVE).exists()
    if program_open:
        _prepare_next_year(program_year)
    # Before Y+1 opens, so nothing is left unapprovable in Y: carried into Y+1's queue, or withdrawn.
    report.applications_carried, report.applications_withdrawn = applications_settle_at_close(
        year=year, program=program
    )
    if report.applications_carried or report.applications_withdrawn:
        progress(
            f"{year}: open applications carried into {year + 1}: {report.applications_carried}, "
            f"withdrawn: {report.applications_withdrawn}"
        )
    # Closed since the check above (or in an earlier, interrupted run, after the carry): what was carried
    # into the draft Y+1 is withdrawn, as Y+1 never opens.
    if not Program.objects.filter(slug=program, status=Program.Status.ACTIVE).exists():
        program_open = False
        report.applications_withdrawn += applications_stranded_by_close(program=program, year=year + 1)
    report.next_year_opened = program_open and _open_next_year(program_year, now)
    if report.next_year_opened:
        progress(f"{year + 1}: opened")
    return report
