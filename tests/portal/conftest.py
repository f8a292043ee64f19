"""Portal test set-up: the coupon tests' cast and open year, and browsers-without-a-browser
(Django test clients) signed in as each member of the cast."""

from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from coupons.models import Grant, ProgramYear
from coupons.services.years import PROGRAM_TIME_ZONE, program_year_create, program_year_open
from tests.coupons.conftest import CAP_FEN, POOL_FEN, Cast, make_cast
from tests.evidence import checked, contract

# The dashboard's figures, as the issue and GET /api/v1/stats/pool/ name them.
FIGURES = (
    "pool_fen",
    "issued_fen",
    "held_fen",
    "redeemed_fen",
    "settled_fen",
    "lapsed_fen",
    "revoked_fen",
    "available_fen",
)


def client_of(user: User | None, *, language: str | None = None) -> Client:
    """A client signed in as `user` (None: nobody), with the language cookie set when asked."""
    client = Client()
    if user is not None:
        client.force_login(user)
    if language is not None:
        client.cookies["django_language"] = language
    return client


@pytest.fixture
def cast(db: None) -> Cast:
    return make_cast()


def this_year() -> int:
    """The portal acts at the real time, so its tests open the real current year (Asia/Shanghai)."""
    return timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).year


@pytest.fixture
def year(cast: Cast) -> ProgramYear:
    """The current year, open, with the coupon tests' small pool (10,000 yuan) and cap (4,000 yuan)."""
    program_year_create(year=this_year(), actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    return program_year_open(year=this_year(), actor=cast.admin)


def walk_to_grant(cast: Cast, *, fee_fen: int = 1_000_000, number: str = "P-1") -> Grant:
    """Submit, confirm, review and approve at the real time: a grant of 30% of `fee_fen`."""
    from coupons.services.applications import (
        application_approve,
        application_confirm,
        application_review,
        application_submit,
    )

    application = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number=number,
        contract_fee_fen=fee_fen,
        compute_source="domestic",
        purpose="training",
        **contract(cast.member, this_year()),
    )
    application_confirm(application=application, actor=cast.clerk)
    application_review(
        application=application, actor=cast.reviewer, recommended_fen=application.eligible_fen, **checked(application)
    )
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application)


@pytest.fixture
def as_user() -> Callable[..., Client]:
    return client_of
