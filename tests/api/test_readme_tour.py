"""The README's API tour is run, command for command, against a live server with the demo data."""

import os
import re
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from coupons.models import DEFAULT_PROGRAM, Grant, Program
from coupons.selectors import program_year_figures, programs_overview
from coupons.services.years import program_year_of

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR = re.compile(r"<!-- api-tour:start -->\s*```bash\n(.*?)```\s*<!-- api-tour:end -->", re.DOTALL)


def tour_script() -> str:
    match = TOUR.search(README.read_text())
    assert match, "README.md has no api-tour block"
    return match.group(1)


@pytest.mark.django_db(transaction=True)
def test_the_readme_api_tour_runs_against_a_live_server(live_server):
    # given: what `make run` serves
    assert shutil.which("curl"), "the tour uses curl"
    call_command("seed_demo", stdout=StringIO())

    # when: every command of the tour, stopping at the first failure (curl -f fails on 4xx/5xx)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", tour_script()],
        env={**os.environ, "BASE": live_server.url},
        cwd=README.parent,  # The tour uploads the sample documents by their path in the repository.
        capture_output=True,
        text=True,
        timeout=180,
    )

    # then: each step printed what it changed, and the pool figure is the ledger's
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    printed = result.stdout.split()
    from django.utils import timezone

    year = program_year_of(timezone.now())
    assert printed == [
        "verified",
        "confirmed",
        "reviewed",
        "captured",
        "confirmed",
        "paid",
        str(program_year_figures(year=year).available_fen),
        # Every fund, this year's totals across them, and the grants of the default program.
        str(Program.objects.count()),
        str(programs_overview(year=year).totals.issued_fen),
        str(Grant.objects.filter(year__program_id=DEFAULT_PROGRAM).count()),
    ]
