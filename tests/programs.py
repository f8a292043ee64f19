"""A second program beside the default one, for tests of programs side by side: a district's fund with
the test year open, and grants in it walked through the same steps as the default program's."""

from accounts.models import User
from coupons.models import Grant, ProgramYear
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_review,
    application_submit,
)
from coupons.services.years import program_create, program_year_create, program_year_open
from tests.coupons.conftest import CAP_FEN, POOL_FEN, YEAR, Cast, submit, to_reviewed
from tests.evidence import checked, contract

DISTRICT = "district-test"
DISTRICT_NAME = "测试区算力券"


def district_open(
    admin: User,
    *,
    slug: str = DISTRICT,
    name: str = DISTRICT_NAME,
    pool_fen: int = POOL_FEN,
    cap_fen: int = CAP_FEN,
    year: int = YEAR,
) -> ProgramYear:
    """A district program serving Hangzhou (so the tests' enterprises may apply), its `year` open."""
    program_create(
        actor=admin,
        slug=slug,
        name=name,
        name_en="Test District computing-power coupons",
        authority="测试区人民政府",
        level="district",
        region=["3301"],
    )
    program_year_create(year=year, actor=admin, program=slug, pool_fen=pool_fen, default_cap_fen=cap_fen)
    return program_year_open(year=year, actor=admin, program=slug)


def grant_in(cast: Cast, program: str, *, fee_fen: int = 1_000_000, amount_fen: int | None = None) -> Grant:
    """Submit in `program`, confirm, review and approve: the grant of a contract of `fee_fen` at 30%."""
    application = to_reviewed(cast, submit(cast, fee_fen=fee_fen, program=program), amount_fen)
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application)


def grant_now_in(cast: Cast, program: str, *, fee_fen: int, number: str, year: int) -> Grant:
    """Like `grant_in`, at the real time (for pages that show this year): `year` is the current one."""
    application = application_submit(
        actor=cast.member,
        provider=cast.provider,
        contract_number=number,
        contract_fee_fen=fee_fen,
        compute_source="domestic",
        purpose="training",
        program=program,
        **contract(cast.member, year),
    )
    application_confirm(application=application, actor=cast.clerk)
    application_review(
        application=application, actor=cast.reviewer, recommended_fen=application.eligible_fen, **checked(application)
    )
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application)
