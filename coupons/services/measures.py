"""The seed's other money measures as programs: the model filing reward and the financing interest
subsidy (docs/programs.md "Other measures as programs").

Each is data in `coupons/policy.py` (`MEASURE_PROGRAMS`): the program (its basis and whether an
enterprise receives it once), its years' policy (the per-enterprise cap, which contracts count) and
its rate rules. `measure_program_create` writes one of them, and a year of it, as a superuser.
"""

from typing import Any

from django.db import transaction

from accounts.models import User
from accounts.roles import require_superuser
from config.errors import AlreadyExists, ValidationFailed
from coupons.models import REGION_DIVISION_PREFIXES_DEFAULT, Program, ProgramYear, RateRuleSet
from coupons.policy import MEASURE_PROGRAMS
from coupons.services.years import program_year_create, program_year_open, rule_set_create


def _measure(slug: object) -> dict[str, Any]:
    if not isinstance(slug, str) or slug not in MEASURE_PROGRAMS:
        raise ValidationFailed(f"measure is one of {', '.join(MEASURE_PROGRAMS)}.", field="measure")
    return MEASURE_PROGRAMS[slug]


def _rule_set(rates: dict[str, Any]) -> RateRuleSet:
    """The measure's rule set: written by its first year, the same row for the next (rule sets never
    change, and `rule_set_create` answers the set of that name when its rules are the same)."""
    return rule_set_create(
        name=rates["name"], ceiling_bp=rates["ceiling_bp"], rules=rates["rules"], description=rates["description"]
    )


def measure_program_create(
    *, actor: User, measure: str, year: int, pool_fen: int, open_year: bool = False
) -> ProgramYear:
    """A superuser sets up `measure` (a slug of `MEASURE_PROGRAMS`) as a program, if it is not one
    yet, and prepares its `year` with `pool_fen` and the measure's policy; `open_year` opens it too.
    A year that exists is refused (409 `invalid_state`), like any program year created twice."""
    require_superuser(actor)
    data = _measure(measure)
    terms = data["program"]
    with transaction.atomic():
        program, created = Program.objects.get_or_create(
            slug=terms["slug"],
            defaults={
                "name": terms["name"],
                "name_en": terms["name_en"],
                "authority": terms["authority"],
                "level": terms["level"],
                "region": list(REGION_DIVISION_PREFIXES_DEFAULT),
                "redemption_mode": terms["redemption_mode"],
                "basis": terms["basis"],
                "once_per_enterprise": terms["once_per_enterprise"],
            },
        )
        if not created and (program.basis, program.once_per_enterprise) != (
            terms["basis"],
            terms["once_per_enterprise"],
        ):
            raise AlreadyExists(f"Program {program.slug} exists with another basis or one-time rule.", field="measure")
        program_year = program_year_create(
            year=year,
            actor=actor,
            program=program.slug,
            pool_fen=pool_fen,
            rule_set=_rule_set(data["rates"]),
            **data["year"],
        )
        if open_year:
            program_year = program_year_open(year=year, actor=actor, program=program.slug)
        return program_year
