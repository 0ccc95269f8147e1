"""Class 2.0 (ITU-T T.32 / EIA-592) and Class 2 (SP-2388-A) fax sessions: the modem runs T.30, we punctuate.

One code path for both, parameterised by a :class:`Dialect` (command and response names, hang-up codes in hex
or decimal, how a page ends, what starts the data). Sending::

    ATD<number>  → +FCO, [+FCI:], +FIS:, OK      (Class 2: +FCON, +FCSI:, +FDIS:)
    [AT+FIS=…]   when a page's resolution differs from the session's
    AT+FDT       → +FCS:, CONNECT                (Class 2: then wait for XON)
    <page data, DLE doubled>  <DLE>, (MPS) | <DLE>. (EOP)   → OK = page confirmed (MCF), ERROR = RTN
                 (Class 2: <DLE><ETX> → OK, AT+FET=0|2 → +FPTS:<ppr>, OK)
    … +FHS:00 OK at the end

Receiving::

    ATA → +FCO, +FTI:, +FCS:, OK;  AT+FDR → CONNECT; <DC2> (Class 2: <DC1>); data … <DLE><ETX>
    +FPS:, +FET:<ppm>, OK;  the next AT+FDR releases MCF — we issue it only after the page is on disk.

Timing: each step is bounded by a :class:`Timeouts` field (dial 90 s, page 120 s, command 5 s by default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from zetafailover.devices.modem.at import DC1, DC2, DLE, ETX, XON, AtChannel, AtError, AtResponse, AtTimeout
from zetafailover.devices.modem.pages import (
    BIT_ORDERS,
    REVERSE,
    SEND_BIT_ORDERS,
    LinePage,
    check_bit_order,
    decode_line_page_order,
    page_tiff,
)
from zetafailover.spool.t4 import T4DecodeError

__all__ = [
    "CLASS2",
    "CLASS20",
    "DIAL_RESULTS",
    "HANGUP_REASONS",
    "Dialect",
    "ReceivedPage",
    "SessionResult",
    "Timeouts",
    "hangup_reason",
    "receive_fax",
    "send_fax",
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """The names one service class uses (Class 2 vs Class 2.0)."""

    fclass: str
    conn: str
    dis: str
    dcs: str
    csi: str
    tsi: str
    pps: str
    hangup: str
    local_id: str
    caps: str
    bit_order: str
    abort: str
    hangup_hex: bool
    recv_trigger: int
    wait_xon: bool
    ident: tuple[str, str, str]


CLASS20 = Dialect(
    "2.0", "+FCO", "+FIS", "+FCS", "+FCI", "+FTI", "+FPS", "+FHS", "+FLI", "+FCC", "+FBO", "+FKS",
    hangup_hex=True, recv_trigger=DC2, wait_xon=False, ident=("+FMI?", "+FMM?", "+FMR?"),
)  # fmt: skip
CLASS2 = Dialect(
    "2", "+FCON", "+FDIS", "+FDCS", "+FCSI", "+FTSI", "+FPTS", "+FHNG", "+FLID", "+FDCC", "+FBOR", "+FK",
    hangup_hex=False, recv_trigger=DC1, wait_xon=True, ident=("+FMFR?", "+FMDL?", "+FREV?"),
)  # fmt: skip

HANGUP_REASONS = {
    0: "normal end of call",
    1: "ring detected without successful handshake",
    2: "call aborted",
    3: "no loop current",
    4: "ringback detected, no answer",
    5: "answered without CED (not a fax machine)",
    10: "unspecified phase A error",
    11: "no answer (T.30 T1 timeout)",
    20: "unspecified transmit phase B error",
    21: "remote cannot receive",
    22: "COMREC error in transmit phase B",
    23: "COMREC invalid command received",
    24: "RSPREC error",
    25: "DCS sent three times without response",
    26: "DIS/DTC received three times; DCS not recognised",
    27: "failure to train",
    28: "RSPREC invalid response received",
    40: "unspecified transmit phase C error",
    43: "send data underflow",
    50: "unspecified transmit phase D error",
    51: "RSPREC error in phase D",
    52: "no response to MPS repeated three times",
    53: "invalid response to MPS",
    54: "no response to EOP repeated three times",
    55: "invalid response to EOP",
    56: "no response to EOM repeated three times",
    57: "invalid response to EOM",
    58: "unable to continue after PIN or PIP",
    70: "unspecified receive phase B error",
    73: "T2 timeout: expected page not received",
    74: "T1 timeout after EOM",
    90: "unspecified receive phase C error",
    91: "missing EOL after 5 seconds",
    93: "DCE to DTE buffer overflow",
    100: "unspecified receive phase D error",
}
"""T.32 / SP-2388 hang-up status codes (the decimal value; Class 2.0 reports them in hex)."""

NOT_RETRYABLE_HANGUPS = frozenset({5, 21})
"""Hang-up codes after which a retry is pointless (not a fax machine, remote cannot receive)."""

DIAL_RESULTS = {
    "BUSY": ("number busy", True),
    "NO ANSWER": ("no answer", True),
    "NO DIALTONE": ("no dial tone (line in use)", True),
    "NO CARRIER": ("no carrier (no fax machine answered)", True),
    "ERROR": ("the modem refused to dial", True),
}
"""Dial result code → (job reason, retryable)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each step may take (seconds)."""

    command: float = 5.0
    dial: float = 90.0
    answer: float = 60.0
    page: float = 120.0
    """From the end of our page data to the modem's post-page answer (or from +FDR to the data's end)."""
    page_start: float = 60.0


@dataclass(frozen=True, slots=True)
class SessionResult:
    """How a fax session ended: pages confirmed, the hang-up code and a reason for the job."""

    ok: bool
    pages: int
    reason: str
    retryable: bool = True
    hangup: int = -1


@dataclass(frozen=True, slots=True)
class ReceivedPage:
    """A page received: single-page TIFF-F bytes, the sender's post-page message (0 MPS, 1 EOM, 2 EOP) and the
    bit order its line data turned out to be in (``direct`` or ``reversed``, see
    :func:`~zetafailover.devices.modem.pages.decode_line_page_order`)."""

    tiff: bytes
    rows: int
    fine: bool
    ppm: int
    bit_order: str = "direct"


def parse_hangup(response: AtResponse, dialect: Dialect) -> int | None:
    """The hang-up code in ``response`` (``+FHS:``/``+FHNG:``), or None."""
    value = response.value(dialect.hangup + ":", "+FHS:", "+FHNG:")
    if value is None:
        return None
    text = value.split(",")[0].strip()
    try:
        if not dialect.hangup_hex:
            return int(text, 10)
        # T.32 writes the SP-2388 code's decimal digits as hex digits: 52 → "52", 100 → "A0".
        v = int(text, 16)
        return (v >> 4) * 10 + (v & 0xF)
    except ValueError:
        return 100


def hangup_reason(code: int) -> str:
    base = HANGUP_REASONS.get(code) or HANGUP_REASONS.get(code // 10 * 10, "unknown hang-up code")
    return f"{base} (hang-up code {code})"


def _caps(value: str | None) -> list[int]:
    if not value:
        return []
    out: list[int] = []
    for part in value.split(","):
        try:
            out.append(int(part.strip(), 16))
        except ValueError:
            out.append(0)
    return out


def send_fax(  # noqa: PLR0917 - the session's inputs, in protocol order
    at: AtChannel,
    dialect: Dialect,
    number: str,
    pages: list[LinePage],
    first: int,
    on_page: Callable[[int], None],
    *,
    timeouts: Timeouts,
    allowed: Callable[[], bool] = lambda: True,
    flow: Callable[[bool], None] = lambda on: None,
    bit_order: str = "direct",
) -> SessionResult:
    """Dial ``number`` (already validated) and send ``pages[first:]``; ``on_page(i)`` right after each confirmation.

    ``bit_order`` (:data:`SEND_BIT_ORDERS`): ``reversed`` bit-reverses every page's line data before it is
    DLE-escaped — for modems that expect it reversed whatever ``+FBO=0`` / ``+FBOR=0`` asked; ValueError for
    anything else than ``direct`` or ``reversed``.

    ``allowed()`` is asked before every page (False: hang up, report retryable). ``flow(True)`` is called before
    page data is written and ``flow(False)`` after (the driver turns XON/XOFF output flow control on and off).
    Timing: at most ``timeouts.dial`` + per page ``timeouts.page_start`` + ``timeouts.page``. Never raises for
    protocol trouble: it is reported in the result (AtError for a dead port propagates).
    """
    check_bit_order(bit_order, SEND_BIT_ORDERS, "send bit order")
    confirmed = first
    dial = at.command("ATD" + number, timeouts.dial)
    code = parse_hangup(dial, dialect)
    if dial.result != "OK" or (code is not None and code != 0):
        if code is not None and code != 0:
            return SessionResult(False, first, hangup_reason(code), code not in NOT_RETRYABLE_HANGUPS, code)
        reason, retry = DIAL_RESULTS.get(dial.result, (f"dial answered {dial.result}", True))
        return SessionResult(False, first, reason, retry)
    session = _caps(dial.value(dialect.dis + ":"))
    fine = bool(session and session[0] & 1)
    try:
        for index in range(first, len(pages)):
            page = pages[index]
            last = index == len(pages) - 1
            if not allowed():
                _abort(at, dialect, timeouts)
                return SessionResult(False, confirmed, "device went off line during the call")
            if page.fine != fine:
                r = at.command(f"AT{dialect.dis}={1 if page.fine else 0},5,0,2,0,0,0,0", timeouts.command)
                if r.result != "OK":
                    _abort(at, dialect, timeouts)
                    return SessionResult(False, confirmed, f"the modem refused the page format ({r.result})")
                fine = page.fine
            start = at.command("AT+FDT", timeouts.page_start)
            code = parse_hangup(start, dialect)
            if start.result != "CONNECT":
                code = code if code is not None else 40
                return SessionResult(False, confirmed, hangup_reason(code), code not in NOT_RETRYABLE_HANGUPS, code)
            if dialect.wait_xon:
                at.wait_byte((XON,), timeouts.page_start)
            flow(True)
            try:
                at.write_data(page.data.translate(REVERSE) if bit_order == "reversed" else page.data)
                if dialect.wait_xon:
                    at.write_raw(bytes((DLE, ETX)))
                else:
                    at.write_raw(bytes((DLE, ord("." if last else ","))))
            finally:
                flow(False)
            end = at.wait_result(timeouts.page, command="page data")
            code = parse_hangup(end, dialect)
            good = end.result == "OK"
            if dialect.wait_xon and good:
                fet = at.command(f"AT+FET={2 if last else 0}", timeouts.page)
                code = parse_hangup(fet, dialect) if code is None else code
                ppr = fet.value("+FPTS:")
                good = fet.result == "OK" and (ppr is None or int(ppr.split(",")[0] or "1") % 2 == 1)
            if not good:
                code = code if code is not None and code != 0 else (54 if last else 52)
                with contextlib.suppress(AtError):
                    _abort(at, dialect, timeouts)
                return SessionResult(False, confirmed, f"page {index + 1} not confirmed: {hangup_reason(code)}",
                                     code not in NOT_RETRYABLE_HANGUPS, code)  # fmt: skip
            on_page(index)
            confirmed = index + 1
            if code is not None and code != 0 and not last:
                return SessionResult(False, confirmed, hangup_reason(code), code not in NOT_RETRYABLE_HANGUPS, code)
        return SessionResult(True, confirmed, "sent", True, 0)
    except AtTimeout as exc:
        with contextlib.suppress(AtError):
            _abort(at, dialect, timeouts)
        return SessionResult(False, confirmed, f"the modem stopped answering: {exc}")


def receive_fax(
    at: AtChannel,
    dialect: Dialect,
    on_page: Callable[[ReceivedPage], None],
    *,
    timeouts: Timeouts,
    allowed: Callable[[], bool] = lambda: True,
    on_caller: Callable[[str], None] = lambda caller: None,
    bit_order: str = "auto",
) -> SessionResult:
    """Answer a ringing call and receive pages; ``on_page`` must store the page durably before returning —
    only then is the next ``+FDR`` issued, which releases MCF for that page.

    ``bit_order`` (:data:`~zetafailover.devices.modem.pages.BIT_ORDERS`) says how page data from the modem is
    read: ``direct``, ``reversed`` or ``auto`` (direct; reversed as well when direct does not decode cleanly —
    each :class:`ReceivedPage` says which order won). ValueError for anything else.

    Returns the result with the number of pages stored. ``on_page`` raising ends the call without MCF for that
    page (the exception propagates after hanging up). Timing: ``timeouts.answer`` + per page ``timeouts.page``.
    """
    check_bit_order(bit_order, BIT_ORDERS, "receive bit order")
    stored = 0
    ans = at.command("ATA", timeouts.answer)
    code = parse_hangup(ans, dialect)
    if ans.result != "OK" or (code is not None and code != 0):
        return SessionResult(False, 0, hangup_reason(code) if code else f"answer failed ({ans.result})", True,
                             code if code is not None else -1)  # fmt: skip
    session = _caps(ans.value(dialect.dcs + ":"))
    on_caller((ans.value(dialect.tsi + ":") or "").strip().strip('"').strip())
    try:
        while True:
            if not allowed():
                _abort(at, dialect, timeouts)
                return SessionResult(False, stored, "device went off line during the call")
            fdr = at.command("AT+FDR", timeouts.page)
            code = parse_hangup(fdr, dialect)
            if fdr.result == "OK":
                return SessionResult(code in (None, 0), stored, hangup_reason(code or 0), True, code or 0)
            if fdr.result != "CONNECT":
                code = code if code is not None else 90
                return SessionResult(False, stored, hangup_reason(code), True, code)
            session = _caps(fdr.value(dialect.dcs + ":")) or session
            fine = bool(session and session[0] & 1)
            at.write_raw(bytes((dialect.recv_trigger,)))
            data = at.read_data(timeouts.page)
            post = at.wait_result(timeouts.command * 4, command="end of page")
            code = parse_hangup(post, dialect)
            fet = post.value("+FET:")
            ppm = int(fet.split(",")[0]) if fet and fet.split(",")[0].strip().isdigit() else 2
            try:
                rows, order = decode_line_page_order(data, order=bit_order)
            except T4DecodeError:
                # Nothing decodable: ask for the page again (RTN instead of MCF).
                at.command(f"AT{dialect.pps}=2", timeouts.command)
                continue
            page = ReceivedPage(page_tiff(rows, fine), len(rows), fine, ppm, order)
            on_page(page)
            stored += 1
            if code is not None and code != 0:
                return SessionResult(False, stored, hangup_reason(code), True, code)
    except AtTimeout as exc:
        with contextlib.suppress(AtError):
            _abort(at, dialect, timeouts)
        return SessionResult(False, stored, f"the modem stopped answering: {exc}")


def _abort(at: AtChannel, dialect: Dialect, timeouts: Timeouts) -> None:
    """Abort the session (``+FKS``/``+FK``) and hang up; tolerant of a modem that already did."""
    with contextlib.suppress(AtTimeout):
        at.command(f"AT{dialect.abort}", timeouts.command)
    at.command("ATH0", timeouts.command)
