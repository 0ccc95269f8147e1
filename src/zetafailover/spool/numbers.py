"""Destination numbers: validated and normalised before they can ever reach a modem's dial command.

Allowed: digits, ``+`` only as the first character, and the dial modifiers a modem's ``ATD`` accepts:
``,`` (pause), ``W`` (wait for dial tone), ``T`` / ``P`` (tone / pulse), ``*`` and ``#``. Spaces, dashes,
dots and parentheses are formatting and are removed. Everything else is refused with an error naming the
value and the reason — in particular anything that could smuggle an AT command: ``;`` (ends the dial
string and starts a new command), CR / LF, ``+++`` (escape to command mode), ``AT`` and every other letter.
"""

from __future__ import annotations

from zetafailover.errors import ValidationError

__all__ = ["MAX_NUMBER_LENGTH", "validate_number"]

MAX_NUMBER_LENGTH = 40
"""Longest normalised dial string accepted (modems typically take 40–60 characters after ``ATD``)."""

_FORMATTING = frozenset(" -.()/")
_MODIFIERS = frozenset(",WTP*#")


def validate_number(text: object) -> str:
    """Return the normalised dial string for ``text`` or raise :class:`ValidationError` naming it and why.

    Pure function, never blocks. Lower-case ``w``/``t``/``p`` are upper-cased. The result contains at least
    one digit and only characters from ``0-9 + , W T P * #``.
    """
    if not isinstance(text, str):
        raise ValidationError(f"number {text!r} must be text")
    shown = repr(text if len(text) <= 60 else text[:60] + "…")
    if not text.strip():
        raise ValidationError(f"number {shown} is empty")
    for bad, why in (("\r", "contains a carriage return"), ("\n", "contains a line feed"), (";", "contains ';'")):
        if bad in text:
            raise ValidationError(f"number {shown} {why}, which could smuggle a modem command")
    if "+++" in text:
        raise ValidationError(f"number {shown} contains '+++', the modem escape sequence")
    if "AT" in text.upper():
        raise ValidationError(f"number {shown} contains 'AT', a modem command prefix")
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in _FORMATTING:
            continue
        if ch.isascii() and ch.isdigit():
            out.append(ch)
        elif ch == "+":
            if out:
                raise ValidationError(f"number {shown}: '+' is allowed only at the start (position {i})")
            out.append(ch)
        elif ch.upper() in _MODIFIERS:
            out.append(ch.upper())
        elif ch.isprintable() and not ch.isspace():
            raise ValidationError(
                f"number {shown}: character {ch!r} at position {i} is not allowed "
                "(digits, a leading '+', and the dial modifiers , W T P * # only)"
            )
        else:
            raise ValidationError(f"number {shown}: control or space character {ch!r} at position {i} is not allowed")
    result = "".join(out)
    if not any(c.isdigit() for c in result):
        raise ValidationError(f"number {shown} has no digits")
    if len(result) > MAX_NUMBER_LENGTH:
        raise ValidationError(f"number {shown} is too long ({len(result)} characters; at most {MAX_NUMBER_LENGTH})")
    return result
