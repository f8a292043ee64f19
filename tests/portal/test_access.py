"""Who may open which page: the navigation shows only what the role may do, and the pages agree.

Anonymous people are sent to sign in (except for the public notice); a signed-in person whose
role may not use a page gets 403; another organisation's object is 404, never 403.
"""

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import Role, User
from coupons.models import ProgramYear, Settlement
from coupons.services.redemptions import redemption_create
from portal.navigation import items_for
from tests.controls import settlement_create
from tests.coupons.conftest import Cast
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory
from tests.portal.conftest import walk_to_grant

ENTERPRISE_PAGES = ["/enterprise/", "/apply/"]
PROVIDER_PAGES = ["/provider/", "/redeem/", "/api-keys/"]
SIGNED_IN_PAGES = ["/applications/", "/redemptions/", "/claims/"]
STAFF_PAGES = ["/dashboard/", "/providers/", "/enterprises/", "/grants/", "/alerts/", "/approvals/"]
ROLE_PAGES = {
    "/review/": {Role.REVIEWER, Role.APPROVER},
    "/disputes/": {Role.REVIEWER, Role.APPROVER},
    "/cap-overrides/": {Role.REVIEWER, Role.APPROVER},
    "/exports/": {Role.FINANCE},
    "/audits/": {Role.AUDITOR},
}
ALL_PAGES = ENTERPRISE_PAGES + PROVIDER_PAGES + SIGNED_IN_PAGES + STAFF_PAGES + list(ROLE_PAGES) + ["/settlements/"]


@pytest.fixture
def people(cast: Cast, year: ProgramYear) -> dict[str, User]:
    return {
        "enterprise": cast.member,
        "provider": cast.clerk,
        "reviewer": cast.reviewer,
        "approver": cast.approver,
        "finance": cast.finance,
        "auditor": UserFactory(roles=[Role.AUDITOR]),
        "superuser": cast.admin,
    }


def expected_status(kind: str, user: User, page: str) -> int:
    if page in ENTERPRISE_PAGES:
        return 200 if kind == "enterprise" else 403
    if page in PROVIDER_PAGES:
        return 200 if kind == "provider" else 403
    if page in SIGNED_IN_PAGES:
        return 200
    if page == "/settlements/":
        return 302 if kind == "enterprise" else 200  # Enterprises have no settlements: sent home.
    if page in STAFF_PAGES:
        return 200 if user.is_staff_member else 403
    roles = ROLE_PAGES[page]
    return 200 if any(user.has_role(role) for role in roles) else 403


@pytest.mark.parametrize("kind", ["enterprise", "provider", "reviewer", "approver", "finance", "auditor", "superuser"])
def test_every_page_answers_each_role_as_its_role_allows(
    kind: str, people: dict[str, User], as_user: Callable[..., Client]
):
    user = people[kind]
    client = as_user(user)
    answers = {page: client.get(page).status_code for page in ALL_PAGES}
    assert answers == {page: expected_status(kind, user, page) for page in ALL_PAGES}


@pytest.mark.parametrize("kind", ["enterprise", "provider", "reviewer", "approver", "finance", "auditor", "superuser"])
def test_the_navigation_links_only_pages_the_role_may_open(
    kind: str, people: dict[str, User], as_user: Callable[..., Client]
):
    user = people[kind]
    client = as_user(user)
    links = [item.url for item in items_for(user)]
    assert links, "every role has somewhere to go"
    assert all(client.get(link).status_code == 200 for link in links), links
    # And the pages the role may not open are not in its navigation.
    forbidden = [page for page in ALL_PAGES if expected_status(kind, user, page) != 200]
    assert not set(forbidden) & set(links)
    home = client.get("/")
    assert home.status_code == 302 and client.get(home["Location"]).status_code == 200


def test_anonymous_people_are_sent_to_sign_in_except_for_the_public_notice(year: ProgramYear):
    client = Client()
    for page in [*ALL_PAGES, "/"]:
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/login/"), (page, response["Location"])
    assert client.get("/public/awards/").status_code == 200
    assert client.get("/public/awards.csv").status_code == 200
    assert client.get("/login/").status_code == 200


def test_another_organisations_objects_are_not_found(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    # given: a grant of cast.enterprise at cast.provider, with a held redemption and a settlement
    grant = walk_to_grant(cast)
    redemption = redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, **invoice(cast.clerk)
    )
    other_redemption = redemption_create(
        grant=grant, bill_number="B-2", bill_amount_fen=10_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    assert Settlement.objects.filter(pk=settlement.pk).exists() and other_redemption.status == "captured"
    other_enterprise_member = UserFactory(enterprise=EnterpriseFactory(status="verified"))
    other_provider_member = UserFactory(provider=ProviderFactory())
    application_id = grant.application_id
    pages = [
        f"/applications/{application_id}/",
        f"/grants/{grant.pk}/",
        f"/settlements/{settlement.pk}/",
        f"/settlements/{settlement.pk}/lines.csv",
    ]
    posts = [
        f"/applications/{application_id}/confirm/",
        f"/applications/{application_id}/withdraw/",
        f"/redemptions/{redemption.pk}/capture/",
        f"/redemptions/{redemption.pk}/void/",
    ]
    for outsider in (other_enterprise_member, other_provider_member):
        client = as_user(outsider)
        for page in pages:
            assert client.get(page).status_code == 404, (outsider, page)
        for page in posts:
            assert client.post(page).status_code == 404, (outsider, page)
    # The outsiders' lists do not show the rows either.
    for outsider in (other_enterprise_member, other_provider_member):
        client = as_user(outsider)
        assert grant.code not in client.get("/redemptions/").content.decode()
        assert grant.application.contract_number not in client.get("/applications/").content.decode()
    # And nothing moved.
    redemption.refresh_from_db()
    assert redemption.status == "pending"
