"""A version being added and an application priced on its first day, at once.

A version takes effect after the adder's today, so only a submission whose day has begun since
(around midnight) can race it. The submission reads the year's versions under a key-share lock on
the year, which waits for the adder's row lock: it is priced by the version list as committed,
never by one that changes before it is written."""

import datetime as dt
import threading
import time

import pytest
from django.db import transaction

from accounts.models import listing_day
from accounts.services import enterprise_flags_declare, enterprise_verify
from coupons.policy import REVISION_2025_06
from coupons.services.applications import application_submit
from coupons.services.years import PROGRAM_TIME_ZONE, program_year_create, program_year_open, rule_set_version_add
from tests.concurrency import race
from tests.coupons.conftest import CAP_FEN, POOL_FEN, make_cast
from tests.evidence import contract

pytestmark = pytest.mark.django_db(transaction=True)

HOLD_S = 1.0  # How long the adder keeps its transaction open after writing the version.


def test_a_submission_on_a_new_versions_first_day_waits_for_the_version_being_added():
    today = listing_day()
    tomorrow = today + dt.timedelta(days=1)
    if tomorrow.year != today.year:
        pytest.skip("31 December: no day of the year is after today")
    # given this year open under the 2024 measures, and a small enterprise on record
    cast = make_cast()
    program_year_create(year=today.year, actor=cast.admin, pool_fen=POOL_FEN, default_cap_fen=CAP_FEN)
    program_year_open(year=today.year, actor=cast.admin)
    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, small_or_medium=True)
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"small_or_medium": True})
    evidence = contract(cast.member, today.year)
    written = threading.Event()

    def add() -> None:
        # The revision from tomorrow, its transaction held open a moment after the write.
        with transaction.atomic():
            rule_set_version_add(year=today.year, effective_from=tomorrow, rates=REVISION_2025_06, actor=cast.admin)
            written.set()
            time.sleep(HOLD_S)

    def submit() -> object:
        # Tomorrow has come: an application while the version is written and not yet committed.
        assert written.wait(10)
        return application_submit(
            actor=cast.member,
            provider=cast.provider,
            contract_number="RACE-1",
            contract_fee_fen=333_333,
            compute_source="domestic",
            purpose="training",
            now=dt.datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=PROGRAM_TIME_ZONE),
            **evidence,
        )

    # when
    _, application = race([add, submit])
    # then it was priced by the revision, in force on its day
    assert not isinstance(application, Exception), application
    assert (application.rate_bp, application.rule_set.name) == (5000, "revision-2025-06")
