"""The unified social credit code of GB 32100-2015: length, alphabet and check character."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import assume, given
from hypothesis import strategies as st

from accounts.uscc import ALPHABET, LENGTH, WEIGHTS, check_character, validate_uscc

# Published codes of real organisations, each with its GB 32100-2015 check character.
VALID_CODES = ["91350100M000100Y43", "91110000802100433B", "913301007517117015"]

seventeen_characters = st.text(alphabet=ALPHABET, min_size=LENGTH - 1, max_size=LENGTH - 1)


def rejection(value: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate_uscc(value)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("code", VALID_CODES)
def test_published_codes_are_valid(code):
    validate_uscc(code)
    assert check_character(code[:-1]) == code[-1]


def test_the_weights_are_powers_of_three_modulo_31():
    assert tuple(3**i % 31 for i in range(LENGTH - 1)) == WEIGHTS


def test_the_alphabet_is_digits_and_capitals_without_i_o_s_v_z():
    assert len(ALPHABET) == 31
    assert set(ALPHABET) == set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") - set("IOSVZ")


@pytest.mark.parametrize("code", VALID_CODES)
def test_a_wrong_check_character_is_rejected_naming_the_expected_one(code):
    # given
    wrong = next(c for c in ALPHABET if c != code[-1])
    # when
    error = rejection(code[:-1] + wrong)
    # then
    assert error.code == "uscc_check"
    assert f"{wrong!r} where GB 32100-2015 gives {code[-1]!r}" in error.messages[0]


@pytest.mark.parametrize("value", ["", "91350100M000100Y4", "91350100M000100Y433", VALID_CODES[0] * 2])
def test_a_code_of_the_wrong_length_is_rejected(value):
    error = rejection(value)
    assert error.code == "uscc_length"
    assert "exactly 18 characters" in error.messages[0]


@pytest.mark.parametrize("value", [None, 913301007517117015])
def test_a_value_that_is_not_a_string_is_rejected(value):
    assert rejection(value).code == "uscc_length"


@pytest.mark.parametrize("letter", list("IOSVZ"))
@pytest.mark.parametrize("position", [0, 8, LENGTH - 1])
def test_the_letters_i_o_s_v_z_are_rejected(letter, position):
    code = VALID_CODES[1]
    value = code[:position] + letter + code[position + 1 :]
    error = rejection(value)
    assert error.code == "uscc_alphabet"
    assert repr(letter) in error.messages[0]


@pytest.mark.parametrize(
    ("value", "named"),
    [(VALID_CODES[0].lower(), "found 'my'"), (VALID_CODES[1][:-1] + "b", "found 'b'")],
)
def test_lowercase_letters_are_rejected_even_when_the_uppercase_code_is_valid(value, named):
    validate_uscc(value.upper())
    error = rejection(value)
    assert error.code == "uscc_alphabet"
    assert named in error.messages[0]


@given(seventeen_characters)
def test_the_check_character_completes_every_code_to_a_valid_one(first_seventeen):
    code = first_seventeen + check_character(first_seventeen)
    validate_uscc(code)
    # The weighted sum of all eighteen characters (the check character weighs 1) is 0 modulo 31.
    total = sum(ALPHABET.index(c) * w for c, w in zip(first_seventeen, WEIGHTS, strict=True))
    assert (total + ALPHABET.index(code[-1])) % 31 == 0


@given(seventeen_characters, st.sampled_from(ALPHABET))
def test_every_other_check_character_is_rejected(first_seventeen, other):
    expected = check_character(first_seventeen)
    assume(other != expected)
    error = rejection(first_seventeen + other)
    assert error.code == "uscc_check"
    assert repr(expected) in error.messages[0]


@given(seventeen_characters, st.integers(0, LENGTH - 2), st.sampled_from(ALPHABET))
def test_a_single_substituted_character_is_detected(first_seventeen, position, replacement):
    code = first_seventeen + check_character(first_seventeen)
    assume(code[position] != replacement)
    mistyped = code[:position] + replacement + code[position + 1 :]
    assert rejection(mistyped).code == "uscc_check"
