"""A client generated from the live OpenAPI schema (openapi-python-client, offline) walks a coupon's
whole life against the running service: what the schema cannot express, no client can call.

The walk is the README's API tour (tests/api/test_readme_tour.py) and the evidence flow
(tests/api/test_evidence_flow.py), made only through the generated functions and models: a
superuser opens the year, an enterprise uploads its contract (multipart) and applies, its
computing center confirms, a reviewer checks the evidence and recommends, a different approver
approves under an Idempotency-Key, the center uploads the invoice, redeems and captures, the
enterprise acknowledges, finance settles and asks for the payment (202, an approval request), and a
second finance user approves it: the settlement is paid.
"""

import importlib
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from django.utils import timezone

from accounts.models import Role
from coupons.services.years import program_year_of
from tests.api.conftest import PASSWORD
from tests.coupons.conftest import make_cast
from tests.evidence import invoice_number, pdf_bytes
from tests.factories import UserFactory

PACKAGE = "coupons_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture
def generated(live_server: Any, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package, generated from the schema the live server serves, importable."""
    schema = httpx.get(f"{live_server.url}/api/schema/?format=json", timeout=30)
    assert schema.status_code == 200, schema.text[:500]
    (tmp_path / "schema.json").write_bytes(schema.content)
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(tmp_path / "schema.json"),
            "--output-path",
            str(tmp_path / PACKAGE),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{GENERATOR.parent}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / PACKAGE / "client.py").exists(), result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
        shutil.rmtree(tmp_path / PACKAGE, ignore_errors=True)


class Walk:
    """The generated package, called by operation: `walk.call("applications", "applications_create", ...)`."""

    def __init__(self, package: ModuleType, base_url: str) -> None:
        self.package = package
        self.base_url = base_url

    def module(self, path: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{path}")

    def model(self, name: str) -> Any:
        return getattr(self.module("models"), name)

    def anonymous(self) -> Any:
        return self.package.Client(base_url=self.base_url, raise_on_unexpected_status=True)

    def as_token(self, token: str) -> Any:
        return self.package.AuthenticatedClient(base_url=self.base_url, token=token, raise_on_unexpected_status=True)

    def as_api_key(self, key: str) -> Any:
        return self.package.AuthenticatedClient(
            base_url=self.base_url, token=key, prefix="Api-Key", raise_on_unexpected_status=True
        )

    def call(self, tag: str, operation: str, status: int, **kwargs: Any) -> Any:
        """Call the operation; assert the status; return the parsed (typed) answer."""
        response = self.module(f"api.{tag}.{operation}").sync_detailed(**kwargs)
        assert response.status_code == status, (operation, response.status_code, response.content[:800])
        assert response.parsed is not None, (operation, "the generated client could not read the answer")
        return response.parsed

    def sign_in(self, username: str) -> Any:
        body = self.model("TokenRequestRequest")(username=username, password=PASSWORD)
        token = self.call("auth", "auth_token_create", 200, client=self.anonymous(), body=body)
        return self.as_token(token.token)

    def upload(self, client: Any, kind: str, data: bytes) -> Any:
        file = self.package.types.File(payload=io.BytesIO(data), file_name=f"{kind}.pdf", mime_type="application/pdf")
        body = self.model("DocumentUploadRequest")(file=file, kind=self.model("KindEnum")(kind))
        return self.call("documents", "documents_create", 201, client=client, body=body)


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_walks_the_whole_lifecycle(live_server, generated):
    walk = Walk(generated, live_server.url)
    model = walk.model
    cast = make_cast()
    finance2 = UserFactory(roles=[Role.FINANCE])
    year = program_year_of(timezone.now())
    admin, reviewer = walk.sign_in(cast.admin.username), walk.sign_in(cast.reviewer.username)
    approver = walk.sign_in(cast.approver.username)
    member, clerk = walk.sign_in(cast.member.username), walk.sign_in(cast.clerk.username)
    finance, second_finance = walk.sign_in(cast.finance.username), walk.sign_in(finance2.username)

    # A superuser prepares the year and opens it: its pool is credited.
    drafted = walk.call(
        "program_years",
        "program_years_create",
        201,
        client=admin,
        body=model("ProgramYearRequestRequest")(year=year, pool_fen=100_000_000, default_cap_fen=10_000_000),
    )
    assert drafted.status.value == "draft"
    opened = walk.call("program_years", "program_years_open_create", 200, client=admin, year=year)
    assert opened.status.value == "open"

    # The enterprise uploads its signed contract (multipart) and applies against it.
    contract = walk.upload(member, "contract", pdf_bytes("the generated client's contract"))
    application = walk.call(
        "applications",
        "applications_create",
        201,
        client=member,
        body=model("SubmitRequestRequest")(
            provider=cast.provider.pk,
            contract_number="GEN-2026-001",
            contract_fee_fen=1_000_000,
            compute_source=model("ComputeSourceEnum")("domestic"),
            purpose=model("PurposeEnum")("training"),
            contract_document=contract.id,
            contract_signed_on=timezone.localdate().replace(year=year, month=1, day=2),
            contract_term_months=12,
        ),
    )
    assert application.status.value == "submitted" and application.contract_document == contract.id

    # Its computing center confirms the contract; a reviewer checks the evidence and recommends.
    confirmed = walk.call("applications", "applications_confirm_create", 200, client=clerk, id=application.id)
    assert confirmed.status.value == "confirmed"
    reviewed = walk.call(
        "applications",
        "applications_review_create",
        200,
        client=reviewer,
        id=application.id,
        body=model("ReviewRequestRequest")(recommended_fen=300_000, evidence_checked=[contract.id], note="fits"),
    )
    assert reviewed.status.value == "reviewed" and reviewed.evidence_checked == [contract.id]

    # A different person approves, under an Idempotency-Key: a retry replays the same answer.
    approve = {"client": approver, "id": application.id, "idempotency_key": f"approve-{application.id}"}
    approved = walk.call("applications", "applications_approve_create", 200, **approve)
    assert approved.status.value == "approved" and approved.grant
    again = walk.module("api.applications.applications_approve_create").sync_detailed(**approve)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    grant = walk.call("grants", "grants_retrieve", 200, client=member, id=approved.grant)
    assert grant.amount_fen == 300_000

    # The center uploads the bill's invoice, redeems the bill with it under a key, and captures.
    invoice = walk.upload(clerk, "invoice", pdf_bytes("the generated client's invoice"))
    redemption = walk.call(
        "redemptions",
        "redemptions_create",
        201,
        client=clerk,
        idempotency_key="gen-bill-0001",
        body=model("RedeemRequestRequest")(
            grant=grant.id,
            bill_number="GEN-BILL-0001",
            bill_amount_fen=100_000,
            invoice_number=invoice_number(),
            invoice_document=invoice.id,
        ),
    )
    assert redemption.status.value == "pending" and redemption.invoice_document == invoice.id
    captured = walk.call(
        "redemptions", "redemptions_capture_create", 200, client=clerk, id=redemption.id, idempotency_key="gen-capture"
    )
    assert captured.status.value == "captured"

    # The enterprise acknowledges the bill.
    acknowledged = walk.call("redemptions", "redemptions_acknowledge_create", 200, client=member, id=redemption.id)
    assert acknowledged.acknowledgement.value == "confirmed"

    # Finance settles the center's acknowledged bills and asks for the payment: 202, an approval request.
    settlement = walk.call(
        "settlements",
        "settlements_create",
        201,
        client=finance,
        body=model("SettlementCreateRequestRequest")(provider=cast.provider.pk),
    )
    assert settlement.total_fen == captured.coupon_fen > 0
    asked = walk.call(
        "settlements",
        "settlements_pay_create",
        202,
        client=finance,
        id=settlement.id,
        body=model("SettlementPayRequestRequest")(bank_reference="ICBC-GEN-0001"),
    )
    assert asked.status.value == "pending"

    # A second finance user, who did not create the settlement, approves: it is paid.
    decided = walk.call(
        "approval_requests",
        "approval_requests_approve_create",
        200,
        client=second_finance,
        id=asked.id,
        idempotency_key=f"pay-{asked.id}",
        body=model("DecisionApproveRequestRequest")(reason="Matches the bank statement."),
    )
    assert decided.status.value == "approved" and decided.decided_by != decided.requested_by
    paid = walk.call("settlements", "settlements_retrieve", 200, client=finance, id=settlement.id)
    assert paid.status.value == "paid"
