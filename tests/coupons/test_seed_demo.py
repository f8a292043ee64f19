"""`manage.py seed_demo`: every state of the demo, pool figures that agree with the rows, and a second
run that changes nothing."""

from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Enterprise, Provider, Role, User
from accounts.selectors import enterprise_is_verified_foundation_model_developer
from coupons.management.commands.seed_demo import MARKER_CONTRACT_NUMBER, PASSWORD_DEFAULT
from coupons.models import Application, CapOverride, Grant, ProgramYear, Redemption, Settlement
from coupons.selectors import program_year_figures, program_year_figures_from_rows
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.years import CAP_FEN_DEFAULT, POOL_FEN_DEFAULT, program_year_of
from ledger.models import Account
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


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


def statuses(model: type) -> set[str]:
    return set(model.objects.values_list("status", flat=True))


def test_the_demo_has_every_state_and_figures_that_match_the_rows():
    # when
    out = seed()

    # then
    year = program_year_of(timezone.now())
    program_year = ProgramYear.objects.get(year=year)
    assert (program_year.status, program_year.pool_fen, program_year.default_cap_fen, program_year.grace_days) == (
        ProgramYear.Status.OPEN,
        POOL_FEN_DEFAULT,
        CAP_FEN_DEFAULT,
        0,
    )
    assert program_year.rule_set.name == "measures-2024"
    assert statuses(Application) == set(Application.Status.values)
    assert statuses(Redemption) == set(Redemption.Status.values)
    assert statuses(Settlement) == set(Settlement.Status.values)
    # No service expires a grant yet (that is the annual reset): the demo has active and revoked ones.
    assert statuses(Grant) == {Grant.Status.ACTIVE, Grant.Status.REVOKED}
    assert statuses(Enterprise) == {Enterprise.Status.VERIFIED, Enterprise.Status.PENDING}
    assert statuses(Provider) == {Provider.Status.ACTIVE, Provider.Status.SUSPENDED}
    assert set(Provider.objects.values_list("listing", flat=True)) == set(Provider.Listing.values)
    assert program_year_figures(year=year) == program_year_figures_from_rows(year=year)
    figures = program_year_figures(year=year)
    assert figures.held_fen > 0 and figures.settled_fen > 0 and figures.revoked_fen > 0
    assert f"Demo data loaded for {year}" in out


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
    assert f"Demo data: present (contract {MARKER_CONTRACT_NUMBER}), skipped." in out


@pytest.mark.parametrize("year", [2024, 2031], ids=["past year", "future year"])
def test_the_password_and_year_options(year: int):
    out = seed("--password", "another-demo-secret", "--year", str(year))

    assert f"Program year {year}: created and opened" in out
    assert ProgramYear.objects.get(year=year).status == ProgramYear.Status.OPEN
    assert set(Application.objects.values_list("year_id", flat=True)) == {year}
    assert statuses(Redemption) == set(Redemption.Status.values)
    assert program_year_figures(year=year) == program_year_figures_from_rows(year=year)
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
