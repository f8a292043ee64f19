"""`manage.py seed_demo`: every state of the demo in both redemption modes (the current year by
provider deduction, the year before by enterprise reimbursement, closed, its grants still usable),
pool figures that agree with the rows, and a second run that changes nothing."""

import datetime as dt
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Enterprise, Provider, Role, User
from accounts.selectors import enterprise_is_verified_foundation_model_developer
from coupons.management.commands.seed_demo import (
    DISTRICT_POOL_FEN,
    MARKER_CONTRACT_NUMBER,
    PASSWORD_DEFAULT,
    REIMBURSEMENT_CONTRACT_PREFIX,
    STACKED_CONTRACT_NUMBER,
)
from coupons.models import (
    DEFAULT_PROGRAM,
    Application,
    CapOverride,
    Claim,
    Grant,
    Program,
    ProgramYear,
    Redemption,
    Settlement,
    StackingRule,
)
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.audit import audit_execute, audit_run_create, check_stacking_within_ceiling
from coupons.services.years import CAP_FEN_DEFAULT, POOL_FEN_DEFAULT, program_year_create, program_year_of
from ledger.models import Account, Transfer
from tests.evidence import invoice_number, pdf_bytes
from tests.factories import UserFactory
from tests.portal.conftest import client_of

pytestmark = pytest.mark.django_db

DISTRICT = "binjiang-compute"


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    """Rows of every table of accounts, coupons and ledger, the many-to-many ones included."""
    models = [
        model
        for label in ("accounts", "coupons", "ledger")
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    ]
    return {model._meta.db_table: model._default_manager.count() for model in models}


def account_totals() -> list[tuple]:
    return list(
        Account.objects.order_by("code").values_list(
            "code", "debits_pending", "debits_posted", "credits_pending", "credits_posted"
        )
    )


def statuses(rows: type[Model] | QuerySet) -> set[str]:
    queryset = rows if isinstance(rows, QuerySet) else rows._default_manager.all()
    return set(queryset.values_list("status", flat=True))


def test_the_demo_has_every_state_and_figures_that_match_the_rows():
    # when
    out = seed()

    # then
    year = program_year_of(timezone.now())
    program_year = ProgramYear.objects.get(program_id=DEFAULT_PROGRAM, year=year)
    assert (program_year.status, program_year.pool_fen, program_year.default_cap_fen, program_year.grace_days) == (
        ProgramYear.Status.OPEN,
        POOL_FEN_DEFAULT,
        CAP_FEN_DEFAULT,
        0,
    )
    assert program_year.rule_set.name == "measures-2024"
    assert program_year.redemption_mode == ProgramYear.RedemptionMode.PROVIDER_DEDUCTION
    previous = ProgramYear.objects.get(program_id=DEFAULT_PROGRAM, year=year - 1)
    assert (previous.status, previous.redemption_mode, previous.grant_validity, previous.grant_validity_months) == (
        ProgramYear.Status.CLOSED,
        ProgramYear.RedemptionMode.ENTERPRISE_REIMBURSEMENT,
        ProgramYear.GrantValidity.MONTHS,
        24,
    )
    assert statuses(Application) == set(Application.Status.values)
    assert statuses(Redemption) == set(Redemption.Status.values)
    assert statuses(Claim) == set(Claim.Status.values)
    assert statuses(Settlement) == set(Settlement.Status.values)
    # Grants expire only when the annual reset or the expiry job lapses them: the current year's are
    # active or revoked, and the closed year's, valid for months from issue, outlive its close.
    assert statuses(Grant) == {Grant.Status.ACTIVE, Grant.Status.REVOKED}
    assert statuses(Grant.objects.filter(year=previous)) == {Grant.Status.ACTIVE}
    assert not Grant.objects.filter(year=previous, expires_at__lte=timezone.now()).exists()
    assert statuses(Enterprise) == {Enterprise.Status.VERIFIED, Enterprise.Status.PENDING}
    assert statuses(Provider) == {Provider.Status.ACTIVE, Provider.Status.SUSPENDED}
    assert set(Provider.objects.values_list("listing", flat=True)) == set(Provider.Listing.values)
    assert program_year_figures(year=year) == program_year_figures_from_rows(year=year)
    assert program_year_figures(year=year - 1) == program_year_figures_from_rows(year=year - 1)
    figures = program_year_figures(year=year)
    assert figures.held_fen > 0 and figures.settled_fen > 0 and figures.revoked_fen > 0
    assert f"Demo data loaded for {year}" in out
    assert f"Program year {year - 1}: created and opened in enterprise reimbursement mode" in out
    assert f"Program year {year - 1}: closed by the annual reset; 3 grants stay valid" in out


def test_the_reimbursement_year_has_claims_in_every_status_and_pays_an_enterprise():
    seed()

    year = program_year_of(timezone.now()) - 1
    claims = Claim.objects.filter(grant__year__year=year)
    assert claims.count() == 4 and statuses(claims) == set(Claim.Status.values)
    assert set(claims.values_list("grant__application__contract_number", flat=True)) <= {
        f"{REIMBURSEMENT_CONTRACT_PREFIX}{number:03d}" for number in (1, 2, 3)
    }
    # Every claim cites its invoice and the proof of payment, each its own file.
    assert {(c.invoice_document.kind, c.payment_proof_document.kind) for c in claims} == {("invoice", "payment_proof")}
    assert len({c.payment_proof_document.sha256 for c in claims}) == 4
    assert claims.get(status=Claim.Status.REJECTED).decision_reason.startswith("The payment proof shows")
    # The claim in the queue was made on the demo's day, after the close: its hold has not lapsed.
    queued = claims.get(status=Claim.Status.SUBMITTED)
    hold = Transfer.objects.get(pk=queued.hold_transfer_id)
    assert hold.expires_at is not None and hold.expires_at > timezone.now() + dt.timedelta(days=300)
    assert queued.created_by.username == "enterprise1"
    paid = claims.get(status=Claim.Status.PAID)
    settlement = paid.settlement
    assert settlement is not None and settlement.status == Settlement.Status.PAID
    assert (settlement.enterprise, settlement.provider) == (paid.enterprise, None)
    assert settlement.total_fen == paid.coupon_fen
    assert claims.get(status=Claim.Status.APPROVED).settlement is None
    # Invoice numbers are the program's, once across years.
    invoice_numbers = [
        *Claim.objects.values_list("invoice_number", flat=True),
        *Redemption.objects.values_list("invoice_number", flat=True),
    ]
    assert len(invoice_numbers) == len(set(invoice_numbers))


def test_the_enterprise_claims_today_on_a_grant_of_the_closed_year():
    # given
    seed()
    year = program_year_of(timezone.now()) - 1
    member = User.objects.get(username="enterprise1")
    grant = Grant.objects.get(year__year=year, enterprise=member.enterprise)
    client = client_of(member, language="en")
    assert "Claim a paid bill" in client.get(f"/grants/{grant.pk}/").content.decode()

    # when
    response = client.post(
        f"/grants/{grant.pk}/claim/",
        {
            "invoice_number": invoice_number(),
            "invoice_file": SimpleUploadedFile("invoice.pdf", pdf_bytes("today"), content_type="application/pdf"),
            "payment_proof_file": SimpleUploadedFile("slip.pdf", pdf_bytes("slip"), content_type="application/pdf"),
            "bill_amount": "10,000.00",
            "requested": "",
        },
        follow=True,
    )

    # then
    assert response.status_code == 200
    made = Claim.objects.filter(grant=grant, created_by=member).latest("pk")
    assert (made.status, made.bill_amount_fen, made.coupon_fen) == (
        Claim.Status.SUBMITTED,
        1_000_000,
        1_000_000 * grant.rate_bp // 10_000,
    )
    assert "Claim submitted" in response.content.decode()


def test_the_relaxed_cap_is_granted_by_one_approver_at_the_request_of_another_person():
    seed()

    override = CapOverride.objects.get()
    assert override.enterprise.foundation_model_developer and override.enterprise.has_registered_model
    assert enterprise_is_verified_foundation_model_developer(override.enterprise)
    assert (override.requested_by.username, override.granted_by.username) == ("reviewer", "approver2")
    # The foundation-model developer's grant is past the default cap: the override is what allows it.
    grant = Grant.objects.get(application__contract_number=MARKER_CONTRACT_NUMBER)
    assert grant.enterprise == override.enterprise
    assert CAP_FEN_DEFAULT < grant.amount_fen <= override.cap_fen
    # Its model services rely on its own filing, verified in the register.
    assert grant.application.model_filing is not None and grant.application.model_filing.is_verified


def test_a_district_program_runs_beside_the_citys_and_both_subsidise_one_contract_within_the_ceiling():
    out = seed()

    # The district's program and its year, open with its own pool and cap.
    year = program_year_of(timezone.now())
    district = Program.objects.get(slug=DISTRICT)
    assert (district.name, district.level, district.region) == ("滨江区算力券", "district", ["330108"])
    district_year = ProgramYear.objects.get(program=district, year=year)
    assert (district_year.status, district_year.pool_fen) == (ProgramYear.Status.OPEN, DISTRICT_POOL_FEN)
    rule = StackingRule.objects.get()
    assert (sorted(rule.programs.values_list("slug", flat=True)), rule.share_bp) == (
        [DISTRICT, DEFAULT_PROGRAM],
        6000,
    )
    # One contract of the Binjiang enterprise, granted by both programs: 30% each, 60% together.
    grants = Grant.objects.filter(application__contract_number=STACKED_CONTRACT_NUMBER).order_by("application__program")
    assert [(g.application.program_id, g.enterprise.uscc[2:8]) for g in grants] == [
        (DISTRICT, "330108"),
        (DEFAULT_PROGRAM, "330108"),
    ]
    fee_fen = grants[0].application.contract_fee_fen
    assert [g.amount_fen for g in grants] == [fee_fen * 3000 // 10_000] * 2
    assert sum(g.amount_fen for g in grants) <= fee_fen * rule.share_bp // 10_000
    assert check_stacking_within_ceiling()[0] == []
    # Each program's figures agree with its rows, and the district's pool carries only its grant.
    assert program_year_figures(year=year, program=DISTRICT) == program_year_figures_from_rows(
        year=year, program=DISTRICT
    )
    assert program_year_figures(year=year, program=DISTRICT).issued_fen == grants[0].amount_fen
    assert f"Stacking: contract {STACKED_CONTRACT_NUMBER}" in out


def test_the_demo_passes_the_audit():
    seed()

    run = audit_execute(run_id=audit_run_create().pk)
    assert run.status == "passed", [check for check in run.checks if not check["ok"]]


def test_every_demo_user_signs_in_with_the_demo_password_and_holds_its_role():
    seed()

    for username in ("admin", "reviewer", "approver2", "finance", "auditor", "provider1", "enterprise4"):
        assert authenticate(HttpRequest(), username=username, password=PASSWORD_DEFAULT) is not None, username
    assert User.objects.get(username="admin").is_superuser
    assert User.objects.get(username="reviewer2").roles == [Role.REVIEWER]
    assert User.objects.get(username="auditor").roles == [Role.AUDITOR]
    assert User.objects.get(username="provider4").provider.status == Provider.Status.SUSPENDED
    assert User.objects.get(username="enterprise4").enterprise.status == Enterprise.Status.PENDING
    assert User.objects.get(username="enterprise1").roles == []


def test_a_second_run_changes_nothing():
    # given
    seed()
    counts, totals = row_counts(), account_totals()

    # when
    out = seed()

    # then
    assert (row_counts(), account_totals()) == (counts, totals)
    assert "Superuser admin: exists, skipped" in out
    assert "open, skipped" in out
    assert f"Program year {program_year_of(timezone.now()) - 1}: closed, skipped." in out
    assert f"Program {DISTRICT}: present, skipped." in out
    assert f"Demo data: present (contract {MARKER_CONTRACT_NUMBER}), skipped." in out


def test_the_password_and_year_options():
    year = program_year_of(timezone.now()) - 1
    out = seed("--password", "another-demo-secret", "--year", str(year))

    assert f"Program year {year}: created and opened" in out
    assert ProgramYear.objects.get(program_id=DEFAULT_PROGRAM, year=year).status == ProgramYear.Status.OPEN
    assert ProgramYear.objects.get(program_id=DISTRICT, year=year).status == ProgramYear.Status.OPEN
    assert ProgramYear.objects.get(program_id=DEFAULT_PROGRAM, year=year - 1).status == ProgramYear.Status.CLOSED
    assert set(Application.objects.values_list("year__year", flat=True)) == {year, year - 1}
    assert statuses(Redemption) == set(Redemption.Status.values)
    assert statuses(Claim) == set(Claim.Status.values)
    assert program_year_figures(year=year) == program_year_figures_from_rows(year=year)
    assert program_year_figures(year=year - 1) == program_year_figures_from_rows(year=year - 1)
    assert authenticate(HttpRequest(), username="finance", password="another-demo-secret") is not None


def test_a_taken_demo_username_stops_the_command_and_nothing_is_written():
    # given
    UserFactory(username="approver2")
    counts = row_counts()

    # when
    with pytest.raises(CommandError, match="approver2"):
        seed()

    # then: not even the year or the superuser, which came first in the same transaction
    assert row_counts() == counts
    assert not ProgramYear.objects.exists() and not User.objects.filter(username="admin").exists()


def test_a_password_the_validators_refuse_stops_the_command_and_nothing_is_written():
    counts = row_counts()

    with pytest.raises(CommandError, match="--password"):
        seed("--password", "123")

    assert row_counts() == counts


@pytest.mark.parametrize("offset", [-10, 1], ids=["before the centers' listing", "future year"])
def test_a_year_the_demo_cannot_act_in_is_refused(offset: int):
    with pytest.raises(CommandError, match="--year"):
        seed("--year", str(program_year_of(timezone.now()) + offset))

    assert not ProgramYear.objects.exists()


def test_an_existing_year_before_stops_the_command_and_nothing_is_written():
    # given
    root = User.objects.create_superuser(username="root", email="root@example.com", password="a-long-secret-2026")
    program_year_create(year=program_year_of(timezone.now()) - 1, actor=root)
    counts = row_counts()

    # when
    with pytest.raises(CommandError, match="reimbursement"):
        seed()

    # then
    assert row_counts() == counts
    assert not User.objects.filter(username="admin").exists()
