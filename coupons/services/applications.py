"""Applications: submit, confirm, review, approve (which issues the grant), reject, withdraw."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from accounts.models import Enterprise, ModelFiling, Provider, Role, User, listing_day
from accounts.roles import require_enterprise_member, require_provider_member, require_role
from accounts.selectors import enterprise_flags_counted, model_filing_verified
from config.errors import InvalidState, PermissionDenied, ValidationFailed
from config.limits import REASON_LENGTH_MAX
from coupons.errors import (
    ComputeSourceNotOffered,
    DuplicateContract,
    EnterpriseNotVerified,
    FourEyes,
    NotEligible,
    ProgramYearClosed,
)
from coupons.evidence import cite, document_checked
from coupons.listing import provider_require_listed
from coupons.locks import application_lock
from coupons.models import (
    BASIS_POINTS_WHOLE,
    CONTRACT_FEE_FEN_MAX,
    CONTRACT_NUMBER_LENGTH_MAX,
    CONTRACT_TERM_MONTHS_CEILING,
    DEFAULT_PROGRAM,
    Application,
    ApplicationEvent,
    ComputeSource,
    Program,
    ProgramYear,
    Purpose,
    RateRuleSet,
)
from coupons.policy import (
    ApplicationFacts,
    Rate,
    rate_for,
    reference_normalise,
    reference_refusal_text,
    reference_refused,
    subsidy_fen,
)
from coupons.rule_sets import rule_set_in_force
from coupons.services.eligibility import require_in_region, require_pair_eligible
from coupons.services.grants import grant_issue
from coupons.services.reach import reach_program
from coupons.services.stacking import contract_lock, stacking_require_room, stacking_room
from coupons.services.years import program_default_ensure, program_year_current
from evidence.models import Document, Kind
from evidence.selectors import citations_of

FILING_NUMBER_LENGTH_MAX = 100
LOAN_RATE_BP_MAX = BASIS_POINTS_WHOLE  # A loan's annual rate, in basis points: at most 100%.
DOCUMENTS_MAX = 20  # More documents an application may cite besides its contract and filing certificate.
_LIVE_STATUSES = [
    Application.Status.SUBMITTED,
    Application.Status.CONFIRMED,
    Application.Status.REVIEWED,
    Application.Status.APPROVED,
]
_BEFORE_APPROVAL = [Application.Status.SUBMITTED, Application.Status.CONFIRMED, Application.Status.REVIEWED]


def _whole_fen(value: object, field: str, *, maximum: int = CONTRACT_FEE_FEN_MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= maximum:
        raise ValidationFailed(f"{field} must be a whole number of fen from 1 to {maximum}.", field=field)
    return value


def _note(value: str, field: str, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed(f"{field} is required.", field=field)
    if len(value) > REASON_LENGTH_MAX:
        raise ValidationFailed(f"{field} has at most {REASON_LENGTH_MAX} characters.", field=field)
    return value


def _record(application: Application, action: str, actor: User, note: str = "") -> None:
    ApplicationEvent.objects.create(application=application, action=action, actor=actor, note=note)


@dataclass(frozen=True)
class Evidence:
    """The documents an application cites, checked: each uploaded by the applicant's enterprise."""

    contract: Document
    signed_on: dt.date
    term_months: int
    filing_certificate: Document | None
    more: list[Document]


def _evidence_checked(
    *,
    actor: User,
    contract_document: object,
    contract_signed_on: object,
    contract_term_months: object,
    documents: object,
    filing_certificate_document: object,
) -> Evidence:
    """The evidence's shape and ownership (400 on the field at fault). The program year's policy on
    dates and terms is `_evidence_within_policy`, once the year is known."""
    contract = document_checked(value=contract_document, kinds=[Kind.CONTRACT], actor=actor, field="contract_document")
    if not isinstance(contract_signed_on, dt.date) or isinstance(contract_signed_on, dt.datetime):
        raise ValidationFailed("contract_signed_on is the date the contract was signed.", field="contract_signed_on")
    if (
        not isinstance(contract_term_months, int)
        or isinstance(contract_term_months, bool)
        or not 0 < contract_term_months <= CONTRACT_TERM_MONTHS_CEILING
    ):
        raise ValidationFailed(
            f"contract_term_months is a whole number of months from 1 to {CONTRACT_TERM_MONTHS_CEILING}.",
            field="contract_term_months",
        )
    filing_certificate = None
    if filing_certificate_document is not None:
        filing_certificate = document_checked(
            value=filing_certificate_document,
            kinds=[Kind.FILING_CERTIFICATE],
            actor=actor,
            field="filing_certificate_document",
        )
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise ValidationFailed("documents is a list of document ids.", field="documents")
    if len(documents) > DOCUMENTS_MAX:
        raise ValidationFailed(f"An application cites at most {DOCUMENTS_MAX} more documents.", field="documents")
    more: list[Document] = []
    for value in documents:
        document = document_checked(value=value, kinds=list(Kind.values), actor=actor, field="documents")
        if document not in more:
            more.append(document)
    return Evidence(
        contract=contract,
        signed_on=contract_signed_on,
        term_months=contract_term_months,
        filing_certificate=filing_certificate,
        more=more,
    )


def _evidence_within_policy(evidence: Evidence, *, year: ProgramYear, pricing: "Pricing", today: dt.date) -> None:
    """Which contracts count in the year (docs/evidence.md "Contracts"), and the filing certificate
    the registered-model rate needs where the year asks for it."""
    if evidence.signed_on > today:
        raise ValidationFailed(
            f"contract_signed_on is {evidence.signed_on.isoformat()}, after today ({today.isoformat()}).",
            field="contract_signed_on",
        )
    if year.contract_signed_within_year and evidence.signed_on.year != year.year:
        raise ValidationFailed(
            f"Only a contract signed in {year.year} counts in program year {year.year}.", field="contract_signed_on"
        )
    if evidence.term_months > year.contract_term_months_max:
        raise ValidationFailed(
            f"A contract of at most {year.contract_term_months_max} months counts in program year {year.year}.",
            field="contract_term_months",
        )
    if pricing.facts.has_registered_model and year.filing_certificate_required and evidence.filing_certificate is None:
        raise ValidationFailed(
            "The registered-model rate needs the model filing certificate: upload it (kind filing_certificate) "
            "and name it in filing_certificate_document.",
            field="filing_certificate_document",
        )


def contracted_total_fen(*, enterprise_id: int, year: ProgramYear) -> int:
    """The fees of the enterprise's live applications in the year."""
    total = Application.objects.filter(enterprise_id=enterprise_id, year=year, status__in=_LIVE_STATUSES).aggregate(
        total=Sum("contract_fee_fen")
    )["total"]
    return int(total or 0)


def _program_year_key_share(year: ProgramYear) -> None:
    """Wait for whoever holds the year's row lock (a rule-set version being added) before the year's
    versions are read: the application is priced by them as committed. FOR KEY SHARE does not
    conflict with itself, so submissions do not wait for one another (the application's foreign
    key to the year takes the same lock when it is written). A year closed meanwhile is refused."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM coupons_programyear WHERE id = %s FOR KEY SHARE", [year.pk])
        (status,) = cursor.fetchone()
    if status != ProgramYear.Status.OPEN:  # Closed while we waited.
        raise ProgramYearClosed(f"Program year {year.year} of {year.program_id} is {status}.")


@dataclass(frozen=True)
class Pricing:
    """What an application is priced with (stored on it, so the audit can recompute), and the result."""

    facts: ApplicationFacts
    model_filing: ModelFiling | None
    rule_set: RateRuleSet
    rate: Rate
    eligible_fen: int


def application_pricing(
    *,
    enterprise: Enterprise,
    year: ProgramYear,
    contract_fee_fen: int,
    compute_source: str,
    purpose: str,
    priced_on: dt.date,
    model_filing_number: str = "",
    loan_rate_bp: int | None = None,
    project_investment_fen: int | None = None,
) -> Pricing:
    """The inputs, the rate rule that applies to a contract of the enterprise, and its eligible amount.

    The rule set is the year's version in force on `priced_on` (the day whose version prices the
    application: `application_pricing_day`). The enterprise's flags count only as staff verified
    them; the registered-model condition holds only when the application names a filing that staff
    verified in the register.
    """
    flags = enterprise_flags_counted(enterprise)
    filing = model_filing_verified(model_filing_number) if model_filing_number else None
    facts = ApplicationFacts(
        purpose=purpose,
        compute_source=compute_source,
        has_registered_model=filing is not None,
        foundation_model_developer=flags["foundation_model_developer"],
        small_or_medium=flags["small_or_medium"],
        contracted_total_fen=contracted_total_fen(enterprise_id=enterprise.pk, year=year) + contract_fee_fen,
        loan_rate_bp=loan_rate_bp,
        project_investment_fen=project_investment_fen,
    )
    rule_set = rule_set_in_force(year, priced_on)
    rate = rate_for(rules=rule_set.rules, ceiling_bp=rule_set.ceiling_bp, facts=facts)
    return Pricing(
        facts=facts,
        model_filing=filing,
        rule_set=rule_set,
        rate=rate,
        eligible_fen=subsidy_fen(contract_fee_fen, rate.rate_bp),
    )


def application_pricing_day(*, year: ProgramYear, submitted_on: dt.date, contract_signed_on: dt.date | None) -> dt.date:
    """The day whose rule-set version prices an application, by the year's `priced_by`: the day it is
    submitted, or the day its contract was signed (the submission day when none is given)."""
    if year.priced_by == ProgramYear.PricedBy.CONTRACT and contract_signed_on is not None:
        return contract_signed_on
    return submitted_on


def application_terms(
    *,
    enterprise: Enterprise,
    year: ProgramYear,
    contract_fee_fen: int,
    compute_source: str,
    purpose: str,
    priced_on: dt.date,
    model_filing_number: str = "",
    loan_rate_bp: int | None = None,
    project_investment_fen: int | None = None,
) -> tuple[Rate, int]:
    """The rate rule that applies to a contract of the enterprise, and its eligible amount in fen,
    by the year's rule-set version in force on `priced_on`.

    `application_submit` decides with `application_pricing` (under the enterprise's lock); the
    portal's apply form previews with this, so the preview is the rule that will apply, not a copy.
    """
    pricing = application_pricing(
        enterprise=enterprise,
        year=year,
        contract_fee_fen=contract_fee_fen,
        compute_source=compute_source,
        purpose=purpose,
        priced_on=priced_on,
        model_filing_number=model_filing_number,
        loan_rate_bp=loan_rate_bp,
        project_investment_fen=project_investment_fen,
    )
    return pricing.rate, pricing.eligible_fen


def application_submit(
    *,
    actor: User,
    provider: Provider,
    contract_number: str,
    contract_fee_fen: int,
    compute_source: str,
    purpose: str,
    requested_fen: int | None = None,
    model_filing_number: str = "",
    now: dt.datetime | None = None,
    contract_document: Document | int | None = None,
    contract_signed_on: dt.date | None = None,
    contract_term_months: int | None = None,
    documents: Sequence[Document | int] = (),
    filing_certificate_document: Document | int | None = None,
    program: str = DEFAULT_PROGRAM,
    loan_rate_bp: int | None = None,
    project_investment_fen: int | None = None,
) -> Application:
    """An enterprise member applies for coupons against one compute contract, in `program`'s year
    open now (the default program unless named; an unknown program is a validation error, a closed
    one is refused). A contract has one live application per program. A contract with a live
    application in another program is taken only when a stacking rule joins the programs
    (`duplicate_contract` otherwise), and `requested_fen` is lowered to what is left of their
    combined ceiling (the event's note says so; `stacking_ceiling` when nothing is):
    coupons/services/stacking.py.

    `model_filing_number` names the filed model the work relies on (its own or a third party's);
    the registered-model rate applies only when staff verified that filing in the register.

    The signed contract is required: `contract_document` (kind contract), `contract_signed_on` and
    `contract_term_months`, within the year's policy; `documents` are more (any kind, at most 20); the
    registered-model rate needs `filing_certificate_document` where the year requires it. Every
    document must be one the applicant's enterprise uploaded. Each is cited for the enterprise, with
    the computing center as the other party who may read it.

    The program's `basis` says what `contract_fee_fen` is (docs/programs.md "Other measures as
    programs"): a compute contract's fee, evaluation costs, or the interest paid on a loan. A
    `loan_interest` program needs `loan_rate_bp` and `project_investment_fen`, and no other program
    takes them; only a `compute_contract` program asks that the provider offer the compute source. A
    `once_per_enterprise` program takes one live application per enterprise across all its years
    (403 `not_eligible`, reason `once_per_enterprise`).
    """
    if actor.enterprise_id is None:
        raise PermissionDenied("Only a member of an enterprise applies for coupons.")
    if program == DEFAULT_PROGRAM:
        program_default_ensure()
    the_program = Program.objects.filter(slug=program).first() if isinstance(program, str) else None
    if the_program is None:
        raise ValidationFailed("program names no program (GET /api/v1/programs/ lists them).", field="program")
    _loan_inputs_checked(the_program, loan_rate_bp=loan_rate_bp, project_investment_fen=project_investment_fen)
    contract_number = reference_normalise(contract_number or "") if isinstance(contract_number, str) else ""
    if not 0 < len(contract_number) <= CONTRACT_NUMBER_LENGTH_MAX:
        raise ValidationFailed(
            f"contract_number has 1 to {CONTRACT_NUMBER_LENGTH_MAX} characters.", field="contract_number"
        )
    refused = reference_refused(contract_number)
    if refused is not None:
        raise ValidationFailed(reference_refusal_text("contract_number", refused), field="contract_number")
    _whole_fen(contract_fee_fen, "contract_fee_fen")
    if compute_source not in ComputeSource.values:
        raise ValidationFailed(f"compute_source is one of {', '.join(ComputeSource.values)}.", field="compute_source")
    if purpose not in Purpose.values:
        raise ValidationFailed(f"purpose is one of {', '.join(Purpose.values)}.", field="purpose")
    if requested_fen is not None:
        _whole_fen(requested_fen, "requested_fen")
    if not isinstance(model_filing_number, str) or len(model_filing_number.strip()) > FILING_NUMBER_LENGTH_MAX:
        raise ValidationFailed(
            f"model_filing_number has at most {FILING_NUMBER_LENGTH_MAX} characters.", field="model_filing_number"
        )
    model_filing_number = model_filing_number.strip()
    evidence = _evidence_checked(
        actor=actor,
        contract_document=contract_document,
        contract_signed_on=contract_signed_on,
        contract_term_months=contract_term_months,
        documents=documents,
        filing_certificate_document=filing_certificate_document,
    )

    with transaction.atomic():
        # The contract's lock first (coupons/services/stacking.py): every program's submission and
        # approval for this contract takes it, so their view of its stacking room cannot change under
        # us. It comes before the enterprise's: an approval holding it inserts a grant, which waits on
        # the enterprise's row.
        contract_lock(provider_id=provider.pk, contract_number=contract_number)
        # Lock the enterprise: its contracted total for the year (which a rule may look at) must
        # not change under us, and its status is read once.
        enterprise = Enterprise.objects.select_for_update().get(pk=actor.enterprise_id)
        if enterprise.status != Enterprise.Status.VERIFIED:
            raise EnterpriseNotVerified(
                f"{enterprise.name} is {enterprise.status}; only a verified enterprise applies."
            )
        provider = Provider.objects.get(pk=provider.pk)
        day = listing_day(now)
        provider_require_listed(provider, day)
        if the_program.basis == Program.Basis.COMPUTE_CONTRACT and not provider.offers_on(compute_source, day):
            raise ComputeSourceNotOffered(
                f"{provider.name} offers no {compute_source} compute facility listed on {day.isoformat()}."
            )
        require_pair_eligible(enterprise=enterprise, provider=provider, now=now)
        year = program_year_current(now=now, program=program)
        _program_year_key_share(year)
        require_in_region(enterprise=enterprise, year=year)
        if Application.objects.filter(
            program_id=program, provider=provider, contract_number=contract_number, status__in=_LIVE_STATUSES
        ).exists():
            raise DuplicateContract(
                f"Contract {contract_number} with {provider.name} already has an application in {program}."
            )
        if (
            Application.objects.filter(provider=provider, contract_number=contract_number, status__in=_LIVE_STATUSES)
            .exclude(enterprise=enterprise)
            .exists()
        ):
            # Programs stack on one enterprise's contract; another enterprise naming it is not its party.
            raise DuplicateContract(
                f"Contract {contract_number} with {provider.name} already has another enterprise's application."
            )
        if (
            Application.objects.filter(
                enterprise=enterprise, contract_document__file_id=evidence.contract.file_id, status__in=_LIVE_STATUSES
            )
            .exclude(provider=provider, contract_number=contract_number)
            .exists()
        ):
            # The enterprise's own contract, the same bytes, under another number (or center): one
            # contract named twice, which number folding alone cannot see (`HZ-001` and `HZ_001`). The
            # same number in another program is stacking, checked by its own ceiling; the same bytes
            # cited by another enterprise are shown to the reviewer (`shared_with_other_enterprise`).
            raise DuplicateContract(
                "This contract document is already the contract of one of your live applications under another "
                "contract number or computing center: one contract is subsidised once."
            )
        if the_program.once_per_enterprise:
            _require_first_in_program(enterprise=enterprise, program=the_program)

        pricing = application_pricing(
            enterprise=enterprise,
            year=year,
            contract_fee_fen=contract_fee_fen,
            compute_source=compute_source,
            purpose=purpose,
            priced_on=application_pricing_day(year=year, submitted_on=day, contract_signed_on=evidence.signed_on),
            model_filing_number=model_filing_number,
            loan_rate_bp=loan_rate_bp,
            project_investment_fen=project_investment_fen,
        )
        _evidence_within_policy(evidence, year=year, pricing=pricing, today=day)
        rate, eligible_fen = pricing.rate, pricing.eligible_fen
        if eligible_fen == 0:
            raise ValidationFailed(f"No subsidy applies to this contract ({rate.label}).", field="contract_fee_fen")
        if requested_fen is None:
            requested_fen = eligible_fen
        if requested_fen > eligible_fen:
            raise ValidationFailed(
                f"requested_fen may be at most the eligible {eligible_fen} fen.", field="requested_fen"
            )
        # Subsidised in another program too: only within their combined ceiling, or not at all when
        # the programs do not stack.
        note = ""
        room = stacking_room(
            program=year.program_id,
            provider_id=provider.pk,
            contract_number=contract_number,
            contract_fee_fen=contract_fee_fen,
            count_open=True,
        )
        if room is not None:
            room_fen = stacking_require_room(room, contract_number=contract_number)
            if requested_fen > room_fen:
                note = f"requested_fen lowered from {requested_fen} to {room_fen} fen: {room.describe()}."
                requested_fen = room_fen
        try:
            with transaction.atomic():
                application = Application.objects.create(
                    enterprise=enterprise,
                    provider=provider,
                    program_id=year.program_id,
                    year=year,
                    contract_number=contract_number,
                    contract_fee_fen=contract_fee_fen,
                    compute_source=compute_source,
                    purpose=purpose,
                    rate_bp=rate.rate_bp,
                    rate_rule=rate.label,
                    rule_set=pricing.rule_set,
                    eligible_fen=eligible_fen,
                    requested_fen=requested_fen,
                    model_filing_number=model_filing_number,
                    model_filing=pricing.model_filing,
                    priced_has_registered_model=pricing.facts.has_registered_model,
                    priced_foundation_model_developer=pricing.facts.foundation_model_developer,
                    priced_small_or_medium=pricing.facts.small_or_medium,
                    priced_contracted_total_fen=pricing.facts.contracted_total_fen,
                    loan_rate_bp=loan_rate_bp,
                    project_investment_fen=project_investment_fen,
                    once_per_enterprise=the_program.once_per_enterprise,
                    contract_document=evidence.contract,
                    contract_signed_on=evidence.signed_on,
                    contract_term_months=evidence.term_months,
                    filing_certificate_document=evidence.filing_certificate,
                    submitted_by=actor,
                )
        except IntegrityError as error:
            if "coupons_application_contract_once" in str(error):
                raise DuplicateContract(
                    f"Contract {contract_number} with {provider.name} already has an application."
                ) from None
            if "coupons_application_once_per_enterprise" in str(error):
                raise _once_refusal(enterprise, the_program) from None
            raise
        cited = [(evidence.contract, Kind.CONTRACT.value)]
        if evidence.filing_certificate is not None:
            cited.append((evidence.filing_certificate, Kind.FILING_CERTIFICATE.value))
        cited += [(document, document.kind) for document in evidence.more]
        for document, role in cited:
            cite(
                document=document,
                subject=f"application:{application.pk}",
                role=role,
                enterprise_id=enterprise.pk,
                provider_id=provider.pk,
                actor=actor,
            )
        _record(application, "submitted", actor, note)
        return application


def _loan_inputs_checked(program: Program, *, loan_rate_bp: object, project_investment_fen: object) -> None:
    """A `loan_interest` program's application gives the loan's annual rate and the project's total
    investment; an application to any other program gives neither (400 on the field)."""
    if program.basis != Program.Basis.LOAN_INTEREST:
        for name, value in (("loan_rate_bp", loan_rate_bp), ("project_investment_fen", project_investment_fen)):
            if value is not None:
                raise ValidationFailed(
                    f"{name} is only for a loan_interest program; {program.slug} subsidises {program.basis}.",
                    field=name,
                )
        return
    if not isinstance(loan_rate_bp, int) or isinstance(loan_rate_bp, bool) or not 0 < loan_rate_bp <= LOAN_RATE_BP_MAX:
        raise ValidationFailed(
            f"loan_rate_bp is the loan's annual rate, a whole number of basis points from 1 to {LOAN_RATE_BP_MAX}.",
            field="loan_rate_bp",
        )
    _whole_fen(project_investment_fen, "project_investment_fen")


def _once_refusal(enterprise: Enterprise, program: Program) -> NotEligible:
    return NotEligible(
        f"{enterprise.name} already has an application in {program.slug}, which an enterprise receives once.",
        reason="once_per_enterprise",
    )


def _require_first_in_program(*, enterprise: Enterprise, program: Program) -> None:
    """A one-time program: no live application of the enterprise in any of its years. Called under
    the enterprise's lock; the partial unique index `coupons_application_once_per_enterprise` is the
    backstop."""
    if Application.objects.filter(program=program, enterprise=enterprise, status__in=_LIVE_STATUSES).exists():
        raise _once_refusal(enterprise, program)


def _require_parties_in_good_standing(application: Application) -> None:
    """The enterprise is still verified and the provider still active and listed today (either may
    have been suspended, or the center's listing may have ended, since the application was made),
    neither is sanctioned today, and they have not been listed as related parties since: no coupon
    for a party out of the program."""
    enterprise = Enterprise.objects.get(pk=application.enterprise_id)
    if enterprise.status != Enterprise.Status.VERIFIED:
        raise EnterpriseNotVerified(f"{enterprise.name} is {enterprise.status}.")
    provider = Provider.objects.get(pk=application.provider_id)
    provider_require_listed(provider, listing_day())
    require_pair_eligible(enterprise=enterprise, provider=provider)


def application_confirm(*, application: Application, actor: User) -> Application:
    """The contract's provider confirms that the contract is real."""
    require_provider_member(actor, application.provider_id)
    with transaction.atomic():
        locked = application_lock(application.pk)
        if locked.status != Application.Status.SUBMITTED:
            raise InvalidState(f"Only a submitted application is confirmed; this one is {locked.status}.")
        _require_parties_in_good_standing(locked)
        locked.status = Application.Status.CONFIRMED
        locked.confirmed_by = actor
        locked.save(update_fields=["status", "confirmed_by", "updated_at"])
        _record(locked, "confirmed", actor)
        return locked


def _evidence_ids(value: object) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValidationFailed(
            "evidence_checked is the list of the ids of the documents you checked.", field="evidence_checked"
        )
    ids = []
    for item in value:
        item = item.pk if isinstance(item, Document) else item
        if not isinstance(item, int) or isinstance(item, bool) or item <= 0:
            raise ValidationFailed("evidence_checked holds document ids.", field="evidence_checked")
        if item not in ids:
            ids.append(item)
    return sorted(ids)


def application_review(
    *,
    application: Application,
    actor: User,
    recommended_fen: int,
    evidence_checked: Sequence[int | Document],
    note: str = "",
) -> Application:
    """A reviewer recommends an amount, at most what was requested, saying which of the documents the
    application cites they checked: at least its contract, and none it does not cite (recorded in
    `Application.evidence_checked`)."""
    require_role(actor, Role.REVIEWER)
    reach_program(actor, application.program_id, f"application {application.pk}")
    _whole_fen(recommended_fen, "recommended_fen")
    checked = _evidence_ids(evidence_checked)
    note = _note(note, "note", required=False)
    with transaction.atomic():
        locked = application_lock(application.pk)
        if locked.status != Application.Status.CONFIRMED:
            raise InvalidState(f"Only a confirmed application is reviewed; this one is {locked.status}.")
        if recommended_fen > locked.requested_fen:
            raise ValidationFailed(
                f"recommended_fen may be at most the requested {locked.requested_fen} fen.", field="recommended_fen"
            )
        cited = set(citations_of(f"application:{locked.pk}").values_list("document_id", flat=True))
        not_cited = [pk for pk in checked if pk not in cited]
        if not_cited:
            raise ValidationFailed(
                f"The application cites no document {', '.join(map(str, not_cited))}.", field="evidence_checked"
            )
        if locked.contract_document_id is not None and locked.contract_document_id not in checked:
            raise ValidationFailed(
                f"Check the signed contract (document {locked.contract_document_id}) before recommending.",
                field="evidence_checked",
            )
        locked.status = Application.Status.REVIEWED
        locked.recommended_fen = recommended_fen
        locked.review_note = note
        locked.reviewed_by = actor
        locked.evidence_checked = checked
        locked.save(
            update_fields=["status", "recommended_fen", "review_note", "reviewed_by", "evidence_checked", "updated_at"]
        )
        _record(locked, "reviewed", actor, note)
        return locked


def application_approve(*, application: Application, actor: User, approved_fen: int | None = None) -> Application:
    """An approver who is not the reviewer approves, issuing the grant in one ledger batch.

    Fails with `pool_exhausted` or `cap_exceeded` (saying what is left) when the year's pool or the
    enterprise's cap cannot cover the whole amount; nothing is written then. A contract subsidised in
    another program that stacks is granted at most what is left of their combined ceiling (the
    event's note says when the amount was lowered), and refused with `stacking_ceiling` when nothing
    is (coupons/services/stacking.py).
    """
    require_role(actor, Role.APPROVER)
    reach_program(actor, application.program_id, f"application {application.pk}")
    if approved_fen is not None:
        _whole_fen(approved_fen, "approved_fen")
    with transaction.atomic():
        # The contract's lock before the application's, as a submission and the year-end carry take
        # them (contract, enterprise, application): in another order the three can deadlock. Its
        # provider and number never change once submitted.
        contract_lock(provider_id=application.provider_id, contract_number=application.contract_number)
        locked = application_lock(application.pk)
        if locked.status != Application.Status.REVIEWED:
            raise InvalidState(f"Only a reviewed application is approved; this one is {locked.status}.")
        if locked.reviewed_by_id == actor.pk:
            raise FourEyes("The approver of an application may not be its reviewer.")
        assert locked.recommended_fen is not None
        amount_fen = locked.recommended_fen if approved_fen is None else approved_fen
        if amount_fen > locked.recommended_fen:
            raise ValidationFailed(
                f"approved_fen may be at most the recommended {locked.recommended_fen} fen.", field="approved_fen"
            )
        if locked.year.status != ProgramYear.Status.OPEN:
            raise ProgramYearClosed(f"Program year {locked.year} is {locked.year.status}.")
        _require_parties_in_good_standing(locked)
        grant = grant_issue(application=locked, approver=actor, amount_fen=amount_fen)
        locked.status = Application.Status.APPROVED
        locked.approved_by = actor
        locked.save(update_fields=["status", "approved_by", "updated_at"])
        note = f"{grant.amount_fen} fen"
        if grant.amount_fen < amount_fen:
            note += (
                f" (lowered from {amount_fen} fen to what is left of the contract's combined ceiling "
                "across the programs that stack)"
            )
        _record(locked, "approved", actor, note)
        return locked


def application_reject(*, application: Application, actor: User, reason: str) -> Application:
    """A reviewer or an approver rejects an application before approval, saying why."""
    require_role(actor, Role.REVIEWER, Role.APPROVER)
    reach_program(actor, application.program_id, f"application {application.pk}")
    reason = _note(reason, "reason", required=True)
    with transaction.atomic():
        locked = application_lock(application.pk)
        if locked.status not in _BEFORE_APPROVAL:
            raise InvalidState(f"A {locked.status} application cannot be rejected.")
        locked.status = Application.Status.REJECTED
        locked.reject_reason = reason
        locked.rejected_by = actor
        locked.save(update_fields=["status", "reject_reason", "rejected_by", "updated_at"])
        _record(locked, "rejected", actor, reason)
        return locked


def application_withdraw(*, application: Application, actor: User) -> Application:
    """The enterprise withdraws its application before approval."""
    require_enterprise_member(actor, application.enterprise_id)
    with transaction.atomic():
        locked = application_lock(application.pk)
        if locked.status not in _BEFORE_APPROVAL:
            raise InvalidState(f"A {locked.status} application cannot be withdrawn.")
        locked.status = Application.Status.WITHDRAWN
        locked.save(update_fields=["status", "updated_at"])
        _record(locked, "withdrawn", actor)
        return locked
