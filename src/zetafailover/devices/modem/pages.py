"""Page data between the spool's TIFF-F files and the modem line (T.4 MH, LSB first, with RTC).

On the serial line page data goes least significant bit first (``+FBO=0``): exactly the strip of a TIFF-F page
with FillOrder 2. Pages whose strip is MSB first are bit-reversed; MH pages are sent as they are coded
(never re-encoded) with RTC appended. Received data is decoded row by row and written as a single-page
TIFF-F (MH, FillOrder 2), so what reaches the spool is always a well-formed page whatever fill bits or trailing
junk the line delivered. Many modems deliver received data bit-reversed whatever ``+FBO`` says: the ``auto``
bit order (:func:`decode_line_page_order`) tries the reversed order when the direct one does not decode cleanly.

Timing: pure computation; decoding a received page costs ≈20–40 ms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zetafailover.errors import ValidationError
from zetafailover.interfaces import OutboundFax
from zetafailover.spool import t4
from zetafailover.spool.tiff import MAX_DOCUMENT_BYTES, page_strip, validate_tiff_bytes, write_tiff

__all__ = [
    "BIT_ORDERS",
    "REVERSE",
    "RTC_LSB",
    "SEND_BIT_ORDERS",
    "LinePage",
    "check_bit_order",
    "decode_line_page",
    "decode_line_page_order",
    "line_pages",
    "load_fax_pages",
    "page_tiff",
    "sync_to_first_eol",
]

REVERSE = bytes(int(format(b, "08b")[::-1], 2) for b in range(256))
"""Bit reversal of every byte value (MSB-first ↔ LSB-first)."""

RTC_LSB = t4.encode_page([], fill_order=2, rtc=True)
"""Return To Control (six EOLs), LSB first: how a page ends on the line."""


@dataclass(frozen=True, slots=True)
class LinePage:
    """One page ready for the line: MH data LSB first ending with RTC, and its vertical resolution."""

    data: bytes
    fine: bool
    width: int = 1728


def line_pages(document: bytes, source: str) -> list[LinePage]:
    """Every page of a TIFF-F document as :class:`LinePage`. Raises ValidationError for MR/MMR or bad files."""
    info = validate_tiff_bytes(document, source, widths=(1728,))
    out: list[LinePage] = []
    for number, page in enumerate(info.pages, 1):
        if page.coding != "MH":
            raise ValidationError(f"{source}: page {number} is {page.coding}; the modem driver sends MH only")
        strip = page_strip(document, page)
        if page.fill_order == 1:
            strip = strip.translate(REVERSE)
        if page.photometric == 1:
            # min-is-black: decode and re-code so that 1 = black on the line.
            rows = t4.decode_page(strip, page.width, rows=page.length, fill_order=2)
            strip = t4.encode_page([bytes(b ^ 0xFF for b in r) for r in rows], page.width, fill_order=2)
        out.append(LinePage(strip + RTC_LSB, page.fine, page.width))
    return out


def load_fax_pages(fax: OutboundFax) -> list[LinePage]:
    """The pages of ``fax`` (one multi-page file, or one file a page). Raises OSError / ValidationError."""
    pages: list[LinePage] = []
    for path in fax.pages:
        data = Path(path).read_bytes()
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ValidationError(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes")
        pages.extend(line_pages(data, path))
    if fax.total_pages and len(pages) != fax.total_pages:
        raise ValidationError(f"{fax.pages[0]}: {len(pages)} pages, but the job has {fax.total_pages}")
    return pages


_EOL_BITS = "0" * 11 + "1"


def sync_to_first_eol(data: bytes) -> bytes:
    """``data`` (LSB first) from its first EOL on, bit-exact, still LSB first.

    A real modem's receiver delivers whatever it demodulated before the page began — ones while the carrier
    trains (iaxmodem/spandsp: ~1,500 bytes of 0xFF at V.17), sometimes a few stray bits — and T.4 says a page
    starts at its first EOL. The bits before it are dropped (the rest is shifted, so nothing after it changes);
    data without an EOL is returned unchanged.
    """
    head = data[:8192].translate(REVERSE)
    bits = "".join(format(b, "08b") for b in head)
    at = bits.find(_EOL_BITS)
    if at <= 0:
        return data
    if at % 8 == 0:
        return data[at // 8 :]
    rest = bits[at:] + "".join(format(b, "08b") for b in data[len(head) :].translate(REVERSE))
    rest += "0" * (-len(rest) % 8)
    return int(rest, 2).to_bytes(len(rest) // 8, "big").translate(REVERSE)


BIT_ORDERS = ("auto", "direct", "reversed")
"""How received page data is read: ``direct`` (LSB first, as ``+FBO=0`` asks), ``reversed`` (MSB first — what many
Class 2 modems deliver whatever ``+FBOR`` says) or ``auto`` (direct, and reversed only when direct is not clean)."""

SEND_BIT_ORDERS = ("direct", "reversed")
"""How page data goes to a Class 2/2.0 modem: ``direct`` (LSB first, what ``+FBO=0`` asks for) or ``reversed``
(every byte bit-reversed, for modems that expect it whatever ``+FBO``/``+FBOR`` says)."""


def check_bit_order(order: str, allowed: tuple[str, ...], what: str) -> str:
    """``order`` if it is one of ``allowed`` (:data:`BIT_ORDERS` or :data:`SEND_BIT_ORDERS`); otherwise
    :class:`~zetafailover.errors.ValidationError` (a ValueError) naming ``what``, the value and the choices."""
    if order not in allowed:
        raise ValidationError(f"{what} {order!r}: one of {', '.join(allowed)}")
    return order


def decode_line_page_order(data: bytes, width: int = 1728, order: str = "auto") -> tuple[list[bytes], str]:
    """Rows (packed, 1 = black) of MH page data from the line and the bit order that gave them.

    ``order`` is one of :data:`BIT_ORDERS`. ``direct``: the data is LSB first (T.4 bits as they went on the
    telephone line); ``reversed``: every byte is bit-reversed first. ``auto``: decoded as direct; if that
    decodes cleanly (no :class:`~zetafailover.spool.t4.T4DecodeError` on the first full attempt) it is used,
    otherwise the bit-reversed data is decoded as well and whichever gives more rows is kept (a tie keeps
    direct). Each attempt starts at the first EOL (:func:`sync_to_first_eol`) and stops at RTC; rows after a
    coding error are lost. Raises T4DecodeError only when not one row could be decoded (in auto: in either order),
    ValidationError (a ValueError) for an unknown ``order``.

    Timing: pure computation, ≈20–40 ms a page; auto costs a second decode only when the first is not clean.
    """
    check_bit_order(order, BIT_ORDERS, "bit order")
    if order == "reversed":
        return _decode_synced(data.translate(REVERSE), width)[0], "reversed"
    if order == "direct":
        return _decode_synced(data, width)[0], "direct"
    try:
        direct, clean = _decode_synced(data, width)
    except t4.T4DecodeError:
        direct, clean = [], False
    if clean:
        return direct, "direct"
    try:
        reversed_rows, _ = _decode_synced(data.translate(REVERSE), width)
    except t4.T4DecodeError:
        reversed_rows = []
    if len(reversed_rows) > len(direct):
        return reversed_rows, "reversed"
    if not direct:
        raise t4.T4DecodeError("no row decodes in either bit order (direct or reversed)")
    return direct, "direct"


def decode_line_page(data: bytes, width: int = 1728, order: str = "auto") -> list[bytes]:
    """Rows (packed, 1 = black) of MH page data from the line; see :func:`decode_line_page_order` (which also
    says which bit order won). Raises :class:`~zetafailover.spool.t4.T4DecodeError` when no row decodes."""
    return decode_line_page_order(data, width, order)[0]


def _decode_synced(data: bytes, width: int) -> tuple[list[bytes], bool]:
    """Rows of LSB-first ``data`` from its first EOL to RTC, and whether the whole decode was clean (no coding
    error). The error names the first bad row ("row N: ..."): the N good rows before it are kept (trailing junk
    after the page, or a line hit mid-page); T4DecodeError when N is 0."""
    data = sync_to_first_eol(data)
    try:
        return t4.decode_page(data, width, fill_order=2), True
    except t4.T4DecodeError as exc:
        match = re.match(r"row (\d+):", str(exc))
        good = int(match.group(1)) if match else 0
        if not good:
            raise
        return t4.decode_page(data, width, rows=good, fill_order=2), False


def page_tiff(rows: list[bytes], fine: bool, width: int = 1728) -> bytes:
    """A single-page TIFF-F (MH, FillOrder 2) of ``rows``."""
    return write_tiff(None, [rows], fine=fine, width=width)
