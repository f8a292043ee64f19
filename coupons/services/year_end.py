"""Year end without strays: the annual reset settles every application of Y still submitted,
confirmed or reviewed, by Y's policy (`ProgramYear.open_applications_at_close`):

- `carry`: the application moves to Y+1's queue, where it is confirmed, reviewed and approved
  against Y+1's pool and the enterprise's Y+1 cap like any other. It is re-priced by Y+1's rates,
  because Y+1's pool pays for it and Y+1's policy governs what that pool pays: its rate and
  eligible amount are computed again, what was asked is cut to the new eligible amount (never
  raised: the enterprise asked for no more), and a review made under other terms is dropped, so
  the application goes back to the reviewers (status `confirmed`). An application Y+1's rates do
  not subsidise at all is withdrawn instead, saying so.
- `withdraw`: the application is withdrawn, and its contract is free for a new application.

Either way an `ApplicationEvent` records it with the reason, and no actor: the program acted by
its recorded policy, not a person (the events table allows a missing actor for these two steps
only). Each application is settled in its own transaction under the enterprise's and the
application's locks (the order `application_submit` takes them), and only while it is still an
open application of Y, so a resumed or concurrent reset settles each exactly once.
"""

from typing import Final, Literal

from django.db import transaction

from accounts.models import Enterprise
from coupons.locks import application_lock
from coupons.models import DEFAULT_PROGRAM, Application, ApplicationEvent, Program, ProgramYear
from coupons.rule_sets import year_first_day
from coupons.services.applications import application_pricing
from coupons.services.stacking import contract_lock

SETTLE_BATCH_SIZE: Final = 500
OPEN_STATUSES: Final = [Application.Status.SUBMITTED, Application.Status.CONFIRMED, Application.Status.REVIEWED]

Settled = Literal["carried", "withdrawn"]


def _system_record(application: Application, action: Settled, note: str) -> None:
    ApplicationEvent.objects.create(application=application, action=action, actor=None, note=note)


def _withdraw(application: Application, note: str) -> Settled:
    application.status = Application.Status.WITHDRAWN
    application.save(update_fields=["status", "updated_at"])
    _system_record(application, "withdrawn", note)
    return "withdrawn"


def _carry(application: Application, enterprise: Enterprise, next_year: ProgramYear) -> Settled:
    """Move the application into the next year's queue, priced there by the rule-set version in force
    on the next year's first day (1 January), whatever its submission or contract day: the day it
    joins that year, and one version for every application carried at one close."""
    year = application.year.year
    # The other measures (a program whose basis is not a compute contract) are re-priced with the
    # filing their application named, as their rules rest on it (the model filing reward); a compute
    # application is re-priced as it always was, without it.
    measure = next_year.program.basis != Program.Basis.COMPUTE_CONTRACT
    pricing = application_pricing(
        enterprise=enterprise,
        year=next_year,
        contract_fee_fen=application.contract_fee_fen,
        compute_source=application.compute_source,
        purpose=application.purpose,
        priced_on=year_first_day(next_year.year),
        model_filing_number=application.model_filing_number if measure else "",
        loan_rate_bp=application.loan_rate_bp,
        project_investment_fen=application.project_investment_fen,
    )
    rate, eligible_fen = pricing.rate, pricing.eligible_fen
    if eligible_fen == 0:
        return _withdraw(
            application,
            f"Withdrawn at the close of {year}: carried into {next_year.year}, no subsidy applies to the "
            f"contract under {next_year.year}'s rates ({rate.label}).",
        )
    old = (application.rate_bp, application.eligible_fen, application.requested_fen)
    application.year = next_year
    application.rate_bp = rate.rate_bp
    application.rate_rule = rate.label
    application.rule_set = pricing.rule_set
    application.eligible_fen = eligible_fen
    application.requested_fen = min(application.requested_fen, eligible_fen)
    terms_changed = old != (application.rate_bp, application.eligible_fen, application.requested_fen)
    note = f"Carried from {year} into {next_year.year} by {year}'s year-end policy."
    if terms_changed:
        note += (
            f" Re-priced by {next_year.year}'s rates: rate {old[0]} → {application.rate_bp} bp ({rate.label}), "
            f"eligible {old[1]} → {application.eligible_fen} fen, requested {old[2]} → {application.requested_fen} fen."
        )
        if application.status == Application.Status.REVIEWED:
            application.status = Application.Status.CONFIRMED
            application.recommended_fen = None
            application.reviewed_by = None
            application.review_note = ""
            note += " The review was of other terms: it goes back to the reviewers."
    application.save()
    _system_record(application, "carried", note)
    return "carried"


def application_settle_at_close(*, application_id: int, year: int, program: str = DEFAULT_PROGRAM) -> Settled | None:
    """Carry one open application of the closed year `year` into the next, or withdraw it, by the
    year's policy; None when it is no longer an open application of `year` (settled already by
    an earlier or concurrent run, or approved, rejected or withdrawn by a person)."""
    with transaction.atomic():
        enterprise_id, provider_id, contract_number = Application.objects.values_list(
            "enterprise_id", "provider_id", "contract_number"
        ).get(pk=application_id)
        # The order a submission and an approval take them: the contract, the enterprise, the application.
        contract_lock(provider_id=provider_id, contract_number=contract_number)
        enterprise = Enterprise.objects.select_for_update().get(pk=enterprise_id)
        application = application_lock(application_id)
        program_year = ProgramYear.objects.select_related("program").get(program_id=program, year=year)
        if application.year_id != program_year.pk or application.status not in OPEN_STATUSES:
            return None
        assert program_year.status == ProgramYear.Status.CLOSED, "only a closed year's applications are settled"
        if program_year.open_applications_at_close == ProgramYear.OpenApplicationsAtClose.WITHDRAW:
            return _withdraw(
                application,
                f"Withdrawn at the close of {year} by the year's policy: applications not approved by the "
                "close are withdrawn; the contract may be applied for again.",
            )
        if program_year.program.status == Program.Status.CLOSED:
            return _withdraw(
                application,
                f"Withdrawn at the close of {year}: the program {program} is closed and takes no new year to "
                "carry it into.",
            )
        next_year = ProgramYear.objects.filter(program_id=program, year=year + 1).first()
        assert next_year is not None, "the reset prepares the next year before it carries into it"
        if next_year.status == ProgramYear.Status.CLOSED:
            return _withdraw(application, f"Withdrawn at the close of {year}: {year + 1} is closed as well.")
        return _carry(application, enterprise, next_year)


def applications_settle_at_close(*, year: int, program: str = DEFAULT_PROGRAM) -> tuple[int, int]:
    """Settle every open application of the program's closed year `year`; return (carried, withdrawn)."""
    carried = withdrawn = 0
    while True:
        due = list(
            Application.objects.filter(year__program_id=program, year__year=year, status__in=OPEN_STATUSES)
            .order_by("pk")
            .values_list("pk", flat=True)[:SETTLE_BATCH_SIZE]
        )
        if not due:
            return carried, withdrawn
        for application_id in due:
            settled = application_settle_at_close(application_id=application_id, year=year, program=program)
            carried += settled == "carried"
            withdrawn += settled == "withdrawn"


def applications_stranded_by_close(*, program: str, year: int) -> int:
    """Withdraw the open applications carried into `program`'s year `year` (a draft the annual reset
    prepared) when the program was closed before that year opened: a closed program opens no new
    year, so they would wait there for ever. Each under the locks a carry takes; returns how many."""
    withdrawn = 0
    due = Application.objects.filter(
        program_id=program, year__year=year, year__status=ProgramYear.Status.DRAFT, status__in=OPEN_STATUSES
    )
    for application_id, provider_id, contract_number, enterprise_id in due.order_by("pk").values_list(
        "pk", "provider_id", "contract_number", "enterprise_id"
    ):
        with transaction.atomic():
            contract_lock(provider_id=provider_id, contract_number=contract_number)
            Enterprise.objects.select_for_update().get(pk=enterprise_id)
            application = application_lock(application_id)
            if application.status in OPEN_STATUSES and application.year.status == ProgramYear.Status.DRAFT:
                _withdraw(
                    application,
                    f"Withdrawn: carried into {year}, but the program {program} was closed before that year "
                    "opened; the contract may be applied for again elsewhere.",
                )
                withdrawn += 1
    return withdrawn
