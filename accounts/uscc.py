"""The unified social credit code (统一社会信用代码) of GB 32100-2015.

Eighteen characters from a 31-character alphabet (digits and capital letters without I, O, S, V
and Z). The last is a check character: with weights 3^i mod 31 on the first seventeen, the check
value is 31 - (weighted sum mod 31), where 31 stands for 0.
"""

from typing import Final

from django.core.exceptions import ValidationError

ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
LENGTH: Final = 18


def check_character(first_seventeen: str) -> str:
    """The check character for the first seventeen characters of a code."""
    assert len(first_seventeen) == LENGTH - 1 and all(c in ALPHABET for c in first_seventeen)
    total = sum(ALPHABET.index(c) * w for c, w in zip(first_seventeen, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate_uscc(value: str) -> None:
    """Raise django's ValidationError, saying what is wrong, unless `value` is a valid code."""
    if not isinstance(value, str) or len(value) != LENGTH:
        raise ValidationError("A unified social credit code has exactly 18 characters.", code="uscc_length")
    bad = sorted({c for c in value if c not in ALPHABET})
    if bad:
        raise ValidationError(
            f"A unified social credit code uses digits and capital letters other than I, O, S, V and Z; "
            f"found {''.join(bad)!r}.",
            code="uscc_alphabet",
        )
    expected = check_character(value[:-1])
    if value[-1] != expected:
        raise ValidationError(
            f"The check character is wrong: {value[-1]!r} where GB 32100-2015 gives {expected!r}.",
            code="uscc_check",
        )
