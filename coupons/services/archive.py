"""Whether a program year's ledger chain may be archived (`manage.py ledger_archive`), answered for
the ledger through the setting LEDGER_ARCHIVE_CHECK: the ledger knows nothing of program years."""

from coupons.models import AuditRun, ProgramYear


def chain_archive_refusal(chain: str) -> str | None:
    """Why the chain may not be archived, or None when it may: its program year is closed and the
    last audit, finished after the year closed, passed."""
    program_year = ProgramYear.objects.filter(chain=chain).first()
    if program_year is None:
        return f"No program year keeps chain {chain}."
    if program_year.status != ProgramYear.Status.CLOSED or program_year.closed_at is None:
        return f"Program year {program_year.program_id} {program_year.year} is {program_year.status}, not closed."
    last = AuditRun.objects.exclude(status=AuditRun.Status.RUNNING).order_by("-finished_at", "-id").first()
    if last is None or last.finished_at is None or last.finished_at < program_year.closed_at:
        return f"No audit has finished since program year {program_year.program_id} {program_year.year} closed."
    if last.status != AuditRun.Status.PASSED:
        return f"The last audit (run {last.pk}) {last.status}."
    return None
