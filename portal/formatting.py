"""Text for people from integer money and rates. No float: integer division and string work only."""

BASIS_POINTS_PER_PERCENT = 100


def yuan_text(fen: int) -> str:
    """Whole fen as yuan with thousands separators and two decimals: 123456 → ¥1,234.56."""
    sign = "−" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def bp_text(rate_bp: int) -> str:
    """Basis points as a percentage with no trailing zeros: 3000 → 30%, 2550 → 25.5%, 5 → 0.05%."""
    whole, part = divmod(abs(rate_bp), BASIS_POINTS_PER_PERCENT)
    sign = "−" if rate_bp < 0 else ""
    return f"{sign}{whole}%" if part == 0 else f"{sign}{whole}.{part:02d}".rstrip("0") + "%"


def fen_from_yuan_text(text: str) -> int | None:
    """'1,234.5' → 123450; None when the text is not a yuan amount with at most two decimals.

    Parsed as text so that no float touches the value; commas and a leading ¥ are allowed.
    """
    cleaned = text.strip().replace(",", "").replace("，", "").removeprefix("¥").removeprefix("￥").strip()
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
    return int(whole) * 100 + int(part.ljust(2, "0") or "0")
