"""The computing center's pages: the manual redeem form, capture and void, API keys; and reversal
by an approver from the redemptions list."""

from collections.abc import Callable

from django.test import Client

from accounts.credentials import api_key_lookup
from accounts.models import ApiKey
from approvals.models import ApprovalRequest
from coupons.models import Grant, ProgramYear, Redemption
from coupons.selectors import grant_figures
from tests.coupons.conftest import Cast
from tests.evidence import invoice_fields
from tests.portal.conftest import walk_to_grant


def redeem_form(grant: Grant, **changes: object) -> dict[str, object]:
    return {
        "grant_code": grant.code,
        "bill_number": "BILL-1",
        "bill_amount": "1,000.00",
        "requested": "",
        "capture": "on",
        **invoice_fields(),
    } | changes


def test_a_clerk_redeems_a_bill_and_sees_what_the_enterprise_pays(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    grant = walk_to_grant(cast)  # 3,000 yuan at 30%
    response = as_user(cast.clerk, language="en").post("/redeem/", redeem_form(grant), follow=True)
    redemption = Redemption.objects.get()
    assert (redemption.status, redemption.bill_amount_fen, redemption.coupon_fen) == ("captured", 100_000, 30_000)
    body = response.content.decode()
    assert "Bill BILL-1: coupon ¥300.00 applied; the enterprise pays ¥700.00." in body
    assert grant_figures(grant) == {"available_fen": 270_000, "held_fen": 0, "redeemed_fen": 30_000}


def test_the_code_may_be_typed_in_lower_case_and_a_hold_is_captured_or_voided(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    grant = walk_to_grant(cast)
    clerk = as_user(cast.clerk)
    clerk.post("/redeem/", redeem_form(grant, grant_code=grant.code.lower(), capture=""))
    clerk.post("/redeem/", redeem_form(grant, bill_number="BILL-2", capture=""))
    held, second = Redemption.objects.order_by("pk")
    assert held.status == second.status == "pending"
    assert held.bill_number in clerk.get("/provider/").content.decode()
    clerk.post(f"/redemptions/{held.pk}/capture/", {"next": "/provider/"})
    clerk.post(f"/redemptions/{second.pk}/void/")
    held.refresh_from_db()
    second.refresh_from_db()
    assert (held.status, second.status) == ("captured", "voided")
    assert grant_figures(grant) == {"available_fen": 270_000, "held_fen": 0, "redeemed_fen": 30_000}


def test_a_wrong_code_or_a_spent_coupon_is_refused_with_nothing_written(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    grant = walk_to_grant(cast)
    clerk = as_user(cast.clerk, language="en")
    before = db_snapshot()
    mistyped = grant.code[:-1] + ("A" if grant.code[-1] != "A" else "B")
    body = clerk.post("/redeem/", redeem_form(grant, grant_code=mistyped)).content.decode()
    assert "No coupon of your computing center has this code" in body and f'value="{mistyped}"' in body
    body = clerk.post("/redeem/", redeem_form(grant, bill_amount="1,000.001")).content.decode()
    assert 'id="id_bill_amount_errors"' in body
    assert db_snapshot() == before
    clerk.post("/redeem/", redeem_form(grant))
    before = db_snapshot()
    body = clerk.post("/redeem/", redeem_form(grant)).content.decode()  # the same bill again
    assert "This bill number was already redeemed under this contract." in body
    assert db_snapshot() == before


def test_another_providers_clerk_cannot_redeem_the_coupon(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    from tests.factories import ProviderFactory, UserFactory

    grant = walk_to_grant(cast)
    outsider = as_user(UserFactory(provider=ProviderFactory()), language="en")
    before = db_snapshot()
    body = outsider.post("/redeem/", redeem_form(grant)).content.decode()
    assert "No coupon of your computing center has this code" in body
    assert db_snapshot() == before


def test_a_reversal_asked_in_the_portal_is_done_when_another_approver_approves(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    grant = walk_to_grant(cast)
    as_user(cast.clerk).post("/redeem/", redeem_form(grant))
    redemption = Redemption.objects.get()
    approver = as_user(cast.approver)
    assert 'name="reason"' in approver.get("/redemptions/").content.decode()
    approver.post(f"/redemptions/{redemption.pk}/reverse/", {"reason": ""})
    assert not ApprovalRequest.objects.exists()
    approver.post(f"/redemptions/{redemption.pk}/reverse/", {"reason": "Bill was cancelled"})
    request = ApprovalRequest.objects.get()
    redemption.refresh_from_db()
    assert redemption.status == "captured" and request.requested_by == cast.approver
    # The requester sees the request but no button to decide it, and a decision posted anyway is refused.
    page = approver.get("/approvals/").content.decode()
    assert f"#{request.pk}" in page and f"/approvals/{request.pk}/approve/" not in page
    approver.post(f"/approvals/{request.pk}/approve/", {"reason": ""})
    redemption.refresh_from_db()
    assert redemption.status == "captured"
    # A different approver approves it.
    other = as_user(cast.approver2)
    assert f"/approvals/{request.pk}/approve/" in other.get("/approvals/").content.decode()
    other.post(f"/approvals/{request.pk}/approve/", {"reason": ""})
    redemption.refresh_from_db()
    assert redemption.status == "reversed" and redemption.reversal_reason == "Bill was cancelled"
    assert (redemption.reversal_requested_by, redemption.reversed_by) == (cast.approver, cast.approver2)
    # A clerk may not reverse.
    as_user(cast.clerk).post("/redeem/", redeem_form(grant, bill_number="BILL-2"))
    second = Redemption.objects.get(bill_number="BILL-2")
    as_user(cast.clerk).post(f"/redemptions/{second.pk}/reverse/", {"reason": "mine"})
    second.refresh_from_db()
    assert second.status == "captured"


def test_api_keys_are_shown_once_work_and_stop_working_when_revoked(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    clerk = as_user(cast.clerk)
    response = clerk.post("/api-keys/", {"name": "billing-prod"})
    body = response.content.decode()
    key = ApiKey.objects.get()
    secret = body.split('id="new-key">', 1)[1].split("<", 1)[0]
    assert secret.startswith(key.prefix) and api_key_lookup(secret) == key
    assert "no-store" in response["Cache-Control"]
    listing = clerk.get("/api-keys/").content.decode()
    assert secret not in listing and key.prefix in listing
    clerk.post(f"/api-keys/{key.pk}/revoke/")
    assert api_key_lookup(secret) is None
    # Another provider's clerk cannot revoke it (404), and an enterprise cannot open the page.
    from tests.factories import ProviderFactory, UserFactory

    assert as_user(UserFactory(provider=ProviderFactory())).post(f"/api-keys/{key.pk}/revoke/").status_code == 404
    assert as_user(cast.member).get("/api-keys/").status_code == 403


def test_an_empty_key_name_is_refused(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    body = as_user(cast.clerk).post("/api-keys/", {"name": "  "}).content.decode()
    assert 'id="id_name_errors"' in body and not ApiKey.objects.exists()
