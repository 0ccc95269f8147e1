"""Dial-number validation: normalisation, and refusal of anything that could smuggle an AT command."""

from __future__ import annotations

import pytest

from zetafailover.errors import ValidationError
from zetafailover.spool.numbers import validate_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+49 (30) 1234-5678", "+493012345678"),
        ("555.0100", "5550100"),
        ("9,,555 0100", "9,,5550100"),
        ("9w5550100", "9W5550100"),
        ("t*67#123", "T*67#123"),
        ("P0123", "P0123"),
        ("0" * 40, "0" * 40),
    ],
)
def test_valid_numbers_are_normalised(text: str, expected: str) -> None:
    assert validate_number(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("123;ATH0", "';'"),
        ("123\rATZ", "carriage return"),
        ("123\nATZ", "line feed"),
        ("123+++", r"\+\+\+"),
        ("ATDT123", "'AT'"),
        ("at123", "'AT'"),
        ("123A", "'A'"),
        ("12 3x", "'x'"),
        ("", "empty"),
        ("   ", "empty"),
        ("12+3", "only at the start"),
        ("1" * 41, "too long"),
        ("---", "no digits"),
        ("123\t4", "control or space"),
        ("１２３", "not allowed"),
        ("123\x00", "control"),
    ],
)
def test_bad_numbers_are_refused_with_the_value_and_reason(text: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as err:
        validate_number(text)
    assert "number" in str(err.value)


def test_non_text_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be text"):
        validate_number(123)
