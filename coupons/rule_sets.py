"""Reads of a program year's rule-set versions: which rate policy was in force on a day.

A year's first version is its own `rule_set`, in force from 1 January; later versions are
`RuleSetVersion` rows, each in force from its `effective_from` to the day before the next one's.
A year made before versions existed (or by code that wrote only the year) has no rows: its own rule
set is then its only version.
"""

import datetime as dt
from dataclasses import dataclass

from coupons.models import ProgramYear, RateRuleSet, RuleSetVersion


@dataclass(frozen=True)
class Version:
    effective_from: dt.date
    rule_set: RateRuleSet


def year_first_day(year: int) -> dt.date:
    return dt.date(year, 1, 1)


def rule_set_versions(program_year: ProgramYear) -> list[Version]:
    """The year's versions in date order, the first from 1 January."""
    rows = [
        Version(row.effective_from, row.rule_set)
        for row in RuleSetVersion.objects.filter(program_year_id=program_year.pk)
        .select_related("rule_set")
        .order_by("effective_from")
    ]
    first_day = year_first_day(program_year.year)
    if not rows or rows[0].effective_from != first_day:
        rows.insert(0, Version(first_day, program_year.rule_set))
    return rows


def rule_set_in_force(program_year: ProgramYear, day: dt.date) -> RateRuleSet:
    """The version in force on `day`: the last that took effect on or before it. A day before the
    year (a contract signed the year before, where the year counts such contracts) takes the first."""
    in_force = program_year.rule_set
    for version in rule_set_versions(program_year):
        if version.effective_from > day:
            break
        in_force = version.rule_set
    return in_force
