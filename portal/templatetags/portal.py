"""Formatting for people: yuan from fen, percentages from basis points.

Money stays an int of fen until here; the text is built from integer division, never a float.
"""

from django import template

from config.money import yuan_text
from portal.formatting import bp_text

register = template.Library()


@register.filter
def yuan(fen: int | None) -> str:
    """12345678901 → ¥123,456,789.01 (negative: −¥1.00); None → an em dash."""
    return "—" if fen is None else yuan_text(fen)


@register.filter
def percent_bp(rate_bp: int | None) -> str:
    """3000 → 30%, 2550 → 25.5%, 1 → 0.01%."""
    return "—" if rate_bp is None else bp_text(rate_bp)


@register.filter
def status_label(value: str, kind: str = "") -> str:
    """The translated word for a status, purpose, compute source or listing (see portal.words);
    `kind` picks the object's own word where it differs (`status_label:"enterprise"`)."""
    from portal.words import KIND_WORDS, WORDS

    word = KIND_WORDS.get(kind, {}).get(value) or WORDS.get(value)
    return str(word) if word else value


@register.filter
def approval_action_label(action: str) -> str:
    """The translated name of an approval request's action (portal.words.APPROVAL_ACTION_WORDS)."""
    from portal.words import APPROVAL_ACTION_WORDS

    word = APPROVAL_ACTION_WORDS.get(action)
    return str(word) if word else action


@register.filter
def audit_check_label(name: str) -> str:
    from portal.words import AUDIT_CHECK_WORDS

    word = AUDIT_CHECK_WORDS.get(name)
    return str(word) if word else name


@register.filter
def year_status_label(value: str) -> str:
    from portal.words import YEAR_STATUS_WORDS

    word = YEAR_STATUS_WORDS.get(value)
    return str(word) if word else value


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: object) -> str:
    """The current query string with some parameters replaced (for pagination and filters)."""
    query = context["request"].GET.copy()
    for name, value in changes.items():
        if value in (None, ""):
            query.pop(name, None)
        else:
            query[name] = str(value)
    return "?" + query.urlencode() if query else "?"


@register.filter
def sub(value: int, other: int) -> int:
    """value − other, for amounts in fen (a bill less its coupon)."""
    return int(value) - int(other)
