"""Applications need a signed contract: what `application_submit` requires and records, which
contracts count in a year, the filing certificate rule, and the reviewer's record of what they checked."""

import datetime as dt

import pytest

from accounts.models import Role
from accounts.services import model_filing_record, model_filing_verify
from config.errors import InvalidState, ReferenceNotFound, ValidationFailed
from coupons.errors import DuplicateContract
from coupons.evidence import cited_documents
from coupons.models import Application, ProgramYear
from coupons.services.applications import application_confirm, application_review, application_submit
from coupons.services.years import program_year_create, program_year_open
from evidence.models import Citation
from evidence.selectors import documents_visible_to
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, submit
from tests.evidence import checked, contract, document, pdf_bytes
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db


def refused(db_snapshot, call, field, code="validation_error"):
    """Refused on `field` with `code`, nothing written: 400 `validation_error` for input that is not
    well formed; 404 `not_found` (ReferenceNotFound) for a well-formed id that names no document of
    the right kind within the caller's reach (docs/api.md)."""
    before = db_snapshot()
    with pytest.raises(ValidationFailed) as caught:
        call()
    assert field in caught.value.errors and caught.value.code == code, caught.value.errors
    assert isinstance(caught.value, ReferenceNotFound) == (code == "not_found")
    assert db_snapshot() == before
    return caught.value


def year_with(cast, **policy) -> ProgramYear:
    """The test year, its evidence policy set while it is a draft (it is fixed once open)."""
    program_year_create(year=YEAR, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    ProgramYear.objects.filter(year=YEAR).update(**policy)
    return program_year_open(year=YEAR, actor=cast.admin)


def verified_filing(cast, number: str = "Zhejiang-202401") -> None:
    recorded = model_filing_record(filing_number=number, model_name="Tongyi", holder_name="Third", actor=cast.reviewer)
    model_filing_verify(filing=recorded, actor=UserFactory(roles=[Role.REVIEWER]))


# --- What a submission records -----------------------------------------------------------------------


def test_the_contract_and_every_document_are_recorded_and_cited_for_both_parties(cast, year):
    evidence = contract(cast.member, YEAR, term_months=9)
    usage = document(cast.member, "delivery_proof")
    other = document(cast.member, "other")

    application = submit(cast, **evidence, documents=[usage.pk, other, usage.pk])

    application.refresh_from_db()
    assert (application.contract_document_id, application.contract_signed_on, application.contract_term_months) == (
        evidence["contract_document"].pk,
        dt.date(YEAR, 1, 1),
        9,
    )
    citations = Citation.objects.filter(subject=f"application:{application.pk}").order_by("pk")
    assert [(c.document_id, c.role) for c in citations] == [
        (evidence["contract_document"].pk, "contract"),
        (usage.pk, "delivery_proof"),
        (other.pk, "other"),
    ]
    assert all(c.principal == f"enterprise:{cast.enterprise.pk}" for c in citations)
    assert all(
        c.parties == sorted([f"enterprise:{cast.enterprise.pk}", f"provider:{cast.provider.pk}"]) for c in citations
    )
    # The computing center reads what the enterprise cited; a stranger reads none of it.
    assert set(documents_visible_to(cast.clerk).values_list("pk", flat=True)) == {c.document_id for c in citations}
    stranger = UserFactory(provider=ProviderFactory())
    assert not documents_visible_to(stranger).exists()


@pytest.mark.parametrize("missing", ["contract_document", "contract_signed_on", "contract_term_months"])
def test_a_submission_without_its_contract_is_400_naming_the_field(missing, cast, year, db_snapshot):
    evidence = {**contract(cast.member, YEAR), missing: None}
    refused(db_snapshot, lambda: submit(cast, **evidence), missing)
    assert not Application.objects.exists()


def test_the_contract_must_be_a_contract_the_enterprise_uploaded(cast, year, db_snapshot):
    other_member = UserFactory(enterprise=EnterpriseFactory())
    cases = {
        "an invoice": document(cast.member, "invoice"),
        "another enterprise's contract": document(other_member, "contract"),
        "the provider's contract": document(cast.clerk, "contract"),
        "no such document": 10**9,
        "digits of no document of ours": "12",
        "a boolean": True,
    }
    for name, value in cases.items():
        evidence = {**contract(cast.member, YEAR), "contract_document": value}
        code = "validation_error" if name == "a boolean" else "not_found"  # Digits from a form are an id.
        refused(db_snapshot, lambda evidence=evidence: submit(cast, **evidence), "contract_document", code)


def test_more_documents_are_the_enterprises_own_and_at_most_twenty(cast, year, db_snapshot):
    foreign = document(UserFactory(enterprise=EnterpriseFactory()), "other")
    refused(db_snapshot, lambda: submit(cast, documents=[foreign.pk]), "documents", "not_found")
    refused(db_snapshot, lambda: submit(cast, documents=[document(cast.clerk, "other").pk]), "documents", "not_found")
    many = [document(cast.member, "other").pk for _ in range(21)]
    refused(db_snapshot, lambda: submit(cast, documents=many), "documents")
    refused(db_snapshot, lambda: submit(cast, documents="1,2"), "documents")
    assert submit(cast, documents=many[:20]).status == "submitted"


@pytest.mark.parametrize("months", [0, -1, 13, 121, "12", 12.0, True])
def test_a_term_outside_the_years_policy_is_400(months, cast, year, db_snapshot):
    evidence = {**contract(cast.member, YEAR), "contract_term_months": months}
    refused(db_snapshot, lambda: submit(cast, **evidence), "contract_term_months")


def test_the_longest_term_counts_as_the_year_says(cast, db_snapshot):
    year_with(cast, contract_term_months_max=24)
    assert submit(cast, **contract(cast.member, YEAR, term_months=24)).contract_term_months == 24
    refused(db_snapshot, lambda: submit(cast, **contract(cast.member, YEAR, term_months=25)), "contract_term_months")


@pytest.mark.parametrize(
    "signed_on",
    [
        dt.date(YEAR - 1, 12, 31),  # Before the program year.
        IN_YEAR.date() + dt.timedelta(days=1),  # After the day of submission.
        dt.datetime(YEAR, 1, 2, tzinfo=dt.UTC),  # A moment, not a date.
        "2026-01-02",
    ],
)
def test_a_signing_date_outside_the_policy_is_400(signed_on, cast, year, db_snapshot):
    evidence = {**contract(cast.member, YEAR), "contract_signed_on": signed_on}
    refused(db_snapshot, lambda: submit(cast, **evidence), "contract_signed_on")


def test_a_year_that_counts_earlier_contracts_takes_one_signed_before_it_but_never_one_in_the_future(cast, db_snapshot):
    year_with(cast, contract_signed_within_year=False)
    earlier = {**contract(cast.member, YEAR), "contract_signed_on": dt.date(YEAR - 1, 3, 1)}
    assert submit(cast, **earlier).contract_signed_on == dt.date(YEAR - 1, 3, 1)
    future = {**contract(cast.member, YEAR), "contract_signed_on": IN_YEAR.date() + dt.timedelta(days=1)}
    refused(db_snapshot, lambda: submit(cast, **future), "contract_signed_on")


def test_the_signing_day_is_the_program_days_calendar(cast, year):
    # 20:00 UTC on 30 June is 1 July in Asia/Shanghai: a contract signed on 1 July is not in the future.
    evening = dt.datetime(YEAR, 6, 30, 20, 0, tzinfo=dt.UTC)
    evidence = {**contract(cast.member, YEAR), "contract_signed_on": dt.date(YEAR, 7, 1)}
    application = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number="C-EVENING",
        contract_fee_fen=1_000_000,
        compute_source="domestic",
        purpose="training",
        now=evening,
        **evidence,
    )
    assert application.contract_signed_on == dt.date(YEAR, 7, 1)


# --- The filing certificate --------------------------------------------------------------------------


def registered_model_submission(cast, **extra) -> Application:
    return submit(cast, purpose="maas", compute_source="other", model_filing_number="Zhejiang-202401", **extra)


def test_the_registered_model_rate_needs_the_filing_certificate_where_the_year_requires_it(cast, db_snapshot):
    year_with(cast, filing_certificate_required=True)
    verified_filing(cast)
    refused(db_snapshot, lambda: registered_model_submission(cast), "filing_certificate_document")
    wrong_kind = document(cast.member, "contract")
    refused(
        db_snapshot,
        lambda: registered_model_submission(cast, filing_certificate_document=wrong_kind),
        "filing_certificate_document",
        "not_found",
    )

    certificate = document(cast.member, "filing_certificate")
    application = registered_model_submission(cast, filing_certificate_document=certificate)

    assert (application.priced_has_registered_model, application.filing_certificate_document_id) == (
        True,
        certificate.pk,
    )
    roles = Citation.objects.filter(subject=f"application:{application.pk}").values_list("role", flat=True)
    assert sorted(roles) == ["contract", "filing_certificate"]


def test_no_certificate_is_needed_without_the_registered_model_rate_or_where_the_year_does_not_ask(cast):
    year_with(cast, filing_certificate_required=True)
    # No verified filing: the rate does not apply, so no certificate is asked for.
    assert registered_model_submission(cast).priced_has_registered_model is False


def test_the_default_year_does_not_ask_for_the_certificate(cast, year):
    verified_filing(cast)
    assert registered_model_submission(cast).priced_has_registered_model is True


# --- The reviewer's record of what they checked -------------------------------------------------------


def confirmed(cast, **extra) -> Application:
    application = submit(cast, **extra)
    return application_confirm(application=application, actor=cast.clerk)


def review(cast, application, evidence_checked):
    return application_review(
        application=application, actor=cast.reviewer, recommended_fen=1_000, evidence_checked=evidence_checked
    )


def test_the_review_records_the_documents_checked(cast, year):
    usage = document(cast.member, "delivery_proof")
    application = confirmed(cast, documents=[usage])
    contract_id = application.contract_document_id

    reviewed = review(cast, application, [usage.pk, contract_id, usage])

    reviewed.refresh_from_db()
    assert reviewed.status == "reviewed"
    assert reviewed.evidence_checked == sorted([contract_id, usage.pk])


def test_the_review_must_check_the_contract_and_only_documents_the_application_cites(cast, year, db_snapshot):
    usage = document(cast.member, "delivery_proof")
    application = confirmed(cast, documents=[usage])
    elsewhere = submit(cast).contract_document_id  # Cited, but by another application.

    for evidence_checked in ([], [usage.pk], [application.contract_document_id, elsewhere], "1", [0], [True]):
        refused(
            db_snapshot,
            lambda evidence_checked=evidence_checked: review(cast, application, evidence_checked),
            "evidence_checked",
        )
    assert Application.objects.get(pk=application.pk).status == "confirmed"


def test_the_evidence_check_comes_after_the_state_check(cast, year, db_snapshot):
    application = submit(cast)
    before = db_snapshot()
    with pytest.raises(InvalidState):
        review(cast, application, checked(application)["evidence_checked"])
    assert db_snapshot() == before


# --- The same bytes for two enterprises ----------------------------------------------------------------


def test_the_same_file_cited_for_another_enterprise_is_flagged_and_the_same_enterprise_twice_is_not(cast, year):
    data = pdf_bytes("shared contract")
    mine = submit(cast, **{**contract(cast.member, YEAR), "contract_document": document(cast.member, "contract", data)})
    again = document(cast.member, "contract", data)
    assert mine.contract_document_id == again.pk  # One upload of the same bytes.
    # The enterprise's own contract file under a second number is one contract named twice.
    with pytest.raises(DuplicateContract):
        submit(cast, **{**contract(cast.member, YEAR), "contract_document": again})
    assert [
        c.shared_with_other_enterprise
        for c in cited_documents(subject=f"application:{mine.pk}", enterprise_id=cast.enterprise.pk)
    ] == [False]

    other = EnterpriseFactory()
    other_member = UserFactory(enterprise=other)
    theirs = submit(
        cast,
        actor=other_member,
        **{**contract(other_member, YEAR), "contract_document": document(other_member, "contract", data)},
    )

    def flags(application):
        cited = cited_documents(subject=f"application:{application.pk}", enterprise_id=application.enterprise_id)
        return [c.shared_with_other_enterprise for c in cited]

    assert flags(mine) == [True] and flags(theirs) == [True]
