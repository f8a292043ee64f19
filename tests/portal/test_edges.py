"""Edges a reviewer found by hand: odd action words, odd input, redirects, expired holds, limits
said in the person's language, spreadsheet-friendly CSV."""

from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from coupons.models import Application, ProgramYear, Redemption
from coupons.services.applications import application_confirm, application_submit
from coupons.services.redemptions import redemption_create
from tests.coupons.conftest import Cast
from tests.evidence import checked, contract, invoice
from tests.portal.conftest import this_year, walk_to_grant


@pytest.mark.parametrize(
    "path",
    [
        "/applications/{application}/delete/",
        "/redemptions/{redemption}/release/",
        "/enterprises/{enterprise}/activate/",
        "/providers/{provider}/status/deleted/",
    ],
)
def test_an_unknown_action_word_is_not_found_and_changes_nothing(
    path: str, cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    grant = walk_to_grant(cast)
    redemption = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, **invoice(cast.clerk)
    )
    url = path.format(
        application=grant.application_id,
        redemption=redemption.pk,
        enterprise=cast.enterprise.pk,
        provider=cast.provider.pk,
    )
    user = cast.clerk if "redemptions" in path else cast.admin
    client = as_user(user)
    before = db_snapshot()
    assert client.post(url).status_code == 404
    assert db_snapshot() == before


def test_a_nul_in_the_search_is_refused_not_an_error(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    # Every query string with a NUL is refused before any view (config.middleware.RequestShapeMiddleware).
    assert as_user(cast.reviewer).get("/enterprises/", {"q": "\x00"}).status_code == 400


def test_an_export_in_the_year_9999_is_refused_not_a_crash(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    query = {"what": "grants", "start": "9999-12-31", "end": "9999-12-31", "file_format": "xlsx"}
    response = as_user(cast.finance, language="en").get("/exports/", query)
    assert response.status_code == 400 and "Choose a day between 2000 and 2999." in response.content.decode()


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example", "https://evil.example/", "/\t/evil.example"])
def test_next_never_leaves_the_site(target: str, cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    from tests.factories import EnterpriseFactory

    enterprise = EnterpriseFactory(status="pending")
    response = as_user(cast.reviewer).post(f"/enterprises/{enterprise.pk}/verify/", {"next": target})
    assert response.status_code == 302 and response["Location"] == "/enterprises/"


def test_a_review_above_the_request_is_refused_with_the_amount_in_yuan(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client], db_snapshot: Callable[[], object]
):
    application = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number="C-1",
        contract_fee_fen=1_000_000,
        compute_source="domestic",
        purpose="training",
        requested_fen=250_000,
        **contract(cast.member, this_year()),
    )
    application_confirm(application=application, actor=cast.clerk)
    client = as_user(cast.reviewer, language="en")
    before = db_snapshot()
    response = client.post(
        f"/applications/{application.pk}/review/", {"recommended": "2,500.01", **checked(application)}
    )
    assert response.status_code == 400
    assert "At most the amount requested, ¥2,500.00." in response.content.decode()
    assert db_snapshot() == before
    assert Application.objects.get().status == "confirmed"


def test_an_expired_hold_shows_as_expired_and_capturing_it_says_why(
    cast: Cast, year: ProgramYear, as_user: Callable[..., Client]
):
    grant = walk_to_grant(cast)
    redemption = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, **invoice(cast.clerk)
    )
    Redemption.objects.filter(pk=redemption.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    clerk = as_user(cast.clerk, language="en")
    page = clerk.get("/provider/").content.decode()
    assert "Hold expired; the next expiry run returns it" in page
    assert f"/redemptions/{redemption.pk}/capture/" not in page


def test_the_settlement_lines_for_the_bank_open_in_excel(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    from coupons.selectors import settlement_lines_csv
    from tests.controls import settlement_create

    grant = walk_to_grant(cast)
    redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    text = as_user(cast.finance).get(f"/settlements/{settlement.pk}/lines.csv").content.decode()
    assert text == "\ufeff" + settlement_lines_csv(settlement)
