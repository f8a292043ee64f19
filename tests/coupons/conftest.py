"""The cast of the coupon tests: staff in every role, an enterprise and a provider with members,
an open program year with a small pool, and helpers that walk an application to a grant."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from accounts.models import Enterprise, Provider, Role, User
from coupons.models import Application, Grant, ProgramYear
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_review,
    application_submit,
)
from coupons.services.years import program_year_create, program_year_open, year_end
from tests.evidence import checked, contract
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

POOL_FEN = 1_000_000
CAP_FEN = 400_000
YEAR = 2026


@dataclass
class Cast:
    admin: User
    reviewer: User
    approver: User
    approver2: User
    finance: User
    enterprise: Enterprise
    member: User
    provider: Provider
    clerk: User


def make_cast() -> Cast:
    enterprise = EnterpriseFactory()
    provider = ProviderFactory()
    return Cast(
        admin=UserFactory(is_superuser=True, is_staff=True),
        reviewer=UserFactory(roles=[Role.REVIEWER]),
        approver=UserFactory(roles=[Role.APPROVER]),
        approver2=UserFactory(roles=[Role.APPROVER]),
        finance=UserFactory(roles=[Role.FINANCE]),
        enterprise=enterprise,
        member=UserFactory(enterprise=enterprise),
        provider=provider,
        clerk=UserFactory(provider=provider),
    )


def open_year(admin: User, *, pool_fen: int = POOL_FEN, cap_fen: int = CAP_FEN, grace_days: int = 0) -> ProgramYear:
    program_year_create(year=YEAR, actor=admin, pool_fen=pool_fen, default_cap_fen=cap_fen, grace_days=grace_days)
    return program_year_open(year=YEAR, actor=admin)


# A moment inside the test year, in Asia/Shanghai: every service call in these tests passes it.
IN_YEAR = year_end(YEAR - 1).replace(month=6)


def submit(cast: Cast, *, fee_fen: int = 1_000_000, number: str | None = None, **extra: object) -> Application:
    """Submit an application with a signed contract the actor's enterprise uploaded (unless the test
    names its own evidence)."""
    submit.counter += 1  # type: ignore[attr-defined]
    actor: User = extra.pop("actor", cast.member)  # type: ignore[assignment]
    if "contract_document" not in extra:
        extra = {**contract(actor, YEAR), **extra}
    return application_submit(
        actor=actor,
        provider=extra.pop("provider", cast.provider),  # type: ignore[arg-type]
        contract_number=number or f"C-{submit.counter}",  # type: ignore[attr-defined]
        contract_fee_fen=fee_fen,
        compute_source=extra.pop("compute_source", "domestic"),  # type: ignore[arg-type]
        purpose=extra.pop("purpose", "training"),  # type: ignore[arg-type]
        now=IN_YEAR,
        **extra,  # type: ignore[arg-type]
    )


submit.counter = 0  # type: ignore[attr-defined]


def to_reviewed(cast: Cast, application: Application, recommended_fen: int | None = None) -> Application:
    application_confirm(application=application, actor=cast.clerk)
    return application_review(
        application=application,
        actor=cast.reviewer,
        recommended_fen=recommended_fen or application.requested_fen,
        **checked(application),
    )


def grant_for(cast: Cast, *, fee_fen: int = 1_000_000, amount_fen: int | None = None) -> Grant:
    """Submit, confirm, review and approve: the grant of a contract of `fee_fen` at 30%."""
    application = to_reviewed(cast, submit(cast, fee_fen=fee_fen), amount_fen)
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application)


@pytest.fixture
def cast(db: None) -> Cast:
    return make_cast()


@pytest.fixture
def year(cast: Cast) -> ProgramYear:
    return open_year(cast.admin)


@pytest.fixture
def grant_of(cast: Cast, year: ProgramYear) -> Callable[..., Grant]:
    return lambda **kwargs: grant_for(cast, **kwargs)
