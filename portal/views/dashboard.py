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
from accounts.models import User
from config.replica import reads_from_replica
from coupons.models import Program, ProgramYear
from coupons.selectors import (
    enterprises_near_cap,
    pool_available_by_day,
    pool_by_purpose,
    pool_stats,
    programs_overview,
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


def _overview(year: int, user: User) -> dict[str, object]:
    """Every program's figures for the calendar year and their totals: the "All programs" table (for
    staff limited to programs, theirs)."""
    limit = user.program_limit
    overview = programs_overview(year=year, programs=None if limit is None else sorted(limit))
    return {
        "overview": overview,
        "overview_figures": OVERVIEW_FIGURES,
        "overview_rows": [
            (row, [(key, getattr(row.figures, key)) for key, _label in OVERVIEW_FIGURES]) for row in overview.programs
        ],
        "overview_totals": [(key, getattr(overview.totals, key)) for key, _label in OVERVIEW_FIGURES],
    }


# The figures the "All programs" table shows, in its column order.
OVERVIEW_FIGURES = [
    ("pool_fen", _("Pool")),
    ("issued_fen", _("Issued")),
    ("redeemed_fen", _("Redeemed")),
    ("settled_fen", _("Settled")),
    ("lapsed_fen", _("Lapsed")),
    ("available_fen", _("Available")),
]


@access.staff
@reads_from_replica
def dashboard(request: HttpRequest) -> HttpResponse:
    """One program's year in full (`?program=`, the default program unless named; `?year=`), and every
    program's figures for that calendar year side by side, with their totals."""
    user = caller(request)
    program = _program_chosen(request)
    programs = programs_visible_to(user).order_by("slug")
    years = list(ProgramYear.objects.filter(program=program).order_by("-year").values_list("year", flat=True))
    year = _year_chosen(request, years)
    if year is None:
        this_year = timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).year
        return render(
            request,
            "portal/dashboard.html",
            {"years": years, "year": None, "program": program, "programs": programs, **_overview(this_year, user)},
        )
    program_year = ProgramYear.objects.get(program=program, year=year)
    now = timezone.now()
    stats = pool_stats(year=year, now=now, program=program.slug)
    figures = stats.figures
    today = timezone.localtime(now, PROGRAM_TIME_ZONE).date()
    context = {
        **_overview(year, user),
        "program": program,
        "programs": programs,
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


def _program_filter(request: HttpRequest) -> Program | None:
    """The program `?program=` names, or None for every program (also for a slug that names none)."""
    asked = request.GET.get("program", "")
    return Program.objects.filter(slug=asked).first() if asked else None


@reads_from_replica
def public_notice(request: HttpRequest) -> HttpResponse:
    """The public notice (公示) of approved awards: open to anyone, no sign-in. Every program's awards,
    each row naming its program, or one program's (`?program=`)."""
    program = _program_filter(request)
    years_shown = ProgramYear.objects.exclude(status=ProgramYear.Status.DRAFT)
    if program is not None:
        years_shown = years_shown.filter(program=program)
    years = list(years_shown.order_by("-year").values_list("year", flat=True).distinct())
    year = _year_chosen(request, years)
    slug = program.slug if program is not None else None
    grants = public_awards(year=year, program=slug) if year is not None else public_awards().none()
    return render(
        request,
        "portal/public_awards.html",
        {
            "years": years,
            "year": year,
            "programs": Program.objects.order_by("slug"),
            "program": program,
            "page": page_of(request, grants),
        },
    )


@reads_from_replica
def public_notice_csv(request: HttpRequest) -> StreamingHttpResponse:
    asked = request.GET.get("year", "")
    year = int(asked) if asked.isascii() and asked.isdigit() and len(asked) == 4 else None
    program = _program_filter(request)
    # A byte-order mark first, so that Excel reads the Chinese names as UTF-8.
    lines = itertools.chain(
        ["\ufeff"], public_awards_csv_lines(year=year, program=program.slug if program is not None else None)
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = f"public-awards-{year}.csv" if year else "public-awards.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
