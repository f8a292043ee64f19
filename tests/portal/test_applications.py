"""The enterprise applies with a live preview, and each role moves the application on from its page.

Every refusal leaves the database as it was and shows the person's own input again.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from coupons.models import Application, Grant, ProgramYear
from tests.coupons.conftest import Cast
from tests.evidence import checked, contract_fields
from tests.portal.conftest import this_year, walk_to_grant

APPLY = {
    "contract_number": "HZ-2026-001",
    "contract_fee": "10,000.00",
    "compute_source": "domestic",
    "purpose": "training",
    "requested": "",
}


def apply_form(cast: Cast, **changes: str) -> dict[str, Any]:
    return {"provider": str(cast.provider.pk), **APPLY, **contract_fields(this_year()), **changes}


def test_the_preview_shows_the_rate_and_eligible_amount_and_writes_nothing(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    client = as_user(cast.member)  # Signing in writes last_login: before the snapshot.
    before = db_snapshot()
    response = client.get("/apply/preview/", apply_form(cast, contract_fee="333.33"))
    body = response.content.decode()
    assert response.status_code == 200
    # 33,333 fen at 30% is 9,999.9 fen: rounded down, 9,999 fen.
    assert 'data-bp="3000"' in body and 'data-fen="9999"' in body and "¥99.99" in body
    assert db_snapshot() == before


def test_without_javascript_the_preview_button_shows_the_preview_and_writes_nothing(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    client = as_user(cast.member)
    before = db_snapshot()
    response = client.post("/apply/", apply_form(cast) | {"preview": "1"})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="preview-eligible" data-fen="300000"' in body and 'value="HZ-2026-001"' in body
    assert db_snapshot() == before


def test_the_preview_says_what_to_enter_until_it_can_tell(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    response = as_user(cast.member).get("/apply/preview/", {"contract_fee": "abc"})
    assert response.status_code == 200 and "preview-rate" not in response.content.decode()


def test_other_compute_gets_twenty_percent_in_the_preview(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    body = as_user(cast.member).get("/apply/preview/", apply_form(cast, compute_source="other")).content.decode()
    assert 'data-bp="2000"' in body and 'id="preview-eligible" data-fen="200000"' in body


def test_an_enterprise_applies_and_lands_on_its_application(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    response = as_user(cast.member).post("/apply/", apply_form(cast, requested="2,500.50"))
    application = Application.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/applications/{application.pk}/"
    assert (application.contract_fee_fen, application.requested_fen, application.eligible_fen) == (
        1_000_000,
        250_050,
        300_000,
    )
    assert application.status == "submitted" and application.enterprise_id == cast.enterprise.pk
    page = as_user(cast.member).get(response["Location"]).content.decode()
    assert "HZ-2026-001" in page and "¥10,000.00" in page and "¥2,500.50" in page


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contract_fee": "12.345"}, "contract_fee"),
        ({"contract_fee": "-5"}, "contract_fee"),
        ({"contract_fee": "0"}, "contract_fee"),
        ({"contract_number": ""}, "contract_number"),
        ({"provider": "999999"}, "provider"),
        ({"compute_source": "quantum"}, "compute_source"),
        ({"requested": "3,000.01"}, "requested"),  # 0.01 yuan above the eligible 3,000.00
    ],
)
def test_bad_input_is_refused_in_the_persons_language_with_their_input_kept(
    changes: dict[str, str],
    field: str,
    cast: Cast,
    year: ProgramYear,
    as_user: Callable[..., Client],
    db_snapshot: Callable[[], object],
):
    clients = {language: as_user(cast.member, language=language) for language in ("zh-hans", "en")}
    before = db_snapshot()
    form = apply_form(cast, **changes)
    for language, client in clients.items():
        response = client.post("/apply/", form)
        body = response.content.decode()
        assert response.status_code == 400, body[:300]
        assert f'id="id_{field}_errors"' in body or (field == "requested" and "errorlist" in body)
        assert f'lang="{language}"' in body
        # What the person typed is still in the form.
        assert 'value="HZ-2026-001"' in body or changes.get("contract_number") == ""
    assert db_snapshot() == before


def test_a_refusal_by_the_service_is_said_in_chinese(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    walk_to_grant(cast, number="HZ-2026-001")
    client = as_user(cast.member)
    before = db_snapshot()
    body = client.post("/apply/", apply_form(cast)).content.decode()
    with translation.override("zh-hans"):
        expected = translation.gettext("This contract with this computing center already has an application.")
    assert expected in body and expected != "This contract with this computing center already has an application."
    assert db_snapshot() == before


def test_the_whole_walk_through_the_pages(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    # given: an application
    as_user(cast.member).post("/apply/", apply_form(cast))
    application = Application.objects.get()
    url = f"/applications/{application.pk}/"
    # the provider confirms from its home page
    assert "HZ-2026-001" in as_user(cast.clerk).get("/provider/").content.decode()
    assert as_user(cast.clerk).post(url + "confirm/").status_code == 302
    # the reviewer sees it in the queue and reviews it
    assert url in as_user(cast.reviewer).get("/review/").content.decode()
    assert (
        as_user(cast.reviewer)
        .post(url + "review/", {"recommended": "2,000", "note": "ok", **checked(application)})
        .status_code
        == 302
    )
    application.refresh_from_db()
    assert (application.status, application.recommended_fen, application.reviewed_by_id) == (
        "reviewed",
        200_000,
        cast.reviewer.pk,
    )
    # the approver sees who reviewed it, and approves less than recommended
    page = as_user(cast.approver).get(url).content.decode()
    assert 'id="four-eyes"' in page and cast.reviewer.username in page and 'id="approve"' in page
    assert as_user(cast.approver).post(url + "approve/", {"approved": "1,500.00"}).status_code == 302
    grant = Grant.objects.get(application=application)
    assert grant.amount_fen == 150_000 and grant.status == "active"
    assert grant.code in as_user(cast.member).get("/enterprise/").content.decode()


def test_four_eyes_is_shown_and_enforced_for_an_approver_who_reviewed(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    from accounts.models import Role
    from tests.factories import UserFactory

    both = UserFactory(roles=[Role.REVIEWER, Role.APPROVER])
    as_user(cast.member).post("/apply/", apply_form(cast))
    application = Application.objects.get()
    url = f"/applications/{application.pk}/"
    as_user(cast.clerk).post(url + "confirm/")
    as_user(both).post(url + "review/", {"recommended": "3,000", **checked(application)})
    page = as_user(both).get(url).content.decode()
    assert 'id="approve"' not in page and 'id="four-eyes"' in page
    client = as_user(both)
    before = db_snapshot()
    response = client.post(url + "approve/", {"approved": ""}, follow=True)
    assert db_snapshot() == before
    with translation.override("zh-hans"):
        expected = translation.gettext("Four eyes: the approver may not be the reviewer (or the requester).")
    assert expected in response.content.decode()


def test_an_approval_past_the_pool_says_what_is_left_and_keeps_the_amount(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    # given: the pool is 10,000 yuan and 9,000 are granted (3 grants of 3,000, three enterprises' caps)
    from tests.factories import EnterpriseFactory, UserFactory

    for number in range(3):
        enterprise = EnterpriseFactory(status="verified")
        other = Cast(**{**cast.__dict__, "enterprise": enterprise, "member": UserFactory(enterprise=enterprise)})
        walk_to_grant(other, number=f"FILL-{number}")
    as_user(cast.member).post("/apply/", apply_form(cast))
    application = Application.objects.get(contract_number="HZ-2026-001")
    url = f"/applications/{application.pk}/"
    as_user(cast.clerk).post(url + "confirm/")
    as_user(cast.reviewer).post(url + "review/", {"recommended": "3,000", **checked(application)})
    client = as_user(cast.approver, language="en")
    before = db_snapshot()
    response = client.post(url + "approve/", {"approved": "2,500"})
    body = response.content.decode()
    assert response.status_code == 400
    assert "The pool has only ¥1,000.00 left" in body and 'value="2,500"' in body
    assert db_snapshot() == before


def test_reject_needs_a_reason_and_withdraw_is_the_enterprises(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    as_user(cast.member).post("/apply/", apply_form(cast))
    as_user(cast.member).post("/apply/", apply_form(cast, contract_number="HZ-2026-002"))
    first, second = Application.objects.order_by("pk")
    as_user(cast.clerk).post(f"/applications/{first.pk}/confirm/")
    assert as_user(cast.reviewer).post(f"/applications/{first.pk}/reject/", {"reason": ""}).status_code == 400
    first.refresh_from_db()
    assert first.status == "confirmed"
    as_user(cast.reviewer).post(f"/applications/{first.pk}/reject/", {"reason": "Contract not real"})
    first.refresh_from_db()
    assert (first.status, first.reject_reason) == ("rejected", "Contract not real")
    # The provider may not withdraw; the enterprise may.
    as_user(cast.clerk).post(f"/applications/{second.pk}/withdraw/")
    second.refresh_from_db()
    assert second.status == "submitted"
    as_user(cast.member).post(f"/applications/{second.pk}/withdraw/")
    second.refresh_from_db()
    assert second.status == "withdrawn"
    history = as_user(cast.member).get(f"/applications/{second.pk}/").content.decode()
    assert history.count("<td>" + cast.member.username + "</td>") == 2  # submitted and withdrawn


def test_a_compute_source_the_center_does_not_offer_is_refused_in_the_persons_language(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    cast.provider.facilities.filter(compute_source="other").delete()
    english = (
        "The computing center offers no facility of this compute source today. Choose the compute source "
        "it offers, or another computing center."
    )
    clients = {language: as_user(cast.member, language=language) for language in ("zh-hans", "en")}
    before = db_snapshot()
    for language, client in clients.items():
        response = client.post("/apply/", apply_form(cast, compute_source="other"))
        body = response.content.decode()
        with translation.override(language):
            expected = translation.gettext(english)
        assert response.status_code == 400 and expected in body, body[:300]
        assert (expected != english) == (language == "zh-hans")
        assert 'value="HZ-2026-001"' in body
    assert db_snapshot() == before


def test_an_enterprise_applies_to_the_program_it_chooses(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    from coupons.models import Program
    from coupons.services.years import program_year_create, program_year_open

    Program.objects.create(
        slug="binjiang-compute", name="滨江区算力券", name_en="Binjiang", authority="滨江区", level="district"
    )
    program_year_create(year=this_year(), actor=cast.admin, program="binjiang-compute")
    district = program_year_open(year=this_year(), actor=cast.admin, program="binjiang-compute")
    client = as_user(cast.member)
    form = client.get("/apply/").content.decode()
    assert 'name="program"' in form and "滨江区算力券" in form
    preview = client.get("/apply/preview/", apply_form(cast, program="binjiang-compute")).content.decode()
    assert "滨江区算力券" in preview

    response = client.post("/apply/", apply_form(cast, program="binjiang-compute"))

    application = Application.objects.get()
    assert response.status_code == 302
    assert (application.program_id, application.year_id) == ("binjiang-compute", district.pk)
    # An unknown program is the form's refusal, and nothing is written.
    refused = client.post("/apply/", apply_form(cast, program="no-such-program", contract_number="HZ-2"))
    assert refused.status_code == 400 and 'id="id_program_errors"' in refused.content.decode()
    assert Application.objects.count() == 1
