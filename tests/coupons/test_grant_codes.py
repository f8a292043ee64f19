"""Grant codes: HZ<yy>-<7 digits>-<check>, where the check character catches every mistyped
payload digit and every swap of two neighbouring payload digits."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.uscc import ALPHABET
from coupons.grant_codes import grant_code, grant_code_valid

CODE_FORMAT = re.compile(rf"HZ\d{{2}}-\d{{7}}-[{ALPHABET}]")
DIGITS = "0123456789"

years = st.integers(2000, 2999)
numbers = st.integers(0, 9_999_999)

# A spread of codes for the exhaustive checks: edges of the number range, repeated digits, a few
# years, and numbers whose digits all differ.
SAMPLE_CODES = [
    grant_code(year=year, number=number)
    for year in (2000, 2026, 2099)
    for number in (0, 1, 9, 123, 9_999_999, 1_234_567, 7_654_321, 5_000_005, 1_010_101)
]


def payload_of(code: str) -> str:
    """The nine payload digits: the two of the year and the seven of the number."""
    return code[2:4] + code[5:12]


def code_with_payload(code: str, payload: str) -> str:
    """`code` with its payload replaced, keeping its check character and punctuation."""
    return f"HZ{payload[:2]}-{payload[2:]}-{code[-1]}"


def test_a_code_reads_prefix_two_digit_year_seven_digit_number_and_check():
    code = grant_code(year=2026, number=123)
    assert code[:-1] == "HZ26-0000123-"
    assert CODE_FORMAT.fullmatch(code)


@given(years, numbers)
def test_every_code_has_the_format_and_is_valid(year, number):
    code = grant_code(year=year, number=number)
    assert CODE_FORMAT.fullmatch(code)
    assert payload_of(code) == f"{year % 100:02d}{number:07d}"
    assert grant_code_valid(code)


@given(years, numbers, numbers)
def test_different_grants_of_a_year_have_different_codes(year, number, other):
    assert (grant_code(year=year, number=number) == grant_code(year=year, number=other)) == (number == other)


@pytest.mark.parametrize("code", SAMPLE_CODES)
def test_every_single_digit_substitution_in_the_payload_is_detected(code):
    payload = payload_of(code)
    mistyped = [
        payload[:position] + digit + payload[position + 1 :]
        for position in range(len(payload))
        for digit in DIGITS
        if digit != payload[position]
    ]
    assert len(mistyped) == 9 * 9
    assert [p for p in mistyped if grant_code_valid(code_with_payload(code, p))] == []


@pytest.mark.parametrize("code", SAMPLE_CODES)
def test_every_adjacent_transposition_in_the_payload_is_detected(code):
    payload = payload_of(code)
    swapped = [
        payload[:position] + payload[position + 1] + payload[position] + payload[position + 2 :]
        for position in range(len(payload) - 1)
        if payload[position] != payload[position + 1]
    ]
    assert [p for p in swapped if grant_code_valid(code_with_payload(code, p))] == []


@given(years, numbers, st.integers(0, 8), st.sampled_from(DIGITS))
def test_a_substituted_payload_digit_is_detected_for_any_code(year, number, position, digit):
    code = grant_code(year=year, number=number)
    payload = payload_of(code)
    mistyped = payload[:position] + digit + payload[position + 1 :]
    assert grant_code_valid(code_with_payload(code, mistyped)) == (mistyped == payload)


@given(years, numbers, st.integers(0, 7))
def test_an_adjacent_transposition_is_detected_for_any_code(year, number, position):
    code = grant_code(year=year, number=number)
    payload = payload_of(code)
    swapped = payload[:position] + payload[position + 1] + payload[position] + payload[position + 2 :]
    assert grant_code_valid(code_with_payload(code, swapped)) == (swapped == payload)


@pytest.mark.parametrize("code", SAMPLE_CODES)
def test_only_one_check_character_is_valid(code):
    accepted = [c for c in ALPHABET if grant_code_valid(code[:-1] + c)]
    assert accepted == [code[-1]]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda code: code.lower(),
        lambda code: code[:-1] + code[-1].lower() if code[-1].isalpha() else code[:-1] + "a",
        lambda code: "HX" + code[2:],
        lambda code: code.replace("-", ""),
        lambda code: code.replace("-", "_"),
        lambda code: code[:-2],
        lambda code: code + "0",
        lambda code: code[:-1] + "",
        lambda code: code[:5] + "000A123" + code[12:],
        lambda code: "",
        lambda code: " " + code,
    ],
    ids=[
        "lowercase",
        "lowercase check",
        "other prefix",
        "no hyphens",
        "underscores",
        "no check",
        "two check characters",
        "empty check",
        "letter in number",
        "empty",
        "leading space",
    ],
)
def test_malformed_codes_are_invalid(mangle):
    code = grant_code(year=2026, number=1_234_567)
    assert grant_code_valid(code)
    assert not grant_code_valid(mangle(code))


@pytest.mark.parametrize(
    "digit", ["\u00b2", "\u0663", "\uff13"], ids=["superscript two", "arabic-indic three", "fullwidth three"]
)
def test_a_code_with_a_non_ascii_digit_is_invalid_not_an_error(digit):
    code = grant_code(year=2026, number=123)
    assert grant_code_valid(code[:11] + digit + code[12:]) is False


@pytest.mark.parametrize("code", ["HZ2-60000123-B", "HZ-260000123-B", "HZ26-000123-BB", "HZ26--0000123-B"])
def test_a_misplaced_hyphen_is_invalid(code):
    assert grant_code_valid(code) is False
