"""A closed program takes no new year: its year's reset withdraws the applications still open (there
is no next year to carry them into), prepares and opens no next year, and counts as finished."""

import datetime as dt

import pytest
from django.utils import timezone

from coupons import tasks
from coupons.errors import ProgramClosed
from coupons.models import Application, ApplicationEvent, Grant, ProgramYear
from coupons.services.reset import annual_reset
from coupons.services.years import program_close, program_year_create, year_end
from tests.coupons.conftest import YEAR, submit
from tests.programs import DISTRICT, district_open, grant_in

pytestmark = pytest.mark.django_db

AFTER_THE_YEAR = year_end(YEAR) + dt.timedelta(hours=1)


@pytest.fixture
def closed_district(cast, year):
    """A district program with a grant and an application still open, closed mid-year."""
    district_open(cast.admin)
    grant = grant_in(cast, DISTRICT, fee_fen=100_000)
    application = submit(cast, program=DISTRICT)
    program_close(slug=DISTRICT, actor=cast.admin)
    return grant, application


def test_its_reset_withdraws_what_is_open_and_opens_no_next_year(cast, closed_district):
    grant, application = closed_district

    report = annual_reset(year=YEAR, program=DISTRICT, now=AFTER_THE_YEAR)

    assert report.closed and not report.next_year_opened
    assert (report.applications_carried, report.applications_withdrawn) == (0, 1)
    assert not ProgramYear.objects.filter(program_id=DISTRICT, year=YEAR + 1).exists()
    assert ProgramYear.objects.get(program_id=DISTRICT, year=YEAR).status == "closed"
    assert Application.objects.get(pk=application.pk).status == "withdrawn"
    note = ApplicationEvent.objects.filter(application=application, action="withdrawn").get().note
    assert "program district-test is closed" in note
    assert Grant.objects.get(pk=grant.pk).status == "expired"  # Its grants lapse as any year's do.
    # Run again: nothing more to do.
    again = annual_reset(year=YEAR, program=DISTRICT, now=AFTER_THE_YEAR)
    assert (again.closed, again.applications_withdrawn, again.next_year_opened) == (False, 0, False)


def test_the_daily_reset_counts_it_finished_and_the_open_programs_go_on(cast, closed_district, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: AFTER_THE_YEAR)

    first = tasks.annual_reset_due()
    second = tasks.annual_reset_due()

    assert first == [f"{DISTRICT}:{YEAR}", f"hangzhou-compute:{YEAR}"]
    assert DISTRICT not in " ".join(second)  # Finished: not reset again day after day.
    assert ProgramYear.objects.get(program_id="hangzhou-compute", year=YEAR + 1).status == "open"
    assert not ProgramYear.objects.filter(program_id=DISTRICT, year=YEAR + 1).exists()


def test_a_closed_program_prepares_no_year_even_through_the_service(cast, closed_district):
    with pytest.raises(ProgramClosed):
        program_year_create(year=YEAR + 1, actor=cast.admin, program=DISTRICT)
    assert not ProgramYear.objects.filter(program_id=DISTRICT, year=YEAR + 1).exists()


def test_a_close_after_the_carry_of_an_interrupted_reset_withdraws_what_was_carried(cast, year, monkeypatch):
    """Found in review: a reset that carried its open applications into the draft Y+1 and stopped
    (a crash) before opening it, then the program closed: Y+1 never opens, so the next run (which the
    daily job still counts due) withdraws what waits there."""
    from coupons.services import reset

    district_open(cast.admin)
    application = submit(cast, program=DISTRICT)

    def crash(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("killed after the carry")

    monkeypatch.setattr(reset, "_open_next_year", crash)
    with pytest.raises(RuntimeError):
        annual_reset(year=YEAR, program=DISTRICT, now=AFTER_THE_YEAR)
    assert Application.objects.get(pk=application.pk).year.year == YEAR + 1  # Carried into the draft.
    monkeypatch.undo()
    program_close(slug=DISTRICT, actor=cast.admin)
    monkeypatch.setattr(timezone, "now", lambda: AFTER_THE_YEAR)

    assert f"{DISTRICT}:{YEAR}" in tasks.annual_reset_due()

    carried = Application.objects.get(pk=application.pk)
    assert carried.status == "withdrawn" and carried.year.status == "draft"
    assert "was closed before that year opened" in carried.events.get(action="withdrawn").note
    assert f"{DISTRICT}:{YEAR}" not in tasks.annual_reset_due()  # Finished now.
