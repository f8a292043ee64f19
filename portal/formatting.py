"""Text for people from integer rates. No float: integer division and string work only. Money has
its own home, config/money.py."""

BASIS_POINTS_PER_PERCENT = 100


def bp_text(rate_bp: int) -> str:
    """Basis points as a percentage with no trailing zeros: 3000 → 30%, 2550 → 25.5%, 5 → 0.05%."""
    whole, part = divmod(abs(rate_bp), BASIS_POINTS_PER_PERCENT)
    sign = "−" if rate_bp < 0 else ""
    return f"{sign}{whole}%" if part == 0 else f"{sign}{whole}.{part:02d}".rstrip("0") + "%"
