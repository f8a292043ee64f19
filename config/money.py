"""Money for people: fen shown as yuan, and yuan typed by people read back to fen. The one home of
every yuan the service shows (the portal's pages, forms and exports, the admin, the demo's output);
money stays an int of fen until here, and no float touches it: integer division, Decimal and
string work only.
"""

import re
from decimal import Decimal

FEN_PER_YUAN = 100


def yuan_text(fen: int) -> str:
    """Whole fen as yuan with thousands separators and two decimals: 123456 → ¥1,234.56."""
    sign = "−" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def yuan_decimal(fen: int) -> Decimal:
    """Fen as an exact yuan Decimal with two places, for a spreadsheet cell: 123456 → Decimal('1234.56')."""
    return Decimal(fen).scaleb(-2)


def yuan_input_text(fen: int | None) -> str:
    """Fen as the plain yuan a form field shows for editing (no ¥, no grouping): 123456 → 1234.56;
    None → empty. `fen_from_yuan_text` reads it back to the same fen."""
    if fen is None:
        return ""
    return f"{yuan_decimal(fen):.2f}"


# Digit grouping as people write it: one to three digits, then groups of exactly three.
_GROUPED_WHOLE = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
_FULL_WIDTH_COMMA = "\uff0c"  # ，, as a Chinese keyboard types it; read as ",".


def _yuan_digits(text: str) -> str:
    """The text without surrounding spaces and a leading ¥ (or full-width ￥), commas made ASCII."""
    return text.strip().replace(_FULL_WIDTH_COMMA, ",").removeprefix("¥").removeprefix("￥").strip()


def yuan_grouping_misplaced(text: str) -> bool:
    """True when the text has commas that are not thousands separators ('1,0,0,0', '1,50').

    Such text is refused, never read with its commas dropped: 1,50 is not 150 yuan."""
    whole, _, part = _yuan_digits(text).partition(".")
    return "," in part or ("," in whole and not _GROUPED_WHOLE.fullmatch(whole))


def fen_from_yuan_text(text: str) -> int | None:
    """'1,234.5' → 123450; None when the text is not a yuan amount with at most two decimals.

    Parsed as text so that no float touches the value; a leading ¥ is allowed, and commas (ASCII
    or full-width) only as thousands separators, in groups of three from the decimal point.
    """
    if yuan_grouping_misplaced(text):
        return None
    cleaned = _yuan_digits(text).replace(",", "")
    if not cleaned or cleaned.count(".") > 1:
        return None
    whole, _, part = cleaned.partition(".")
    if (
        not whole.isascii()
        or not whole.isdigit()
        or len(part) > 2
        or (part and not (part.isascii() and part.isdigit()))
    ):
        return None
    return int(whole) * FEN_PER_YUAN + int(part.ljust(2, "0") or "0")
