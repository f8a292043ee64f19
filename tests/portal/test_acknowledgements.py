"""The enterprise acknowledges or disputes its bills on its overview; reviewers uphold or dismiss
disputes beside the invoice; finance sees what may be settled and what still waits."""

from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from coupons.models import Grant, ProgramYear, Redemption
from coupons.services.acknowledgements import redemption_dispute
from coupons.services.redemptions import redemption_create
from tests.coupons.conftest import Cast
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, UserFactory
from tests.portal.conftest import walk_to_grant

A = Redemption.Acknowledgement


def captured(cast: Cast, grant: Grant, number: str) -> Redemption:
    return redemption_create(
        grant=grant, bill_number=number, bill_amount_fen=100_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )


@pytest.fixture
def grant(cast: Cast, year: ProgramYear) -> Grant:
    return walk_to_grant(cast)


def test_the_enterprise_sees_its_bills_awaiting_it_and_acknowledges_one(
    cast: Cast, grant: Grant, as_user: Callable[..., Client]
):
    bill = captured(cast, grant, "BILL-1")
    member = as_user(cast.member, language="en")

    page = member.get("/enterprise/").content.decode()
    assert "Bills awaiting your acknowledgement" in page and f'id="bill-{bill.pk}"' in page
    assert timezone.localtime(Redemption.objects.get(pk=bill.pk).acknowledge_by).strftime("%Y-%m-%d %H:%M") in page
    assert 'data-confirm="Acknowledge this bill?' in page and 'data-confirm="Dispute this bill?' in page

    response = member.post(f"/redemptions/{bill.pk}/acknowledge/", {"next": "/enterprise/"}, follow=True)

    assert Redemption.objects.get(pk=bill.pk).acknowledgement == A.CONFIRMED
    body = response.content.decode()
    assert "Bill acknowledged" in body and f'id="bill-{bill.pk}"' not in body


def test_the_enterprise_disputes_a_bill_with_a_reason(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    bill = captured(cast, grant, "BILL-1")
    member = as_user(cast.member, language="en")

    refused = member.post(f"/redemptions/{bill.pk}/dispute/", {"reason": "  "}, follow=True)
    assert Redemption.objects.get(pk=bill.pk).acknowledgement == A.AWAITING
    assert "Reason" in refused.content.decode()

    member.post(f"/redemptions/{bill.pk}/dispute/", {"reason": "We never ran this job."})

    row = Redemption.objects.get(pk=bill.pk)
    assert (row.acknowledgement, row.dispute_reason, row.acknowledged_by) == (
        A.DISPUTED,
        "We never ran this job.",
        cast.member,
    )


def test_the_overview_shows_the_chinese_words_by_default(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    captured(cast, grant, "BILL-1")

    page = as_user(cast.member).get("/enterprise/").content.decode()

    assert "待您确认的账单" in page and "提出异议" in page


def test_others_may_not_answer_for_the_enterprise(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    bill = captured(cast, grant, "BILL-1")
    stranger = UserFactory(enterprise=EnterpriseFactory())

    assert as_user(stranger).post(f"/redemptions/{bill.pk}/acknowledge/").status_code == 404
    as_user(cast.clerk).post(f"/redemptions/{bill.pk}/acknowledge/")
    as_user(cast.reviewer).post(f"/redemptions/{bill.pk}/dispute/", {"reason": "x"})

    assert Redemption.objects.get(pk=bill.pk).acknowledgement == A.AWAITING
    assert as_user(cast.member).post(f"/redemptions/{bill.pk}/nonsense/").status_code == 404


def test_a_reviewer_sees_disputes_with_the_invoice_and_upholds_one(
    cast: Cast, grant: Grant, as_user: Callable[..., Client]
):
    upheld, dismissed = captured(cast, grant, "BILL-1"), captured(cast, grant, "BILL-2")
    for bill in (upheld, dismissed):
        redemption_dispute(redemption=bill, actor=cast.member, reason=f"{bill.bill_number} never ran.")
    if upheld.invoice_document_id is None:  # Before redemptions record their invoice: give it one.
        Redemption.objects.filter(pk=upheld.pk).update(**invoice(cast.clerk))
    upheld.refresh_from_db()
    reviewer = as_user(cast.reviewer, language="en")

    page = reviewer.get("/disputes/").content.decode()
    assert "BILL-1 never ran." in page and "BILL-2 never ran." in page
    assert f'href="/api/v1/documents/{upheld.invoice_document_id}/content/">{upheld.invoice_number}<' in page
    assert reviewer.get(f"/api/v1/documents/{upheld.invoice_document_id}/content/").status_code == 200
    assert 'data-confirm="Uphold this dispute?' in page and 'data-confirm="Dismiss this dispute?' in page

    reviewer.post(f"/redemptions/{upheld.pk}/uphold/", {"note": "No usage logs.", "next": "/disputes/"})
    response = reviewer.post(f"/redemptions/{dismissed.pk}/dismiss/", {"note": "Logs match."}, follow=True)

    rows = {r.bill_number: r for r in Redemption.objects.all()}
    assert (rows["BILL-1"].acknowledgement, rows["BILL-1"].status) == (A.UPHELD, "reversed")
    assert (rows["BILL-2"].acknowledgement, rows["BILL-2"].status) == (A.DISMISSED, "captured")
    assert "Dispute dismissed" in response.content.decode()
    assert "never ran." not in reviewer.get("/disputes/").content.decode()


def test_a_resolution_needs_a_note(cast: Cast, grant: Grant, as_user: Callable[..., Client]):
    bill = captured(cast, grant, "BILL-1")
    redemption_dispute(redemption=bill, actor=cast.member, reason="Never ran.")

    as_user(cast.reviewer).post(f"/redemptions/{bill.pk}/uphold/", {"note": ""})
    as_user(cast.member).post(f"/redemptions/{bill.pk}/dismiss/", {"note": "mine"})

    assert Redemption.objects.get(pk=bill.pk).acknowledgement == A.DISPUTED


def test_the_disputes_page_is_for_reviewers_and_approvers(cast: Cast, year: ProgramYear, as_user):
    assert as_user(cast.reviewer).get("/disputes/").status_code == 200
    assert as_user(cast.approver).get("/disputes/").status_code == 200
    for user in (cast.finance, cast.member, cast.clerk):
        assert as_user(user).get("/disputes/").status_code == 403


def test_finance_sees_only_what_may_be_settled_and_how_many_bills_wait(
    cast: Cast, grant: Grant, as_user: Callable[..., Client]
):
    confirmed, disputed = captured(cast, grant, "BILL-1"), captured(cast, grant, "BILL-2")
    captured(cast, grant, "BILL-3")
    member = as_user(cast.member)
    member.post(f"/redemptions/{confirmed.pk}/acknowledge/")
    member.post(f"/redemptions/{disputed.pk}/dispute/", {"reason": "Never ran."})
    finance = as_user(cast.finance, language="en")

    page = finance.get("/settlements/").content.decode()

    row = page.split(f'id="unsettled-{cast.provider.pk}"')[1].split("</tr>")[0]
    cells = [cell.split(">", 1)[1].split("<")[0] for cell in row.split("<td")[1:]]
    assert cells == ["杭州市算力券", cast.provider.name, "1", "¥300.00", "1", "1"]  # The program, then the center.
    assert "Awaiting acknowledgement" in page
    finance.post("/settlements/", {"provider": cast.provider.pk})
    assert list(Redemption.objects.filter(settlement__isnull=False).values_list("bill_number", flat=True)) == ["BILL-1"]
