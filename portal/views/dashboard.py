"""The pool dashboard (staff) and the public notice (anyone).

The dashboard's figures come from `pool_stats`, the selector behind GET /api/v1/stats/pool/, so
the page and the API cannot disagree; the burn-down comes from the pool account's ledger totals.
"""

import itertools

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.caller import caller
from coupons.models import Program, ProgramYear
from coupons.selectors import (
    enterprises_near_cap,
    pool_available_by_day,
    pool_by_purpose,
    pool_stats,
    public_awards,
    public_awards_csv_lines,
)
from coupons.selectors.scopes import program_default_for, programs_visible_to
from coupons.services.years import PROGRAM_TIME_ZONE, program_default_ensure
from portal import access, charts
from portal.views.common import page_of
from portal.words import WORDS

NEAR_CAP_THRESHOLD_BP = 8000


def _year_chosen(request: HttpRequest, years: list[int]) -> int | None:
    asked = request.GET.get("year", "")
    if asked.isascii() and asked.isdigit() and int(asked) in years:  # "²".isdigit() is True
        return int(asked)
    this_year = timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).year
    if this_year in years:
        return this_year
    return years[0] if years else None


def _program_chosen(request: HttpRequest) -> Program:
    """The program asked for with `?program=`, or the default program (for staff limited to other
    programs, the first of theirs). A program the caller's roles do not reach is not found."""
    user = caller(request)
    asked = request.GET.get("program", "")
    if asked:
        program = programs_visible_to(user).filter(slug=asked).first()
        if program is None and user.program_limit is not None:
            raise Http404(_("No such program."))
        if program is not None:
            return program
    default = program_default_for(user)
    return Program.objects.filter(slug=default).first() or program_default_ensure()


@access.staff
def dashboard(request: HttpRequest) -> HttpResponse:
    program = _program_chosen(request)
    years = list(ProgramYear.objects.filter(program=program).order_by("-year").values_list("year", flat=True))
    year = _year_chosen(request, years)
    if year is None:
        return render(request, "portal/dashboard.html", {"years": years, "year": None, "program": program})
    program_year = ProgramYear.objects.get(program=program, year=year)
    now = timezone.now()
    stats = pool_stats(year=year, now=now, program=program.slug)
    figures = stats.figures
    today = timezone.localtime(now, PROGRAM_TIME_ZONE).date()
    context = {
        "program": program,
        "programs": programs_visible_to(caller(request)).order_by("slug"),
        "years": years,
        "year": year,
        "program_year": program_year,
        "stats": stats,
        "figures": figures,
        "figure_list": [
            ("pool_fen", _("Pool"), figures.pool_fen),
            ("issued_fen", _("Issued"), figures.issued_fen),
            ("held_fen", _("Held"), figures.held_fen),
            ("redeemed_fen", _("Redeemed"), figures.redeemed_fen),
            ("settled_fen", _("Settled"), figures.settled_fen),
            ("lapsed_fen", _("Lapsed"), figures.lapsed_fen),
            ("revoked_fen", _("Revoked"), figures.revoked_fen),
            ("available_fen", _("Available"), figures.available_fen),
        ],
        "used_share_bp": charts.used_share_bp(figures),
        "segments": charts.gauge_segments(figures),
        "gauge": charts.gauge_svg(figures),
        "burndown": charts.burndown_svg(
            year=year,
            pool_fen=figures.pool_fen,
            points=pool_available_by_day(year=year, program=program.slug),
            today=today,
            forecast_on=stats.forecast_exhausted_on,
        ),
        "source_bars": charts.bars_svg(
            [
                (str(WORDS.get(row["compute_source"], row["compute_source"])), row["issued_fen"])
                for row in stats.by_compute_source
            ]
        ),
        "provider_bars": charts.bars_svg([(row["name"], row["issued_fen"]) for row in stats.by_provider[:10]]),
        "near_cap": enterprises_near_cap(program_year=program_year, threshold_bp=NEAR_CAP_THRESHOLD_BP),
        "near_cap_threshold_bp": NEAR_CAP_THRESHOLD_BP,
        "by_purpose": pool_by_purpose(year=program_year),
    }
    return render(request, "portal/dashboard.html", context)


def public_notice(request: HttpRequest) -> HttpResponse:
    """The public notice (公示) of approved awards: open to anyone, no sign-in."""
    years = list(
        ProgramYear.objects.exclude(status=ProgramYear.Status.DRAFT).order_by("-year").values_list("year", flat=True)
    )
    year = _year_chosen(request, years)
    grants = public_awards(year=year) if year is not None else public_awards().none()
    return render(
        request, "portal/public_awards.html", {"years": years, "year": year, "page": page_of(request, grants)}
    )


def public_notice_csv(request: HttpRequest) -> StreamingHttpResponse:
    asked = request.GET.get("year", "")
    year = int(asked) if asked.isascii() and asked.isdigit() and len(asked) == 4 else None
    # A byte-order mark first, so that Excel reads the Chinese names as UTF-8.
    lines = itertools.chain(["\ufeff"], public_awards_csv_lines(year=year))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = f"public-awards-{year}.csv" if year else "public-awards.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
