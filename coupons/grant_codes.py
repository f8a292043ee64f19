"""Human-readable grant codes with a check character, e.g. HZ26-0000123-K.

The check character is Luhn mod 31 over the unified-social-credit-code alphabet (no I, O, S, V,
Z), so a mistyped character or two swapped neighbours are caught when a code is read back.
"""

import re
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


_FORM: Final = re.compile(rf"^{PREFIX}([0-9]{{2}})-([0-9]{{7}})-([{ALPHABET}])$")


def grant_code_valid(code: str) -> bool:
    """Whether `code` has exactly the form HZyy-nnnnnnn-c and its check character matches."""
    match = _FORM.match(code) if isinstance(code, str) else None
    if match is None:
        return False
    year, number, check = match.groups()
    return _luhn_check(year + number) == check
