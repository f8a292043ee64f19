"""Program years: opening through the ledger, and terms that are fixed once a year opens."""

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction

from config.errors import InvalidState, PermissionDenied, ValidationFailed
from coupons import books
from coupons.errors import ProgramYearClosed
from coupons.models import ProgramYear
from coupons.services.years import program_year_create, program_year_current, program_year_open
from ledger.selectors import account_balance, account_get
from tests.coupons.conftest import IN_YEAR, YEAR

pytestmark = pytest.mark.django_db


def test_opening_credits_the_pool_from_the_appropriation(cast):
    program_year_create(year=YEAR, actor=cast.admin, pool_fen=25_000_000_000, default_cap_fen=800_000_000)
    opened = program_year_open(year=YEAR, actor=cast.admin)
    assert opened.status == "open" and opened.opened_at is not None
    pool = account_balance(account_id=account_get(code=books.pool_code(YEAR)).pk)
    appropriation = account_balance(account_id=account_get(code=books.appropriation_code(YEAR)).pk)
    assert (pool.credits_posted, pool.available_fen) == (25_000_000_000, 25_000_000_000)
    assert appropriation.debits_posted == 25_000_000_000
    # Opening again changes nothing.
    program_year_open(year=YEAR, actor=cast.admin)
    assert account_balance(account_id=pool.account_id).credits_posted == 25_000_000_000


def test_the_defaults_are_the_2024_measures(cast):
    year = program_year_create(year=YEAR, actor=cast.admin)
    assert (year.pool_fen, year.default_cap_fen, year.grace_days) == (25_000_000_000, 800_000_000, 0)
    assert year.rule_set.name == "measures-2024" and year.rule_set.ceiling_bp == 3000


def test_only_a_superuser_prepares_and_opens_years(cast, db_snapshot):
    before = db_snapshot()
    with pytest.raises(PermissionDenied):
        program_year_create(year=YEAR, actor=cast.approver)
    assert db_snapshot() == before
    program_year_create(year=YEAR, actor=cast.admin)
    with pytest.raises(PermissionDenied):
        program_year_open(year=YEAR, actor=cast.finance)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pool_fen": 0}, "pool_fen"),
        ({"default_cap_fen": -1}, "default_cap_fen"),
        ({"grace_days": 400}, "grace_days"),
        ({"year": 1999}, "year"),
        ({"pool_fen": 1.5}, "pool_fen"),
        ({"open_applications_at_close": "keep"}, "open_applications_at_close"),
        ({"grant_validity": "forever"}, "grant_validity"),
        ({"grant_validity": "months"}, "grant_validity_months"),
        ({"grant_validity": "months", "grant_validity_months": 37}, "grant_validity_months"),
        ({"grant_validity": "months", "grant_validity_months": True}, "grant_validity_months"),
        ({"grant_validity_months": 12}, "grant_validity_months"),
        ({"grant_validity": "months", "grant_validity_months": 12, "grace_days": 5}, "grace_days"),
    ],
)
def test_bad_year_settings_are_refused(changes, field, cast, db_snapshot):
    before = db_snapshot()
    with pytest.raises(ValidationFailed) as caught:
        program_year_create(**({"year": YEAR, "actor": cast.admin} | changes))
    assert field in caught.value.errors
    assert db_snapshot() == before


def test_a_year_is_created_once_and_a_closed_year_does_not_reopen(cast, year):
    with pytest.raises(InvalidState):
        program_year_create(year=YEAR, actor=cast.admin)
    ProgramYear.objects.filter(year=YEAR).update(status="closed")
    with pytest.raises(InvalidState):
        program_year_open(year=YEAR, actor=cast.admin)
    with pytest.raises(ProgramYearClosed):
        program_year_current(now=IN_YEAR)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("pool_fen", "pool_fen + 1"),
        ("default_cap_fen", "default_cap_fen + 1"),
        ("grace_days", "grace_days + 1"),
        ("open_applications_at_close", "'withdraw'"),
    ],
)
def test_terms_are_fixed_once_the_year_opens(column, value, cast, year):
    with pytest.raises(ProgrammingError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE coupons_programyear SET {column} = {value} WHERE year = %s", [YEAR])
    assert getattr(ProgramYear.objects.get(year=YEAR), column) == getattr(year, column)


def test_the_policy_is_fixed_once_the_year_opens(cast, year):
    from coupons.policy import REVISION_2025_06
    from coupons.services.years import rule_set_create

    other = rule_set_create(
        name=REVISION_2025_06["name"], ceiling_bp=REVISION_2025_06["ceiling_bp"], rules=REVISION_2025_06["rules"]
    )
    with pytest.raises(ProgrammingError), transaction.atomic():
        ProgramYear.objects.filter(year=YEAR).update(rule_set=other)
    # A draft year's terms may still change.
    draft = program_year_create(year=YEAR + 1, actor=cast.admin)
    ProgramYear.objects.filter(year=draft.year).update(rule_set=other, pool_fen=5)
    assert ProgramYear.objects.get(year=draft.year).pool_fen == 5


def test_grant_validity_is_fixed_once_the_year_opens(cast, year):
    with pytest.raises(ProgrammingError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE coupons_programyear SET grant_validity = 'months', grant_validity_months = 12 WHERE year = %s",
            [YEAR],
        )
    assert ProgramYear.objects.get(year=YEAR).grant_validity == "year_end"


def test_the_database_refuses_a_validity_without_its_months(cast):
    program_year_create(year=YEAR, actor=cast.admin)
    for statement in (
        "UPDATE coupons_programyear SET grant_validity = 'months' WHERE year = %s",
        "UPDATE coupons_programyear SET grant_validity_months = 12 WHERE year = %s",
        "UPDATE coupons_programyear SET grant_validity = 'months', grant_validity_months = 37 WHERE year = %s",
        "UPDATE coupons_programyear SET open_applications_at_close = 'keep' WHERE year = %s",
    ):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [YEAR])


def test_the_default_policy_carries_and_grants_to_year_end(cast):
    year = program_year_create(year=YEAR, actor=cast.admin)
    assert (year.open_applications_at_close, year.grant_validity, year.grant_validity_months) == (
        "carry",
        "year_end",
        None,
    )
    months = program_year_create(
        year=YEAR + 1,
        actor=cast.admin,
        open_applications_at_close="withdraw",
        grant_validity="months",
        grant_validity_months=12,
    )
    assert (months.open_applications_at_close, months.grant_validity_months) == ("withdraw", 12)


def test_the_admin_shows_the_year_end_policy(cast, client):
    program_year = program_year_create(
        year=YEAR,
        actor=cast.admin,
        open_applications_at_close="withdraw",
        grant_validity="months",
        grant_validity_months=12,
    )
    client.force_login(cast.admin)
    page = client.get(f"/admin/coupons/programyear/{program_year.pk}/change/").content.decode()
    assert "withdrawn" in page and "a number of months from issue" in page and "12" in page
    listing = client.get("/admin/coupons/programyear/").content.decode()
    assert "a number of months from issue" in listing
