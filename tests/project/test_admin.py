"""The admin, on the demo data: every page a superuser can reach answers, changelists take a bounded
number of queries, and money can only be looked at."""

import contextlib
from collections.abc import Iterator
from io import StringIO

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import models, transaction
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from accounts.models import (
    Enterprise,
    EnterpriseFlagsEvent,
    Facility,
    ModelFiling,
    Provider,
    ProviderChange,
    RelatedParty,
    Sanction,
    User,
)
from config.money import yuan_text as yuan
from coupons.management.commands.seed_demo import PASSWORD_DEFAULT
from coupons.models import (
    DEFAULT_PROGRAM,
    Application,
    ApplicationEvent,
    CapOverride,
    Grant,
    ProgramYear,
    RateRuleSet,
    Redemption,
    Settlement,
    StackingRule,
    StackingRuleProgram,
)
from coupons.selectors import grant_figures, program_year_figures

CHANGELIST_QUERIES_MAX = 15
REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
VIEW_ONLY = [
    Application,
    ApplicationEvent,
    CapOverride,
    Grant,
    ProgramYear,
    RateRuleSet,
    Redemption,
    Settlement,
    StackingRule,
    StackingRuleProgram,
    RelatedParty,
    Facility,
    ProviderChange,
    EnterpriseFlagsEvent,
    ModelFiling,
    Sanction,
]


@pytest.fixture(scope="module")
def demo(django_db_setup: None, django_db_blocker) -> Iterator[None]:
    """The demo data, loaded once for the module and rolled back after it."""
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", stdout=StringIO())
        from accounts.credentials import api_key_create, token_issue
        from accounts.models import User

        clerk = User.objects.get(username="provider1")
        api_key_create(provider=clerk.provider, name="billing system", actor=clerk)
        token_issue(user=User.objects.get(username="admin"))
        from django.test import RequestFactory

        from accounts.errors import SignInFailed
        from accounts.signin import sign_in_check

        with contextlib.suppress(SignInFailed):  # One failed sign-in, for django-axes's records.
            sign_in_check(request=RequestFactory().post("/admin/login/"), username="admin", password="wrong")
        from coupons.models import Alert

        Alert.objects.create(kind="pool_80", key="pool:test:80", message="The test pool is 80% used.")
        from coupons.models import OutboxMessage

        OutboxMessage.objects.create(task="coupons.tasks.run_audit", args=[1])
        yield
        transaction.set_rollback(True)


@pytest.fixture
def superuser_client(demo: None, db: None, client: Client) -> Client:
    # A request for django-axes, which counts sign-ins per address.
    assert client.login(request=HttpRequest(), username="admin", password=PASSWORD_DEFAULT)
    return client


def url(model: type[models.Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_app_model_is_registered():
    for label in ("accounts", "coupons", "ledger"):
        for model in apps.get_app_config(label).get_models():
            assert model in admin.site._registry, model._meta.label


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_changelist_answers_in_bounded_queries(superuser_client: Client, django_assert_max_num_queries, model):
    with django_assert_max_num_queries(CHANGELIST_QUERIES_MAX):
        response = superuser_client.get(url(model, "changelist"))
    assert response.status_code == 200


# The demo archives no chain (an archive needs a closed, audited year), so these two have no row to
# open a change page on; their changelists are still read above.
WITHOUT_DEMO_ROWS = {"ledger.ArchivedTotals", "ledger.ChainArchive"}


@pytest.mark.parametrize(
    "model",
    [model for model in REGISTERED if model._meta.label not in WITHOUT_DEMO_ROWS],
    ids=lambda model: model._meta.label,
)
def test_change_page_answers(superuser_client: Client, model):
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"the demo has no {model._meta.verbose_name}"
    response = superuser_client.get(url(model, "change", quote(obj.pk)))
    assert response.status_code == 200


@pytest.mark.parametrize("model", VIEW_ONLY, ids=lambda model: model._meta.label)
def test_money_and_policy_are_view_only(superuser_client: Client, model):
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None

    assert superuser_client.get(url(model, "add")).status_code == 403
    assert superuser_client.post(url(model, "change", quote(obj.pk)), {}).status_code == 403
    assert superuser_client.post(url(model, "delete", quote(obj.pk)), {"post": "yes"}).status_code == 403
    assert model._default_manager.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", [Enterprise, Provider], ids=["enterprise", "provider"])
def test_a_superuser_may_correct_an_organisation_name_and_nothing_else(superuser_client: Client, model):
    # given
    obj = model._default_manager.order_by("pk").first()
    before = model._default_manager.values().get(pk=obj.pk)

    # when: the form also sends a status and a credit code, which are read-only
    response = superuser_client.post(
        url(model, "change", obj.pk), {"name": "Corrected Name Co., Ltd.", "status": "suspended", "uscc": "X"}
    )

    # then
    assert response.status_code == 302
    after = model._default_manager.values().get(pk=obj.pk)
    assert after == {**before, "name": "Corrected Name Co., Ltd."}
    assert superuser_client.get(url(model, "add")).status_code == 403
    assert superuser_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403


def test_a_staff_member_without_superuser_may_not_rename(superuser_client: Client):
    # given: a staff user who may change enterprises by Django's permissions
    staff = User.objects.create_user(username="clerk-with-perms", password=PASSWORD_DEFAULT, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=["view_enterprise", "change_enterprise"]))
    enterprise = Enterprise.objects.order_by("pk").first()
    client = Client()
    client.force_login(staff)

    # when
    response = client.post(url(Enterprise, "change", enterprise.pk), {"name": "Renamed"})

    # then
    assert response.status_code == 403
    assert Enterprise.objects.get(pk=enterprise.pk).name == enterprise.name


def test_a_grant_page_shows_its_balance_in_yuan(superuser_client: Client):
    grant = Grant.objects.filter(status=Grant.Status.ACTIVE).order_by("pk").first()
    figures = grant_figures(grant)
    assert figures["held_fen"] or figures["redeemed_fen"]

    body = superuser_client.get(url(Grant, "change", grant.pk)).content.decode()

    for name in ("available_fen", "held_fen", "redeemed_fen"):
        assert yuan(figures[name]) in body, name
    assert yuan(grant.amount_fen) in body
    assert superuser_client.get(f"{url(Redemption, 'changelist')}?grant__id__exact={grant.pk}").status_code == 200


def test_a_program_year_page_shows_its_pool_figures_in_yuan(superuser_client: Client):
    year = ProgramYear.objects.get(program_id=DEFAULT_PROGRAM, status=ProgramYear.Status.OPEN)
    figures = program_year_figures(year=year.year)

    body = superuser_client.get(url(ProgramYear, "change", year.pk)).content.decode()

    assert "¥250,000,000.00" in body
    for name, fen in figures.as_dict().items():
        assert yuan(fen) in body, name


def test_the_user_list_shows_organisations_and_roles(superuser_client: Client):
    body = superuser_client.get(url(User, "changelist")).content.decode()

    assert "approver" in body
    assert Enterprise.objects.order_by("pk").first().name in body
    assert Provider.objects.order_by("pk").first().name in body


def test_changelist_filters_answer(superuser_client: Client):
    year = ProgramYear.objects.get(program_id=DEFAULT_PROGRAM, status=ProgramYear.Status.OPEN).pk
    provider = Provider.objects.order_by("pk").first()
    enterprise = Enterprise.objects.order_by("pk").first()
    for model, query in [
        (Application, f"status__exact=approved&year__id__exact={year}&provider__id__exact={provider.pk}"),
        (Grant, f"status__exact=active&enterprise__id__exact={enterprise.pk}"),
        (Redemption, f"status__exact=captured&grant__year__id__exact={year}"),
        (Settlement, "status__exact=paid"),
        (Application, "q=HZ-DEMO"),
    ]:
        response = superuser_client.get(f"{url(model, 'changelist')}?{query}")
        assert response.status_code == 200, (model, query)
        assert "errornote" not in response.content.decode(), (model, query)


def test_the_admin_decides_approval_requests_through_the_service_and_never_the_requesters_own(
    superuser_client: Client,
):
    from approvals.models import ApprovalRequest
    from coupons.models import Grant
    from coupons.services.grants import grant_revoke_request

    admin_user = User.objects.get(username="admin")
    grant = Grant.objects.filter(status="active").order_by("pk").first()
    own = grant_revoke_request(grant=grant, requester=admin_user, reason="The admin's own request")
    changelist = url(ApprovalRequest, "changelist")
    response = superuser_client.post(
        changelist, {"action": "approve_selected", "_selected_action": [own.pk]}, follow=True
    )
    assert response.status_code == 200
    own.refresh_from_db()
    grant.refresh_from_db()
    assert (own.status, grant.status) == ("pending", "active")  # Four eyes: refused in the admin too.
    assert "a different person must decide" in response.content.decode()
    # Someone else's request: the admin (a superuser, who holds every role) may decide it.
    theirs = ApprovalRequest.objects.get(status="pending", action="settlement_pay")
    superuser_client.post(changelist, {"action": "approve_selected", "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert (theirs.status, theirs.decided_by) == ("approved", admin_user)


def test_a_group_a_role_is_named_after_is_never_renamed_in_the_admin(superuser_client: Client):
    # Found from outside: renaming "auditor" to "finance" gave one superuser's second account a role
    # without the second superuser a role grant needs.
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="auditor")
    response = superuser_client.post(url(Group, "change", group.pk), {"name": "finance"})
    assert response.status_code == 403
    assert Group.objects.get(pk=group.pk).name == "auditor"
    assert superuser_client.post(url(Group, "delete", group.pk), {"post": "yes"}).status_code == 403
    assert Group.objects.filter(pk=group.pk).exists()


def test_the_programs_a_staff_member_reaches_are_shown_not_edited(superuser_client: Client):
    # The change form was a second way for one superuser to widen a limited staff member's reach,
    # which the API sends to a second superuser (`user_programs_widen`).
    from accounts.models import User

    staff = User.objects.get(username="reviewer")
    User.objects.filter(pk=staff.pk).update(programs=["hangzhou-compute"])
    page = superuser_client.get(url(User, "change", staff.pk))
    assert page.status_code == 200
    assert 'name="programs"' not in page.content.decode()
    assert "hangzhou-compute" in page.content.decode()
