"""Registration, verification, listing, users and related parties: who may, what is checked, and
that a refusal writes nothing."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import Enterprise, Provider, RelatedParty, Role, User
from accounts.selectors import related_parties
from accounts.services import (
    enterprise_register,
    enterprise_suspend,
    enterprise_verify,
    provider_create,
    related_party_add,
    user_create,
)
from approvals.services import approval_request_approve
from config.errors import FourEyes, PermissionDenied, ValidationFailed
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
CODE = "91350100M000100Y43"
OTHER_CODE = "91110000802100433B"
THIRD_CODE = "913301007517117015"
FACILITIES = [{"compute_source": "domestic", "description": "Ascend cluster", "listed_from": "2024-01-01"}]


def row_counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "enterprises": Enterprise.objects.count(),
        "providers": Provider.objects.count(),
        "related_parties": RelatedParty.objects.count(),
        "groups": Group.objects.count(),
        "memberships": User.groups.through.objects.count(),
    }


def register(**overrides: object) -> tuple[User, Enterprise]:
    arguments: dict[str, object] = {
        "username": "acme-admin",
        "password": PASSWORD,
        "email": "admin@acme.example",
        "name": "Acme AI",
        "uscc": CODE,
    }
    return enterprise_register(**{**arguments, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def admin() -> User:
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def reviewer() -> User:
    return UserFactory(roles=[Role.REVIEWER])


@pytest.fixture
def approver() -> User:
    return UserFactory(roles=[Role.APPROVER])


@pytest.fixture
def finance() -> User:
    return UserFactory(roles=[Role.FINANCE])


# --- enterprise_register ------------------------------------------------------------------------


def test_a_registered_enterprise_is_pending_with_its_first_member():
    # when
    user, enterprise = register(uscc=f" {CODE.lower()} ")
    # then
    enterprise.refresh_from_db()
    assert enterprise.status == Enterprise.Status.PENDING
    assert enterprise.verified_at is None
    assert enterprise.uscc == CODE
    assert (enterprise.name, enterprise.has_registered_model, enterprise.model_filing_number) == ("Acme AI", False, "")
    user = User.objects.get(pk=user.pk)
    assert user.enterprise_id == enterprise.pk and user.provider_id is None
    assert user.check_password(PASSWORD)
    assert user.roles == []


def test_registration_keeps_the_flags_and_the_filing_number():
    _, enterprise = register(
        has_registered_model=True,
        model_filing_number=" Zhejiang-202401 ",
        foundation_model_developer=True,
        small_or_medium=True,
    )
    enterprise.refresh_from_db()
    assert enterprise.has_registered_model and enterprise.foundation_model_developer and enterprise.small_or_medium
    assert enterprise.model_filing_number == "Zhejiang-202401"


def test_a_filing_number_without_a_registered_model_is_dropped():
    _, enterprise = register(has_registered_model=False, model_filing_number="Zhejiang-202401")
    enterprise.refresh_from_db()
    assert enterprise.model_filing_number == ""


@pytest.mark.parametrize("filing_number", ["", "   "])
def test_a_registered_model_needs_its_filing_number(filing_number):
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        register(has_registered_model=True, model_filing_number=filing_number)
    assert list(caught.value.errors) == ["model_filing_number"]
    assert row_counts() == before


@pytest.mark.parametrize(
    ("uscc", "says"),
    [
        (CODE[:-1] + "4", "where GB 32100-2015 gives '3'"),
        (CODE[:-1], "exactly 18 characters"),
        ("I" + CODE[1:], "found 'I'"),
        ("", "exactly 18 characters"),
    ],
    ids=["check character", "length", "alphabet", "empty"],
)
def test_a_bad_credit_code_is_a_field_error_and_nothing_is_written(uscc, says):
    # given
    before = row_counts()
    # when
    with pytest.raises(ValidationFailed) as caught:
        register(uscc=uscc)
    # then
    assert caught.value.code == "validation_error"
    assert list(caught.value.errors) == ["uscc"]
    assert says in caught.value.errors["uscc"][0]
    assert row_counts() == before


def test_a_taken_username_is_refused():
    UserFactory(username="acme-admin")
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        register(username="acme-admin")
    assert list(caught.value.errors) == ["username"]
    assert row_counts() == before


def test_an_empty_username_is_refused():
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        register(username="")
    assert list(caught.value.errors) == ["username"]
    assert row_counts() == before


@pytest.mark.parametrize("factory", [EnterpriseFactory, ProviderFactory], ids=["enterprise", "provider"])
def test_a_credit_code_already_registered_by_any_organisation_is_refused(factory):
    factory(uscc=CODE)
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        register(uscc=CODE.lower())
    assert list(caught.value.errors) == ["uscc"]
    assert row_counts() == before


@pytest.mark.parametrize(
    "password", ["short1", "password123", "83920174651", "acme-admin-1"], ids=["short", "common", "numeric", "username"]
)
def test_a_weak_password_is_refused(password):
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        register(password=password)
    assert list(caught.value.errors) == ["password"]
    assert caught.value.errors["password"]
    assert row_counts() == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_a_name_of_1_to_200_characters_is_required(name):
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        register(name=name)
    assert list(caught.value.errors) == ["name"]
    assert row_counts() == before


# --- enterprise_verify / enterprise_suspend -----------------------------------------------------


def test_a_reviewer_verifies_a_pending_enterprise(reviewer):
    # given
    enterprise = EnterpriseFactory(status=Enterprise.Status.PENDING)
    # when
    result = enterprise_verify(enterprise=enterprise, actor=reviewer)
    # then
    enterprise.refresh_from_db()
    assert result.status == enterprise.status == Enterprise.Status.VERIFIED
    assert enterprise.verified_at is not None


def test_verifying_a_verified_enterprise_changes_nothing(reviewer):
    enterprise = EnterpriseFactory(status=Enterprise.Status.PENDING)
    first = enterprise_verify(enterprise=enterprise, actor=reviewer)
    again = enterprise_verify(enterprise=enterprise, actor=reviewer)
    enterprise.refresh_from_db()
    assert again.status == Enterprise.Status.VERIFIED
    assert enterprise.verified_at == first.verified_at


def test_a_reviewer_suspends_a_verified_enterprise_and_reinstates_it(reviewer):
    enterprise = EnterpriseFactory(status=Enterprise.Status.VERIFIED)

    enterprise_suspend(enterprise=enterprise, actor=reviewer)
    enterprise.refresh_from_db()
    assert enterprise.status == Enterprise.Status.SUSPENDED

    enterprise_verify(enterprise=enterprise, actor=reviewer)
    enterprise.refresh_from_db()
    assert enterprise.status == Enterprise.Status.VERIFIED
    assert enterprise.verified_at is not None


def test_suspending_a_suspended_enterprise_changes_nothing(reviewer):
    enterprise = EnterpriseFactory(status=Enterprise.Status.SUSPENDED)
    assert enterprise_suspend(enterprise=enterprise, actor=reviewer).status == Enterprise.Status.SUSPENDED
    enterprise.refresh_from_db()
    assert enterprise.status == Enterprise.Status.SUSPENDED
    assert enterprise.verified_at is None


def test_a_superuser_holds_the_reviewer_role(admin):
    enterprise = EnterpriseFactory(status=Enterprise.Status.PENDING)
    enterprise_verify(enterprise=enterprise, actor=admin)
    enterprise.refresh_from_db()
    assert enterprise.status == Enterprise.Status.VERIFIED


@pytest.mark.parametrize("action", [enterprise_verify, enterprise_suspend], ids=["verify", "suspend"])
@pytest.mark.parametrize("who", ["approver", "finance", "member", "inactive reviewer"])
def test_only_a_reviewer_verifies_or_suspends(action, who, approver, finance):
    # given
    enterprise = EnterpriseFactory(status=Enterprise.Status.PENDING)
    actor = {
        "approver": approver,
        "finance": finance,
        "member": UserFactory(enterprise=enterprise),
        "inactive reviewer": UserFactory(roles=[Role.REVIEWER], is_active=False),
    }[who]
    # when
    with pytest.raises(PermissionDenied) as caught:
        action(enterprise=enterprise, actor=actor)
    # then
    assert caught.value.code == "permission_denied"
    assert caught.value.http_status == 403
    assert "reviewer" in caught.value.detail
    enterprise.refresh_from_db()
    assert (enterprise.status, enterprise.verified_at) == (Enterprise.Status.PENDING, None)


# --- provider_create (its changes: tests/accounts/test_facilities.py) --------------------------------------


def test_a_superuser_lists_a_computing_center(admin):
    provider = provider_create(
        name=" Hangzhou AI Center ", uscc=CODE.lower(), listing="matched_partner", facilities=FACILITIES, actor=admin
    )
    provider.refresh_from_db()
    assert (provider.name, provider.uscc, provider.listing) == ("Hangzhou AI Center", CODE, "matched_partner")
    assert provider.status == Provider.Status.ACTIVE
    assert provider.takes_part


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.APPROVER, Role.FINANCE, Role.AUDITOR])
def test_only_a_superuser_lists_a_computing_center(role):
    actor = UserFactory(roles=[role])
    before = row_counts()
    with pytest.raises(PermissionDenied) as caught:
        provider_create(name="Center", uscc=CODE, listing="planning_layout", facilities=FACILITIES, actor=actor)
    assert caught.value.code == "permission_denied"
    assert row_counts() == before


def test_an_inactive_superuser_lists_nothing():
    actor = UserFactory(is_superuser=True, is_active=False)
    before = row_counts()
    with pytest.raises(PermissionDenied):
        provider_create(name="Center", uscc=CODE, listing="planning_layout", facilities=FACILITIES, actor=actor)
    assert row_counts() == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"listing": "cloud"}, "listing"),
        ({"listing": ""}, "listing"),
        ({"uscc": CODE[:-1] + "4"}, "uscc"),
        ({"name": ""}, "name"),
    ],
)
def test_a_provider_with_bad_input_is_refused(admin, overrides, field):
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        provider_create(
            **{
                "name": "Center",
                "uscc": CODE,
                "listing": "planning_layout",
                "facilities": FACILITIES,
                "actor": admin,
                **overrides,
            }
        )
    assert list(caught.value.errors) == [field]
    assert row_counts() == before


@pytest.mark.parametrize("factory", [EnterpriseFactory, ProviderFactory], ids=["enterprise", "provider"])
def test_a_provider_with_a_taken_credit_code_is_refused(admin, factory):
    factory(uscc=CODE)
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        provider_create(name="Center", uscc=CODE, listing="planning_layout", facilities=FACILITIES, actor=admin)
    assert list(caught.value.errors) == ["uscc"]
    assert row_counts() == before


def test_roles_asked_for_a_new_user_are_granted_only_by_a_second_superuser(admin):
    # when: one superuser creates the user and asks for its roles
    user, request = user_create(username="rita", password=PASSWORD, roles=["reviewer", "finance"], actor=admin)
    # then: the user holds nothing yet
    assert User.objects.get(pk=user.pk).roles == []
    assert (request.action, request.payload["roles"], request.status) == (
        "role_grant",
        ["finance", "reviewer"],
        "pending",
    )
    # and the same superuser may not grant them (found from outside: a second account of one person)
    with pytest.raises(FourEyes):
        approval_request_approve(request_id=request.pk, decider=admin)
    # nor the new user, were it a superuser
    other = UserFactory(is_superuser=True)
    approval_request_approve(request_id=request.pk, decider=other)
    user = User.objects.get(pk=user.pk)
    assert user.roles == ["reviewer", "finance"]
    assert user.has_role(Role.REVIEWER) and not user.has_role(Role.APPROVER)
    assert user.is_staff_member
    assert user.check_password(PASSWORD)


@pytest.mark.parametrize("organisation", ["enterprise", "provider"])
def test_a_superuser_creates_a_member_who_holds_no_role(admin, organisation):
    factory = EnterpriseFactory if organisation == "enterprise" else ProviderFactory
    user, request = user_create(username="max", password=PASSWORD, actor=admin, **{organisation: factory()})
    assert request is None
    user = User.objects.get(pk=user.pk)
    assert getattr(user, f"{organisation}_id") is not None
    assert user.roles == []
    assert not user.is_staff_member


def test_only_a_superuser_creates_users(reviewer):
    before = row_counts()
    with pytest.raises(PermissionDenied) as caught:
        user_create(username="rita", password=PASSWORD, roles=["reviewer"], actor=reviewer)
    assert caught.value.code == "permission_denied"
    assert row_counts() == before


@pytest.mark.parametrize("roles", [["janitor"], ["reviewer", "root"], "reviewer"], ids=["unknown", "one bad", "string"])
def test_unknown_roles_are_refused(admin, roles):
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        user_create(username="rita", password=PASSWORD, roles=roles, actor=admin)
    assert list(caught.value.errors) == ["roles"]
    assert row_counts() == before


@pytest.mark.parametrize("organisation", ["enterprise", "provider"])
def test_a_member_of_an_organisation_holds_no_platform_role(admin, organisation):
    factory = EnterpriseFactory if organisation == "enterprise" else ProviderFactory
    kwargs = {organisation: factory()}
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        user_create(username="max", password=PASSWORD, roles=["approver"], actor=admin, **kwargs)
    assert list(caught.value.errors) == ["roles"]
    assert row_counts() == before


def test_a_user_belongs_to_one_organisation_at_most(admin):
    enterprise, provider = EnterpriseFactory(), ProviderFactory()
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        user_create(username="max", password=PASSWORD, enterprise=enterprise, provider=provider, actor=admin)
    assert list(caught.value.errors) == ["enterprise"]
    assert row_counts() == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"username": "taken"}, "username"), ({"username": ""}, "username"), ({"password": "12345678"}, "password")],
    ids=["taken username", "empty username", "weak password"],
)
def test_user_create_refuses_bad_credentials(admin, overrides, field):
    UserFactory(username="taken")
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        user_create(**{"username": "rita", "password": PASSWORD, "roles": ["reviewer"], "actor": admin, **overrides})
    assert list(caught.value.errors) == [field]
    assert row_counts() == before


# --- User.has_role / roles ----------------------------------------------------------------------


def test_a_superuser_holds_every_role(admin):
    assert admin.roles == ["reviewer", "approver", "finance", "auditor"]
    assert all(admin.has_role(role) for role in Role)
    assert admin.is_staff_member


def test_staff_hold_only_the_roles_of_their_groups():
    user = UserFactory(roles=[Role.APPROVER, Role.AUDITOR])
    assert user.roles == ["approver", "auditor"]
    assert not user.has_role(Role.REVIEWER)


def test_a_user_without_groups_holds_no_role():
    user = UserFactory()
    assert user.roles == []
    assert not user.is_staff_member


@pytest.mark.parametrize("organisation", ["enterprise", "provider"])
def test_members_hold_no_role_even_in_a_role_group(organisation):
    factory = EnterpriseFactory if organisation == "enterprise" else ProviderFactory
    member = UserFactory(roles=[Role.REVIEWER], **{organisation: factory()})
    assert member.groups.filter(name="reviewer").exists()
    assert member.roles == []
    assert not member.has_role(Role.REVIEWER)


@pytest.mark.parametrize("organisation", ["enterprise", "provider"])
def test_a_superuser_may_not_belong_to_an_organisation(organisation):
    from django.db import IntegrityError, transaction

    factory = EnterpriseFactory if organisation == "enterprise" else ProviderFactory
    with pytest.raises(IntegrityError, match="accounts_user_superuser_has_no_organisation"), transaction.atomic():
        UserFactory(is_superuser=True, **{organisation: factory()})


def test_an_inactive_user_holds_no_role():
    assert UserFactory(roles=[Role.REVIEWER], is_active=False).roles == []
    assert UserFactory(is_superuser=True, is_active=False).roles == []


# --- related_party_add ----------------------------------------------------------------------------


def test_a_pair_is_stored_smaller_code_first(reviewer):
    # given
    low, high = sorted((CODE, OTHER_CODE))
    # when
    party = related_party_add(uscc_a=high, uscc_b=low.lower(), note="same parent", actor=reviewer)
    # then
    party.refresh_from_db()
    assert (party.uscc_low, party.uscc_high, party.note, party.created_by_id) == (low, high, "same parent", reviewer.pk)
    assert related_parties(low, high) and related_parties(high, low)
    assert not related_parties(low, THIRD_CODE)


def test_adding_a_pair_again_in_either_order_returns_the_first(reviewer, approver):
    first = related_party_add(uscc_a=CODE, uscc_b=OTHER_CODE, note="first", actor=reviewer)
    again = related_party_add(uscc_a=OTHER_CODE, uscc_b=CODE, note="second", actor=approver)
    assert again.pk == first.pk
    assert RelatedParty.objects.count() == 1
    assert RelatedParty.objects.get().note == "first"


@pytest.mark.parametrize("other", [CODE, CODE.lower(), f" {CODE} "], ids=["same", "lowercase", "spaces"])
def test_a_code_is_not_related_to_itself(reviewer, other):
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        related_party_add(uscc_a=CODE, uscc_b=other, actor=reviewer)
    assert list(caught.value.errors) == ["uscc_b"]
    assert row_counts() == before


@pytest.mark.parametrize(
    ("a", "b", "field"), [(CODE[:-1] + "4", OTHER_CODE, "uscc_a"), (CODE, "", "uscc_b")], ids=["bad a", "empty b"]
)
def test_a_pair_with_a_bad_code_is_refused(reviewer, a, b, field):
    before = row_counts()
    with pytest.raises(ValidationFailed) as caught:
        related_party_add(uscc_a=a, uscc_b=b, actor=reviewer)
    assert list(caught.value.errors) == [field]
    assert row_counts() == before


@pytest.mark.parametrize("who", ["finance", "auditor", "member"])
def test_only_a_reviewer_or_approver_lists_related_parties(who, finance):
    actor = {
        "finance": finance,
        "auditor": UserFactory(roles=[Role.AUDITOR]),
        "member": UserFactory(enterprise=EnterpriseFactory()),
    }[who]
    before = row_counts()
    with pytest.raises(PermissionDenied) as caught:
        related_party_add(uscc_a=CODE, uscc_b=valid_uscc(), actor=actor)
    assert caught.value.code == "permission_denied"
    assert row_counts() == before
