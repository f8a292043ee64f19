"""Subsidy-rate policy as data: rule sets, their validation, and the rate they give.

A rule set is an ordered list of rules. Each rule has a `label`, a `rate_bp` and a `when`: a
condition on the application and its enterprise. Every key of `when` is optional; a rule with an
empty `when` matches everything. The first rule that matches gives the rate, clamped to the set's
`ceiling_bp`. No rule matching gives no subsidy.

`when` keys:
- `purposes`: list of purpose words; the application's purpose is one of them;
- `compute_sources`: list of compute-source words;
- `has_registered_model`, `foundation_model_developer`, `small_or_medium`: the enterprise's flag
  equals the given boolean;
- `contracted_total_fen_max`: the enterprise's contract fees in the year, this contract included,
  total at most this many fen;
- `project_investment_fen_min`: the project's total investment (an input of a `loan_interest`
  program's application) is at least this many fen.

A rule may also carry `loan_rate_points_max_bp`: the subsidy is at most that many basis points of
the loan's annual rate, so the rate on the interest is min(rate_bp, floor(points × 10000 /
loan_rate_bp)) (1.5 points of a 4.5% loan is a third of its interest: 3333). A rule with it
matches only an application that gives its loan rate.

The 2024 municipal measures are `MEASURES_2024`; the June 2025 revision is `REVISION_2025_06`,
which needed no code, only data. A program year may hold several versions, each from its own day
(`coupons.models.RuleSetVersion`): Hangzhou's 2025 is `HANGZHOU_2025_RULE_SETS`. The seed's other
money measures are programs of their own, as data too: `MODEL_FILING_REWARD` and
`FINANCING_INTEREST_SUBSIDY` (`MEASURE_PROGRAMS`).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from config.errors import ValidationFailed
from coupons.models import BASIS_POINTS_WHOLE, ComputeSource, Purpose

RULES_COUNT_MAX: Final = 50
LABEL_LENGTH_MAX: Final = 200
_FLAG_KEYS: Final = ("has_registered_model", "foundation_model_developer", "small_or_medium")
_WHEN_KEYS: Final = frozenset(
    {"purposes", "compute_sources", "contracted_total_fen_max", "project_investment_fen_min", *_FLAG_KEYS}
)
_RULE_KEYS: Final = frozenset({"label", "rate_bp", "when"})
_RULE_KEYS_OPTIONAL: Final = frozenset({"loan_rate_points_max_bp"})

MODEL_SERVICE_PURPOSES: Final = [Purpose.MAAS.value, Purpose.AGENT.value, Purpose.APPLICATION.value]

# 依托经备案的生成式多模态基础大模型进行模型服务（MaaS）、智能体开发等应用 30%; 国产算力 30%; 其他 20%.
MEASURES_2024: Final[dict[str, Any]] = {
    "name": "measures-2024",
    "description": "Several Measures to Support the High-Quality Development of the Whole AI Industry Chain (2024).",
    "ceiling_bp": 3000,
    "rules": [
        {
            "label": "Model services on a registered foundation model (MaaS, agents, applications)",
            "rate_bp": 3000,
            "when": {"purposes": MODEL_SERVICE_PURPOSES, "has_registered_model": True},
        },
        {"label": "Domestic compute", "rate_bp": 3000, "when": {"compute_sources": [ComputeSource.DOMESTIC.value]}},
        {"label": "Other compute", "rate_bp": 2000, "when": {}},
    ],
}

# June 2025: small and medium enterprises whose compute contracts total at most 500,000 yuan in
# the year may get up to 50%.
REVISION_2025_06: Final[dict[str, Any]] = {
    "name": "revision-2025-06",
    "description": "June 2025 revision: up to 50% for small and medium enterprises contracting at most 500,000 yuan.",
    "ceiling_bp": 5000,
    "rules": [
        {
            "label": "Small or medium enterprise, contracts at most 500,000 yuan in the year",
            "rate_bp": 5000,
            "when": {"small_or_medium": True, "contracted_total_fen_max": 50_000_000},
        },
        *MEASURES_2024["rules"],
    ],
}


# The seed's other money measures, each a program of its own (docs/programs.md "Other measures as
# programs"); `coupons.services.measures.measure_program_create` writes one, with a year.

# 模型备案奖励: a one-time reward to an enterprise whose model completed filing (备案), of its evaluation
# and related expenses, at most 500,000 yuan; the evidence is the filing certificate. The rule asks
# for a verified filing named on the application, and the year for its certificate.
MODEL_FILING_REWARD_CAP_FEN: Final = 50_000_000  # 500,000 yuan, once per enterprise.
MODEL_FILING_REWARD: Final[dict[str, Any]] = {
    "program": {
        "slug": "model-filing-reward",
        "name": "模型备案奖励",
        "name_en": "Model filing reward",
        "authority": "杭州市经济和信息化局 (Hangzhou Municipal Bureau of Economy and Information Technology)",
        "level": "city",
        "basis": "evaluation_costs",
        "once_per_enterprise": True,
        "redemption_mode": "enterprise_reimbursement",
    },
    "year": {
        "default_cap_fen": MODEL_FILING_REWARD_CAP_FEN,
        "relaxed_cap_ceiling_fen": MODEL_FILING_REWARD_CAP_FEN,
        "filing_certificate_required": True,
        # The evaluation may precede the filing's year; its contract is any within two years.
        "contract_signed_within_year": False,
        "contract_term_months_max": 24,
    },
    "rates": {
        "name": "model-filing-reward-2024",
        "description": "Model filing reward: the evaluation and related expenses of a filed model, "
        "at most 500,000 yuan once per enterprise.",
        "ceiling_bp": BASIS_POINTS_WHOLE,
        "rules": [
            {
                "label": "Evaluation and related expenses of a filed model",
                "rate_bp": BASIS_POINTS_WHOLE,
                "when": {"has_registered_model": True},
            },
        ],
    },
}

# 贷款贴息: interest paid on a qualifying loan, at most 1.5 percentage points of the loan's rate and
# at most 50% of the interest paid, at most 10 million yuan per enterprise a year, for projects of at
# least 50 million yuan of total investment.
FINANCING_INTEREST_SUBSIDY_CAP_FEN: Final = 1_000_000_000  # 10 million yuan per enterprise a year.
PROJECT_INVESTMENT_FEN_MIN: Final = 5_000_000_000  # 50 million yuan.
FINANCING_INTEREST_SUBSIDY: Final[dict[str, Any]] = {
    "program": {
        "slug": "financing-interest",
        "name": "贷款贴息",
        "name_en": "Financing interest subsidy",
        "authority": "杭州市经济和信息化局 (Hangzhou Municipal Bureau of Economy and Information Technology)",
        "level": "city",
        "basis": "loan_interest",
        "once_per_enterprise": False,
        "redemption_mode": "enterprise_reimbursement",
    },
    "year": {
        "default_cap_fen": FINANCING_INTEREST_SUBSIDY_CAP_FEN,
        "relaxed_cap_ceiling_fen": FINANCING_INTEREST_SUBSIDY_CAP_FEN,
        # A loan is signed before the year whose interest it subsidises, and runs for years.
        "contract_signed_within_year": False,
        "contract_term_months_max": 120,
    },
    "rates": {
        "name": "financing-interest-2024",
        "description": "Financing interest subsidy: at most 1.5 points of the loan rate and 50% of the "
        "interest paid, projects of at least 50 million yuan.",
        "ceiling_bp": 5000,
        "rules": [
            {
                "label": "Interest on a loan for a project of at least 50 million yuan",
                "rate_bp": 5000,
                "loan_rate_points_max_bp": 150,
                "when": {"project_investment_fen_min": PROJECT_INVESTMENT_FEN_MIN},
            },
        ],
    },
}

MEASURE_PROGRAMS: Final[dict[str, dict[str, Any]]] = {
    MODEL_FILING_REWARD["program"]["slug"]: MODEL_FILING_REWARD,
    FINANCING_INTEREST_SUBSIDY["program"]["slug"]: FINANCING_INTEREST_SUBSIDY,
}

# The revision took effect on 13 June 2025: applications priced on a day before it got the 2024 rates.
REVISION_2025_06_EFFECTIVE_FROM: Final = dt.date(2025, 6, 13)
HANGZHOU_2025_RULE_SETS: Final[list[dict[str, Any]]] = [
    {"effective_from": dt.date(2025, 1, 1), "rates": MEASURES_2024},
    {"effective_from": REVISION_2025_06_EFFECTIVE_FROM, "rates": REVISION_2025_06},
]


@dataclass(frozen=True, kw_only=True)
class ApplicationFacts:
    """What a rule may look at."""

    purpose: str
    compute_source: str
    has_registered_model: bool
    foundation_model_developer: bool
    small_or_medium: bool
    contracted_total_fen: int
    # The inputs of a loan_interest program's application; None elsewhere.
    loan_rate_bp: int | None = None
    project_investment_fen: int | None = None


@dataclass(frozen=True)
class Rate:
    rate_bp: int
    label: str


def rules_validate(*, rules: object, ceiling_bp: object) -> None:
    """Raise ValidationFailed saying what is wrong, unless `rules` is a well-formed rule list."""
    errors: list[str] = []
    if not isinstance(ceiling_bp, int) or isinstance(ceiling_bp, bool) or not 0 < ceiling_bp <= BASIS_POINTS_WHOLE:
        errors.append(f"ceiling_bp must be a whole number of basis points from 1 to {BASIS_POINTS_WHOLE}.")
    if not isinstance(rules, list) or not 0 < len(rules) <= RULES_COUNT_MAX:
        raise ValidationFailed(f"rules must be a list of 1 to {RULES_COUNT_MAX} rules.", field="rules")
    for index, rule in enumerate(rules):
        where = f"rule {index + 1}"
        if not isinstance(rule, dict) or not _RULE_KEYS <= set(rule) <= _RULE_KEYS | _RULE_KEYS_OPTIONAL:
            # The message predates the optional key, which the docs name (docs/policy.md).
            errors.append(f"{where} must have exactly label, rate_bp and when.")
            continue
        if "loan_rate_points_max_bp" in rule:
            points = rule["loan_rate_points_max_bp"]
            if not isinstance(points, int) or isinstance(points, bool) or not 0 < points <= BASIS_POINTS_WHOLE:
                errors.append(
                    f"{where}: loan_rate_points_max_bp must be a whole number of basis points from 1 to "
                    f"{BASIS_POINTS_WHOLE}."
                )
        label, rate_bp, when = rule["label"], rule["rate_bp"], rule["when"]
        if not isinstance(label, str) or not 0 < len(label) <= LABEL_LENGTH_MAX:
            errors.append(f"{where}: label must be 1 to {LABEL_LENGTH_MAX} characters.")
        if not isinstance(rate_bp, int) or isinstance(rate_bp, bool) or not 0 <= rate_bp <= BASIS_POINTS_WHOLE:
            errors.append(f"{where}: rate_bp must be a whole number from 0 to {BASIS_POINTS_WHOLE}.")
        if not isinstance(when, dict):
            errors.append(f"{where}: when must be an object.")
            continue
        unknown = set(when) - _WHEN_KEYS
        if unknown:
            errors.append(f"{where}: unknown condition {', '.join(sorted(unknown))}.")
        for key, words in (("purposes", Purpose.values), ("compute_sources", ComputeSource.values)):
            if key in when:
                value = when[key]
                if not isinstance(value, list) or not value or any(v not in words for v in value):
                    errors.append(f"{where}: {key} must be a non-empty list of {', '.join(words)}.")
        for key in _FLAG_KEYS:
            if key in when and not isinstance(when[key], bool):
                errors.append(f"{where}: {key} must be true or false.")
        for key in ("contracted_total_fen_max", "project_investment_fen_min"):
            if key in when:
                value = when[key]
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    errors.append(f"{where}: {key} must be a positive whole number of fen.")
    if errors:
        raise ValidationFailed({"rules": errors})


def _matches(when: dict[str, Any], facts: ApplicationFacts) -> bool:
    if "purposes" in when and facts.purpose not in when["purposes"]:
        return False
    if "compute_sources" in when and facts.compute_source not in when["compute_sources"]:
        return False
    if any(key in when and getattr(facts, key) != when[key] for key in _FLAG_KEYS):
        return False
    if "project_investment_fen_min" in when and (
        facts.project_investment_fen is None or facts.project_investment_fen < when["project_investment_fen_min"]
    ):
        return False
    return not ("contracted_total_fen_max" in when and facts.contracted_total_fen > when["contracted_total_fen_max"])


def loan_points_rate_bp(*, points_bp: int, loan_rate_bp: int) -> int:
    """The share of a loan's interest that `points_bp` basis points of its annual rate make, in basis
    points, rounded down (in the fund's favour): 150 points of a 450-point loan is 3333."""
    assert points_bp > 0 and loan_rate_bp > 0
    return min(points_bp * BASIS_POINTS_WHOLE // loan_rate_bp, BASIS_POINTS_WHOLE)


def rate_for(*, rules: list[dict[str, Any]], ceiling_bp: int, facts: ApplicationFacts) -> Rate:
    """The rate of the first matching rule, clamped to the ceiling (and, for a rule with
    `loan_rate_points_max_bp`, to those points of the loan rate); 0 when none matches."""
    for rule in rules:
        points_bp = rule.get("loan_rate_points_max_bp")
        if points_bp is not None and not facts.loan_rate_bp:
            continue  # Without a loan rate, a rule capped in points of it cannot price.
        if _matches(rule["when"], facts):
            rate_bp = min(rule["rate_bp"], ceiling_bp)
            if points_bp is not None:
                assert facts.loan_rate_bp is not None
                rate_bp = min(rate_bp, loan_points_rate_bp(points_bp=points_bp, loan_rate_bp=facts.loan_rate_bp))
            return Rate(rate_bp, rule["label"])
    return Rate(0, "no rule matched")


def subsidy_fen(amount_fen: int, rate_bp: int) -> int:
    """floor(amount × rate / 10000): rounding always favours the fund."""
    assert amount_fen >= 0 and 0 <= rate_bp <= BASIS_POINTS_WHOLE
    return amount_fen * rate_bp // BASIS_POINTS_WHOLE


# Every dash a number may be written with, as the ASCII hyphen-minus: Unicode's dash punctuation
# (category Pd, Unicode 15) and the minus signs. tests/coupons/test_good_standing.py checks this
# list against the running Python's Unicode database.
DASHES: Final = (
    "\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d"
    "\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead"  # Dash punctuation.
    "\u2212\u2796\u02d7"  # The minus sign, the heavy minus sign, the modifier letter minus sign.
)
_DASHES_FOLDED: Final = str.maketrans(dict.fromkeys(DASHES, "-"))


def reference_normalise(text: str) -> str:
    """Contract and bill numbers as stored and compared: NFKC (full-width forms become ASCII),
    every dash and minus sign the ASCII hyphen (a word processor turns `HZ-001` into `HZ‐001` or
    `HZ–001`, which look the same to a reviewer), no white space at all (`HZ- 001` and `HZ 001` are
    `HZ-001` and `HZ001`), upper-cased, so `hz-001`, `HZ‐001`, `HZ – 001` and `ＨＺ-００１` are one
    contract. What is left must pass `reference_refused`."""
    import unicodedata

    # NFKC makes every space separator (no-break, ideographic, thin) the ASCII space; other white
    # space (a line break, a tab) inside a number is left for `reference_refused` to refuse.
    return unicodedata.normalize("NFKC", text).translate(_DASHES_FOLDED).strip().replace(" ", "").upper()


# What a contract or bill number may hold once folded, besides ASCII letters, digits and punctuation
# (every visible ASCII character): CJK ideographs (a Chinese document number such as
# `杭科〔2026〕12号`) and these brackets.
REFERENCE_BRACKETS: Final = "〔〕【】"


def _reference_character_allowed(character: str) -> bool:
    return (
        "!" <= character <= "~"  # Visible ASCII: letters, digits, punctuation (no space: folded away).
        or character in REFERENCE_BRACKETS
        or "\u4e00" <= character <= "\u9fff"  # CJK Unified Ideographs.
        or "\u3400" <= character <= "\u4dbf"  # Extension A.
        or character == "\u3007"  # 〇, the ideographic zero of written dates.
    )


def reference_refused(folded: str) -> str | None:
    """The first character of a folded contract or bill number that no number may hold, or None.

    Everything outside visible ASCII, CJK ideographs and `REFERENCE_BRACKETS` is refused,
    because it would make a second number that a reviewer cannot tell from the first. Found from
    outside: `HZ-001` followed by a variation selector (U+FE0F), a Hangul filler (U+3164) or a Braille
    blank (U+2800), or spelt with Cyrillic `Н` or Greek `Ζ`, or with a combining accent, each passed as
    a new contract, and one contract of ¥1,000,000 was granted three times."""
    for character in folded:
        if not _reference_character_allowed(character):
            return character
    return None


def reference_refusal_text(field: str, character: str) -> str:
    """The 400's words for a refused character: which one, by code point and name."""
    import unicodedata

    name = unicodedata.name(character, "unnamed")
    return (
        f"{field} may hold only ASCII letters, digits and punctuation, Chinese characters and {REFERENCE_BRACKETS}; "
        f"U+{ord(character):04X} ({name}) is not one of them."
    )
