"""A program year's evidence policy over the API: how coupons are paid (`redemption_mode`), the days
an enterprise has to acknowledge a bill, which contracts count, and whether the registered-model rate
needs the filing certificate. Chosen when the year is prepared, fixed once it opens."""

import pytest
from django.db import DatabaseError, transaction

from coupons.models import ProgramYear
from tests.api.conftest import assert_problem
from tests.coupons.conftest import YEAR

pytestmark = pytest.mark.django_db

NEXT = YEAR + 1
POLICY = {
    "redemption_mode": "enterprise_reimbursement",
    "acknowledgement_window_days": 10,
    "contract_signed_within_year": False,
    "contract_term_months_max": 24,
    "filing_certificate_required": True,
}


def test_a_year_is_prepared_with_its_evidence_policy_and_shows_it(cast, as_user):
    client = as_user(cast.admin)
    created = client.post("/api/v1/program-years/", {"year": NEXT, **POLICY}, format="json")
    assert created.status_code == 201, created.content
    assert {name: created.json()[name] for name in POLICY} == POLICY
    stored = ProgramYear.objects.get(year=NEXT)
    assert {name: getattr(stored, name) for name in POLICY} == POLICY
    read = as_user(cast.finance).get(f"/api/v1/program-years/{NEXT}/")
    assert {name: read.json()[name] for name in POLICY} == POLICY


def test_the_defaults_are_todays_flow_a_week_to_acknowledge_and_twelve_month_contracts(cast, as_user):
    created = as_user(cast.admin).post("/api/v1/program-years/", {"year": NEXT}, format="json")
    assert created.status_code == 201, created.content
    assert {name: created.json()[name] for name in POLICY} == {
        "redemption_mode": "provider_deduction",
        "acknowledgement_window_days": 7,
        "contract_signed_within_year": True,
        "contract_term_months_max": 12,
        "filing_certificate_required": False,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redemption_mode", "cash"),
        ("redemption_mode", 1),
        ("acknowledgement_window_days", 0),
        ("acknowledgement_window_days", 91),
        ("acknowledgement_window_days", "7"),
        ("contract_term_months_max", 0),
        ("contract_term_months_max", 121),
        ("contract_signed_within_year", "yes"),
        ("filing_certificate_required", 1),
    ],
)
def test_a_bad_policy_value_is_refused_and_nothing_is_created(cast, as_user, field, value):
    response = as_user(cast.admin).post("/api/v1/program-years/", {"year": NEXT, field: value}, format="json")
    body = assert_problem(response, 400, "validation_error")
    assert field in body["errors"]
    assert not ProgramYear.objects.filter(year=NEXT).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redemption_mode", "enterprise_reimbursement"),
        ("acknowledgement_window_days", 30),
        ("contract_signed_within_year", False),
        ("contract_term_months_max", 36),
        ("filing_certificate_required", True),
    ],
)
def test_the_policy_is_fixed_once_the_year_opens_even_in_sql(year, field, value):
    """Bills were redeemed and acknowledged under it: the database refuses a change."""
    with pytest.raises(DatabaseError, match="pgtrigger"), transaction.atomic():
        ProgramYear.objects.filter(year=YEAR).update(**{field: value})
    assert getattr(ProgramYear.objects.get(year=YEAR), field) != value
