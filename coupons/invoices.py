"""Chinese invoice numbers, checked and written one way, so that one invoice is one string.

Two forms are in use (docs/evidence.md):
- a fully digital e-invoice (全电发票, 数电票) has a 20-digit number: `24332000000012345678`;
- an older VAT invoice has a 10 or 12-digit invoice code (发票代码) and an 8-digit number (发票号码),
  written here `CODE-NUMBER`: `033002100611-12345678`.

Callers write them with spaces, full-width digits, or a dash, slash or colon between code and
number, or with code and number run together; all of these normalise to the same string. Anything
else is 400 `invalid_invoice_number`.

An invoice's identity is its digits alone (`invoice_key`): the register compares keys, so no way
of writing a number (a digital number split like a code and a number, a 12-digit code run into its
number) makes one invoice two. Two real invoices whose digits coincide would be refused as one:
the fund errs on the side of not paying twice.
"""

import re
import unicodedata
from typing import Final

from config.errors import ApplicationError, ErrorCode

_DIGITAL: Final = re.compile(r"\d{20}")
_CODE_NUMBER: Final = re.compile(r"(\d{10}|\d{12})[-/:](\d{8})")
_JOINED: Final = re.compile(r"(\d{10}|\d{12})(\d{8})")  # Code and number written together: 18 or 20 digits.
# A 12-digit VAT invoice code starts with 0 or 1; a fully digital number starts with its year (2x).
_CODE_FIRST_DIGITS: Final = ("0", "1")
INPUT_LENGTH_MAX: Final = 64


class InvalidInvoiceNumber(ApplicationError):
    code = ErrorCode.INVALID_INVOICE_NUMBER
    http_status = 400
    title = "The invoice number is not a Chinese invoice number."


def invoice_number_normalise(raw: object) -> str:
    """The invoice number in its one written form, or `InvalidInvoiceNumber`.

    >>> invoice_number_normalise("２４３３ 2000 0000 1234 5678")
    '24332000000012345678'
    >>> invoice_number_normalise("033002100611 / 12345678")
    '033002100611-12345678'
    """
    if not isinstance(raw, str) or not raw.strip() or len(raw) > INPUT_LENGTH_MAX:
        raise InvalidInvoiceNumber(
            "invoice_number is the 20-digit number of a fully digital e-invoice, or a 10 or 12-digit code "
            "and an 8-digit number written CODE-NUMBER.",
            errors={"invoice_number": ["Not a Chinese invoice number."]},
        )
    text = unicodedata.normalize("NFKC", raw)
    compact = "".join(ch for ch in text if not ch.isspace())
    if not compact.isascii():
        compact = ""  # Other scripts' digits (Arabic-Indic, ...) are not invoice digits.
    if _DIGITAL.fullmatch(compact) and not compact.startswith(_CODE_FIRST_DIGITS):
        return compact
    if _DIGITAL.fullmatch(compact):  # A 12-digit code and its 8-digit number run together.
        return f"{compact[:12]}-{compact[12:]}"
    match = _CODE_NUMBER.fullmatch(compact)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    if len(compact) == 18 and (match := _JOINED.fullmatch(compact)):  # 10 + 8 digits, unambiguous.
        return f"{match.group(1)}-{match.group(2)}"
    raise InvalidInvoiceNumber(
        f"{raw!r} is not an invoice number: use the 20-digit number of a fully digital e-invoice, or a 10 or "
        "12-digit code and an 8-digit number written CODE-NUMBER.",
        errors={"invoice_number": ["Not a Chinese invoice number."]},
    )


def invoice_key(number: str) -> str:
    """What makes two normalised numbers one invoice: their digits, in order."""
    return number.replace("-", "")
