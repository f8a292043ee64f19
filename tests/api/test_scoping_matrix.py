"""The scoping matrix: every object endpoint, called by every kind of organisation caller, against
objects of another organisation. Every cell must answer 404 (never 403, which would say the
object exists), change nothing, and every list must leave the other organisation's objects out.
"""

import pytest

from accounts.credentials import api_key_create
from coupons.services.grants import grant_revoke_request
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from tests.api.conftest import assert_problem, signed_in
from tests.coupons.conftest import IN_YEAR, grant_for, make_cast, open_year, submit
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

OBJECT_ENDPOINTS = [
    ("get", "/api/v1/enterprises/{enterprise}/"),
    ("post", "/api/v1/enterprises/{enterprise}/verify/"),
    ("post", "/api/v1/enterprises/{enterprise}/suspend/"),
    ("get", "/api/v1/providers/{provider}/api-keys/"),
    ("post", "/api/v1/providers/{provider}/api-keys/"),
    ("post", "/api/v1/providers/{provider}/api-keys/{api_key}/revoke/"),
    ("get", "/api/v1/applications/{application}/"),
    ("post", "/api/v1/applications/{application}/confirm/"),
    ("post", "/api/v1/applications/{application}/review/"),
    ("post", "/api/v1/applications/{application}/approve/"),
    ("post", "/api/v1/applications/{application}/reject/"),
    ("post", "/api/v1/applications/{application}/withdraw/"),
    ("get", "/api/v1/grants/{grant}/"),
    ("post", "/api/v1/grants/{grant}/revoke/"),
    ("get", "/api/v1/redemptions/{redemption}/"),
    ("post", "/api/v1/redemptions/{redemption}/capture/"),
    ("post", "/api/v1/redemptions/{redemption}/void/"),
    ("post", "/api/v1/redemptions/{redemption}/reverse/"),
    ("get", "/api/v1/settlements/{settlement}/"),
    ("post", "/api/v1/settlements/{settlement}/pay/"),
    ("get", "/api/v1/settlements/{settlement}/lines.csv"),
    ("get", "/api/v1/approval-requests/{approval_request}/"),
    ("post", "/api/v1/approval-requests/{approval_request}/approve/"),
    ("post", "/api/v1/approval-requests/{approval_request}/reject/"),
]
LISTS = [
    ("/api/v1/enterprises/", "enterprise"),
    ("/api/v1/applications/", "application"),
    ("/api/v1/grants/", "grant"),
    ("/api/v1/redemptions/", "redemption"),
    ("/api/v1/settlements/", "settlement"),
]
BODIES = {
    "review/": {"recommended_fen": 1},
    "approve/": {},
    "reject/": {"reason": "x"},
    "reverse/": {"reason": "x"},
    "pay/": {"bank_reference": "X"},
    "revoke/": {"reason": "x"},
    "api-keys/": {"name": "x"},
}


@pytest.fixture
def world():
    """Organisation B's objects, one of each, and callers from organisation A."""
    cast = make_cast()  # B: cast.enterprise and cast.provider
    open_year(cast.admin)
    grant = grant_for(cast)
    held = redemption_create(
        grant=grant, bill_number="B1", bill_amount_fen=10_000, actor=cast.clerk, now=IN_YEAR, **invoice(cast.clerk)
    )
    redemption_create(
        grant=grant,
        bill_number="B2",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    key, _ = api_key_create(provider=cast.provider, name="B billing", actor=cast.clerk)
    application = submit(cast)
    approval = grant_revoke_request(grant=grant, requester=cast.reviewer, reason="Contract cancelled")
    ids = {
        "approval_request": approval.pk,
        "enterprise": cast.enterprise.pk,
        "provider": cast.provider.pk,
        "api_key": key.pk,
        "application": application.pk,
        "grant": grant.pk,
        "redemption": held.pk,
        "settlement": settlement.pk,
    }
    enterprise_a, provider_a = EnterpriseFactory(), ProviderFactory()
    _, secret = api_key_create(provider=provider_a, name="A billing", actor=UserFactory(provider=provider_a))
    machine = signed_in(UserFactory(provider=provider_a))
    machine.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    callers = {
        "enterprise member": signed_in(UserFactory(enterprise=enterprise_a)),
        "provider member": signed_in(UserFactory(provider=provider_a)),
        "provider API key": machine,
    }
    return ids, callers, cast


def test_every_object_endpoint_is_404_to_every_other_organisation(world, db_snapshot):
    ids, callers, _ = world
    before = db_snapshot()
    cells = 0
    for caller_name, client in callers.items():
        for method, template in OBJECT_ENDPOINTS:
            path = template.format(**ids)
            body = next((b for suffix, b in BODIES.items() if path.endswith(suffix)), {})
            response = getattr(client, method)(path, body, format="json") if method == "post" else client.get(path)
            if caller_name == "provider API key" and "/api-keys/" in path:
                # An API key may not manage keys at all: refused before any lookup.
                assert_problem(response, 403, "permission_denied")
            else:
                assert_problem(response, 404, "not_found")
            cells += 1
    assert cells == len(callers) * len(OBJECT_ENDPOINTS) == 72
    assert db_snapshot() == before


def test_redeeming_another_providers_grant_is_404(world, db_snapshot):
    ids, callers, _ = world
    before = db_snapshot()
    for name in ("provider member", "provider API key"):
        response = callers[name].post(
            "/api/v1/redemptions/",
            # A whole, valid body: the grant of another center is the only thing wrong with it.
            {
                "grant": ids["grant"],
                "bill_number": "X1",
                "bill_amount_fen": 1_000,
                "invoice_number": "26332000000000000001",
                "invoice_document": 1,
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"matrix-{name}",
        )
        assert_problem(response, 404, "not_found")
    assert db_snapshot() == before


def test_lists_leave_other_organisations_out(world):
    ids, callers, cast = world
    staff = signed_in(cast.reviewer)
    cells = 0
    for path, kind in LISTS:
        assert ids[kind] in [row["id"] for row in staff.get(path).json()["results"]], (path, "staff see it")
        for caller_name, client in callers.items():
            response = client.get(path)
            assert response.status_code == 200, (caller_name, path, response.content[:200])
            assert ids[kind] not in [row["id"] for row in response.json()["results"]], (caller_name, path)
            cells += 1
    assert cells == len(LISTS) * len(callers)
