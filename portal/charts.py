"""The dashboard's charts, drawn as SVG on the server: no chart library, no script, and the same
numbers as the tables beside them (every chart has its figures in a table too, for screen readers).

Money is whole fen throughout; floats appear only as drawing coordinates.
"""

import datetime as dt
import math
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from config.money import yuan_text
from coupons.selectors import PoolFigures
from portal.formatting import bp_text

BASIS_POINTS_WHOLE = 10_000


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    fen: int
    colour: str


def gauge_segments(figures: PoolFigures) -> list[Segment]:
    """The pool split into parts that add up to it exactly:
    pool = redeemed + held + granted-and-unspent + lapsed + available."""
    unspent = figures.issued_fen - figures.revoked_fen - figures.redeemed_fen - figures.held_fen - figures.lapsed_fen
    return [
        Segment("redeemed", _("Redeemed"), figures.redeemed_fen, "#0b4f8a"),
        Segment("held", _("Held"), figures.held_fen, "#bf8700"),
        Segment("unspent", _("Granted, not yet used"), unspent, "#54aeff"),
        Segment("lapsed", _("Lapsed"), figures.lapsed_fen, "#8c959f"),
        Segment("available", _("Available"), figures.available_fen, "#dafbe1"),
    ]


def used_share_bp(figures: PoolFigures) -> int:
    """The share of the pool committed (issued less revoked), in basis points, rounded down."""
    if figures.pool_fen <= 0:
        return 0
    return (figures.issued_fen - figures.revoked_fen) * BASIS_POINTS_WHOLE // figures.pool_fen


def _n(value: float) -> str:
    """A drawing coordinate, to a tenth of a pixel (format_html escapes its arguments to text first)."""
    return f"{value:.1f}"


def _point(cx: float, cy: float, radius: float, fraction: float) -> tuple[float, float]:
    """A point on the upper half circle: fraction 0 is the left end, 1 the right end."""
    angle = math.pi * (1 - fraction)
    return cx + radius * math.cos(angle), cy - radius * math.sin(angle)


def gauge_svg(figures: PoolFigures) -> SafeString:
    """A half-circle gauge: the committed share of the pool in the middle, the parts as arcs."""
    width, height, cx, cy, radius, stroke = 320, 190, 160.0, 165.0, 130.0, 34
    total = max(figures.pool_fen, 1)
    arcs = []
    start_fen = 0
    for segment in gauge_segments(figures):
        if segment.fen <= 0:
            continue
        x1, y1 = _point(cx, cy, radius, start_fen / total)
        start_fen += segment.fen
        x2, y2 = _point(cx, cy, radius, min(start_fen / total, 1.0))
        arcs.append(
            (
                f"M {x1:.2f} {y1:.2f} A {radius} {radius} 0 0 1 {x2:.2f} {y2:.2f}",
                segment.colour,
                stroke,
                f"{segment.label}: {yuan_text(segment.fen)}",
            )
        )
    paths = format_html_join(
        "",
        '<path d="{}" fill="none" stroke="{}" stroke-width="{}"><title>{}</title></path>',
        arcs,
    )
    share = bp_text(used_share_bp(figures))
    label = _("%(share)s of the pool committed") % {"share": share}
    return format_html(
        '<svg class="chart gauge" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">'
        '<path d="M {} {} A {} {} 0 0 1 {} {}" fill="none" stroke="#eaeef2" stroke-width="{}"/>{}'
        '<text x="{}" y="{}" text-anchor="middle" font-size="30" font-weight="700" fill="#1b1f24">{}</text>'
        '<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#4a5360">{}</text></svg>',
        width, height, width, height, label,
        cx - radius, cy, radius, radius, cx + radius, cy, stroke, paths,
        cx, cy - 30, share, cx, cy - 8, _("committed"),
    )  # fmt: skip


def _year_fraction(day: dt.date, year: int, *, end_of_day: bool = True) -> float:
    start = dt.date(year, 1, 1)
    days = (dt.date(year + 1, 1, 1) - start).days
    return min(max((day - start).days + (1 if end_of_day else 0), 0), days) / days


def burndown_svg(
    *, year: int, pool_fen: int, points: list[tuple[dt.date, int]], today: dt.date, forecast_on: dt.date | None
) -> SafeString:
    """What the pool had available at the end of each day, from the ledger, and the forecast from
    today to the day it runs out (dashed) at the average pace so far.

    The line starts at the whole pool on the day it opened and steps at the start of each day with
    a change to that day's closing level (a day before the year, when it opened early, is drawn at
    the year's start)."""
    width, height, left, right, top, bottom = 640, 260, 96, 20, 15, 35
    plot_w, plot_h = width - left - right, height - top - bottom
    top_fen = max(pool_fen, max((fen for _, fen in points), default=0), 1)

    def xy(day: dt.date, fen: int, *, end_of_day: bool = True) -> tuple[float, float]:
        return left + plot_w * _year_fraction(day, year, end_of_day=end_of_day), top + plot_h * (1 - fen / top_fen)

    line: list[tuple[float, float]] = []
    if points:
        line.append(xy(points[0][0], pool_fen, end_of_day=False))
    for day, fen in points:
        x, y = xy(day, fen, end_of_day=False)
        line += [(x, line[-1][1]), (x, y)]
    if points:
        last_day = max(today, points[-1][0]) if today.year == year else dt.date(year, 12, 31)
        line.append((xy(last_day, points[-1][1])[0], line[-1][1]))
    polyline = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
    forecast = ""
    if points and today.year == year:
        x1, y1 = xy(today, points[-1][1])
        end = forecast_on
        if end is not None:
            x2, y2 = xy(end, 0)
            forecast = format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#a40e26" stroke-width="2" '
                'stroke-dasharray="6 4"><title>{}</title></line>'
                '<circle cx="{}" cy="{}" r="4" fill="#a40e26"/>',
                _n(x1), _n(y1), _n(x2), _n(y2),
                _("Forecast: runs out on %(day)s") % {"day": end.isoformat()},
                _n(x2), _n(y2),
            )  # fmt: skip
    months = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="#4a5360">{}</text>',
        ((_n(xy(dt.date(year, month, 15), 0)[0]), height - 12, str(month)) for month in range(1, 13)),
    )
    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#eaeef2"/>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#4a5360">{}</text>',
        (
            (left, width - right, _n(y), _n(y), left - 6, _n(y + 4), yuan_text(top_fen * quarter // 4).split(".")[0])
            for quarter in range(5)
            for y in [top + plot_h * (1 - quarter / 4)]
        ),
    )
    label = _("Pool available over %(year)s") % {"year": year}
    return format_html(
        '<svg class="chart burndown" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">{}{}'
        '<polyline points="{}" fill="none" stroke="#0b4f8a" stroke-width="2.5"/>{}</svg>',
        width, height, width, height, label, grid, months, polyline, forecast,
    )  # fmt: skip


def bars_svg(rows: list[tuple[str, int]], *, colour: str = "#0b4f8a") -> SafeString:
    """Horizontal bars, one per (label, fen), scaled to the largest."""
    if not rows:
        return SafeString("")
    bar_h, gap, label_w, width = 18, 8, 170, 560
    largest = max(max(fen for _, fen in rows), 1)
    height = len(rows) * (bar_h + gap)
    bars = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="12" text-anchor="end" fill="#1b1f24">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>'
        '<text x="{}" y="{}" font-size="11" fill="#4a5360">{}</text>',
        (
            (
                label_w - 6,
                index * (bar_h + gap) + 13,
                label[:24],
                label_w,
                index * (bar_h + gap),
                _n((width - label_w - 110) * fen / largest),
                bar_h,
                colour,
                f"{label}: {yuan_text(fen)}",
                _n(label_w + (width - label_w - 110) * fen / largest + 4),
                index * (bar_h + gap) + 13,
                yuan_text(fen),
            )
            for index, (label, fen) in enumerate(rows)
        ),
    )
    return format_html(
        '<svg class="chart bars" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-hidden="true">{}</svg>',
        width, height, width, height, bars,
    )  # fmt: skip
