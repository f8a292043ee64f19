"""The application page shows a step the program took by its year-end policy, with no person."""

from collections.abc import Callable
from datetime import timedelta

from django.test import Client

from coupons.services.reset import annual_reset
from coupons.services.years import year_end
from tests.coupons.conftest import YEAR, Cast, submit


def test_the_application_page_says_the_program_carried_it(cast: Cast, year: object, as_user: Callable[..., Client]):
    application = submit(cast, fee_fen=100_000)
    annual_reset(year=YEAR, now=year_end(YEAR) + timedelta(seconds=1))
    page = as_user(cast.member).get(f"/applications/{application.pk}/").content.decode()  # The portal speaks Chinese.
    assert "系统（按年度结转政策）" in page and "结转至下一年度" in page
