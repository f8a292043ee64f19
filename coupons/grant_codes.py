"""Human-readable grant codes with a check character, e.g. HZ26-0000123-K.

The check character is Luhn mod 31 over the unified-social-credit-code alphabet (no I, O, S, V,
Z), so a mistyped character or two swapped neighbours are caught when a code is read back.
"""

from typing import Final

from accounts.uscc import ALPHABET

PREFIX: Final = "HZ"
_BASE: Final = len(ALPHABET)


def _luhn_check(payload: str) -> str:
    total = 0
    factor = 2
    for character in reversed(payload):
        addend = factor * ALPHABET.index(character)
        total += addend // _BASE + addend % _BASE
        factor = 1 if factor == 2 else 2
    return ALPHABET[(_BASE - total % _BASE) % _BASE]


def grant_code(*, year: int, number: int) -> str:
    """The code for grant `number` (the application id) of `year`."""
    payload = f"{year % 100:02d}{number:07d}"
    return f"{PREFIX}{payload[:2]}-{payload[2:]}-{_luhn_check(payload)}"


def grant_code_valid(code: str) -> bool:
    """Whether `code` is well formed and its check character matches."""
    parts = code.split("-")
    if len(parts) != 3 or not parts[0].startswith(PREFIX) or len(parts[2]) != 1:
        return False
    payload = parts[0][len(PREFIX) :] + parts[1]
    if not payload.isdigit():
        return False
    return _luhn_check(payload) == parts[2]
