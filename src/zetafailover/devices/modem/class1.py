"""Class 1 (ITU-T T.31) fax sessions: the host runs T.30, the modem only modulates.

Frames go out with ``AT+FTH=3`` (each frame DLE-escaped and ended by ``<DLE><ETX>``; the modem answers
``CONNECT`` after a non-final frame and ``OK`` after the final one) and come in with ``AT+FRH=3`` (the frame with
its FCS, ``<DLE><ETX>``, then ``OK`` — or ``ERROR`` for a bad FCS — or ``NO CARRIER``); TCF and page data with
``AT+FTM=<mod>`` / ``AT+FRM=<mod>``. ``ATD`` implies ``+FRH=3`` and ``ATA`` implies ``+FTH=3``.

Sending (phase B–E)::

    ATD → CONNECT [CSI] DIS          → AT+FTH=3: TSI, DCS;  AT+FTS=8;  AT+FTM=<m>: TCF (1.5 s of zeros)
    AT+FRH=3 → CFR (FTT: next slower rate, DCS + TCF again; at most T30Timers.retries times per rate)
    per page: AT+FTM=<m>: page data;  AT+FTS=8;  AT+FTH=3: MPS | EOP;  AT+FRH=3 → MCF (on_page) | RTN (retrain,
    page again) | nothing within T4 (MPS/EOP again, at most 3 times);  at the end AT+FTH=3: DCN;  ATH0

Receiving::

    ATA → CONNECT;  CSI, DIS  (repeated every T4 until a DCS comes, at most T1)
    AT+FRH=3 → [TSI] DCS;  AT+FRM=<m> → TCF, check the zero run;  AT+FTH=3: CFR | FTT
    per page: AT+FRM=<m> → page data;  AT+FRH=3 → MPS | EOP;  store the page durably;  AT+FTH=3: MCF (RTN if
    nothing decodes);  after EOP: AT+FRH=3 → DCN;  ATH0

Before answering a received frame the host waits :attr:`T30Timers.pause` (75 ms) — the silence T.30 requires
between the end of one station's signal and the start of the other's.

Timing: every wait is bounded by a T.30 timer or a :class:`~zetafailover.devices.modem.class2.Timeouts` field;
a whole call is bounded by T1 + pages × (page time + T4 × retries). Atomicity: none — one thread owns the port.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from zetafailover.devices.modem import t30
from zetafailover.devices.modem.at import CAN, DLE, ETX, AtChannel, AtError, AtTimeout
from zetafailover.devices.modem.class2 import (
    DIAL_RESULTS,
    Dialect,
    ReceivedPage,
    SessionResult,
    Timeouts,
    hangup_reason,
)
from zetafailover.devices.modem.pages import (
    BIT_ORDERS,
    SEND_BIT_ORDERS,
    LinePage,
    check_bit_order,
    decode_line_page_order,
    page_tiff,
)
from zetafailover.devices.modem.t30 import Caps, Frame, FrameError, Rate, T30Timers
from zetafailover.spool.t4 import T4DecodeError

__all__ = ["CLASS1", "Class1Link", "receive_fax", "send_fax"]

CLASS1 = Dialect(
    "1", "", "", "", "", "", "", "", "", "", "", "",
    hangup_hex=False, recv_trigger=0, wait_xon=False, ident=("+GMI", "+GMM", "+GMR"),
)  # fmt: skip
"""Class 1 has none of the Class 2 names; this marks the class and names the identification queries."""


class _NoFrame(Exception):
    """No (valid) frame within the timer."""


class _NotInCall(_NoFrame):
    """``AT+FRH=3`` answered ``ERROR``: the modem is no longer in a call (the line dropped); waiting is pointless."""


class _LineDropped(AtError):
    """The modem lost the line while sending data (``NO CARRIER`` instead of ``OK``): the call is over."""


@dataclass
class Class1Link:
    """HDLC frames and raw data over an :class:`AtChannel` in Class 1. See the module docstring.

    Timing: :meth:`receive` waits at most ``timeout`` for the frame to begin and 3 s for it to complete;
    :meth:`send_frames` at most ``timeouts.command`` per frame. Raises :class:`AtError` for a modem that refuses.
    """

    at: AtChannel
    timeouts: Timeouts
    timers: T30Timers
    _last_in: float = 0.0

    def send_frames(self, frames: list[Frame], *, answer: bool = True, connected: bool = False) -> None:
        """``AT+FTH=3`` (unless ``connected``: after ``ATA`` the modem is already transmitting) and the frames.

        ``answer``: these frames answer a frame just received — wait out the 75 ms pause first.
        """
        if answer and self._last_in:
            gap = self._last_in + self.timers.pause - time.monotonic()
            if gap > 0:
                time.sleep(gap)
        if not connected:
            r = self.at.command("AT+FTH=3", self.timeouts.command)
            if r.result != "CONNECT":
                raise AtError(f"modem answered {r.result!r} to AT+FTH=3")
        for frame in frames:
            self.at.write_data(frame.wire())
            self.at.write_raw(bytes((DLE, ETX)))
            r = self.at.wait_result(self.timeouts.command, command=f"{frame.name} frame")
            want = "OK" if frame.final else "CONNECT"
            if r.result != want:
                raise AtError(f"modem answered {r.result!r} after the {frame.name} frame (wanted {want})")

    def receive(self, timeout: float, *, connected: bool = False) -> Frame:
        """The next frame (``AT+FRH=3``; after ``ATD`` the modem is already receiving: ``connected``).

        Raises :class:`_NoFrame` when no frame begins within ``timeout`` (the command is aborted with a byte, as
        T.31 allows), for ``NO CARRIER``, or for a frame with a bad FCS.
        """
        if not connected:
            try:
                r = self.at.command("AT+FRH=3", timeout)
            except AtTimeout:
                self.at.write_raw(bytes((CAN,)))
                with contextlib.suppress(AtTimeout):
                    self.at.wait_result(self.timeouts.command, command="aborted AT+FRH=3")
                raise _NoFrame(f"no frame within {timeout:g} s") from None
            if r.result == "ERROR":
                raise _NotInCall("AT+FRH=3 answered ERROR")
            if r.result != "CONNECT":
                raise _NoFrame(f"AT+FRH=3 answered {r.result}")
        data = self.at.read_data(max(3.0, self.timers.t4))
        end = self.at.wait_result(self.timeouts.command, command="frame")
        self._last_in = time.monotonic()
        if end.result != "OK":
            raise _NoFrame(f"frame ended with {end.result} (bad FCS)")
        try:
            return t30.parse_frame(data)
        except FrameError as exc:
            raise _NoFrame(str(exc)) from None

    def receive_final(self, timeout: float, *, connected: bool = False) -> list[Frame]:
        """Frames up to and including one with the final bit (each within ``timeout``)."""
        frames = [self.receive(timeout, connected=connected)]
        while not frames[-1].final:
            frames.append(self.receive(timeout))
        return frames

    def send_data(self, rate: Rate, data: bytes, *, page: bool = False) -> None:
        """``AT+FTM=<mod>`` → CONNECT, the data DLE-escaped, ``<DLE><ETX>`` → OK (``page``: V.17 short training)."""
        code = rate.page if page else rate.code
        r = self.at.command(f"AT+FTM={code}", self.timeouts.command)
        if r.result != "CONNECT":
            raise AtError(f"modem answered {r.result!r} to AT+FTM={code}")
        self.at.write_data(data)
        self.at.write_raw(bytes((DLE, ETX)))
        end = self.at.wait_result(self.timeouts.page, command="page data")
        if end.result == "NO CARRIER":
            raise _LineDropped(f"the line dropped during the data at {rate.bps} bit/s (NO CARRIER)")
        if end.result != "OK":
            raise AtError(f"modem answered {end.result!r} after the data at {rate.bps} bit/s")

    def receive_data(self, rate: Rate, timeout: float, *, page: bool = False) -> bytes:
        """``AT+FRM=<mod>`` → CONNECT (within ``timeout``), data up to ``<DLE><ETX>``, then NO CARRIER/OK.

        ``page``: page data after CFR — V.17 short training first; a modem that hears the other training answers
        ``+FCERROR`` at once, and the command is repeated with the long-training code (T.31 §8.3.4).
        """
        codes = [rate.page, rate.code] if page and rate.page != rate.code else [rate.code]
        deadline = time.monotonic() + timeout
        r = None
        for code in codes:
            try:
                r = self.at.command(f"AT+FRM={code}", max(0.5, deadline - time.monotonic()))
            except AtTimeout:
                self.at.write_raw(bytes((CAN,)))
                with contextlib.suppress(AtTimeout):
                    self.at.wait_result(self.timeouts.command, command=f"aborted AT+FRM={code}")
                raise _NoFrame(f"no carrier at {rate.bps} bit/s within {timeout:g} s") from None
            if r.result not in ("+FCERROR", "FCERROR"):
                break
        assert r is not None
        if r.result != "CONNECT":
            raise _NoFrame(f"{r.command} answered {r.result}")
        data = self.at.read_data(self.timeouts.page)
        with contextlib.suppress(AtTimeout):
            self.at.wait_result(self.timeouts.command, command="end of data")
        self._last_in = time.monotonic()
        return data

    def silence(self, tens_of_ms: int = 8) -> None:
        """``AT+FTS=n``: stop transmitting and wait n × 10 ms (the gap between V.21 frames and high-speed data)."""
        self.at.expect_ok(f"AT+FTS={tens_of_ms}", self.timeouts.command)


def modem_rates(at: AtChannel, timeout: float) -> frozenset[int]:
    """The modulation codes the modem offers (``AT+FTM=?``); empty if it does not say."""
    r = at.command("AT+FTM=?", timeout)
    codes: set[int] = set()
    for part in r.text().replace("(", "").replace(")", "").split(","):
        if part.strip().isdigit():
            codes.add(int(part))
    return frozenset(codes)


def send_fax(
    at: AtChannel,
    number: str,
    pages: list[LinePage],
    first: int,
    on_page: Callable[[int], None],
    *,
    timeouts: Timeouts,
    timers: T30Timers | None = None,
    local_id: str = "",
    allowed: Callable[[], bool] = lambda: True,
    flow: Callable[[bool], None] = lambda on: None,
    bit_order: str = "direct",
) -> SessionResult:
    """Dial ``number`` (already validated) and send ``pages[first:]`` running T.30 on the host.

    ``on_page(i)`` right after the receiver's MCF for page i. ``allowed()`` is asked before every page.
    ``bit_order`` is accepted for symmetry with Class 2 (``direct`` or ``reversed``) and ignored: Class 1 has no
    ``+FBO``; the modem sends the bytes as they come, LSB first, so page data always goes in direct order.
    Never raises for protocol trouble (the result says what happened); AtError for a dead port propagates.
    """
    check_bit_order(bit_order, SEND_BIT_ORDERS, "send bit order")
    tm = timers or T30Timers()
    link = Class1Link(at, timeouts, tm)
    codes = modem_rates(at, timeouts.command)
    dial = at.command("ATD" + number, timeouts.dial)
    if dial.result != "CONNECT":
        reason, retry = DIAL_RESULTS.get(dial.result, (f"dial answered {dial.result}", True))
        return SessionResult(False, first, reason, retry)
    confirmed = first
    try:
        # Phase B: the called station's DIS (within T1).
        deadline = time.monotonic() + tm.t1
        dis: Frame | None = None
        connected = True
        while dis is None:
            if time.monotonic() > deadline:
                return _give_up(link, confirmed, 11, True)
            try:
                for frame in link.receive_final(tm.t4, connected=connected):
                    if frame.fcf == t30.DIS:
                        dis = frame
            except _NoFrame:
                pass
            connected = False
        remote = Caps.from_dis(dis.fif)
        rates = remote.rates(codes or None)
        if not rates:
            return _give_up(link, confirmed, 21, False)
        index = first
        rate_i = 0
        trained = False
        tries = 0
        while index < len(pages):
            page = pages[index]
            if not allowed():
                return _give_up(link, confirmed, 50, True, "device went off line during the call")
            if not trained:
                if rate_i >= len(rates):
                    return _give_up(link, confirmed, 27, True)
                rate = rates[rate_i]
                caps = Caps(frozenset({rate.family}), page.fine and remote.fine, rate)
                ok = _train(link, caps, local_id)
                if ok is None:
                    return _give_up(link, confirmed, 25, True)
                if not ok:
                    rate_i += 1
                    continue
                trained = True
            last = index == len(pages) - 1
            flow(True)
            try:
                link.silence()  # the modem stops V.21 (or the last page) before high-speed data
                link.send_data(rate, page.data, page=True)
            finally:
                flow(False)
            link.silence()
            reply = _command(link, Frame(t30.EOP if last else t30.MPS, x=True))
            if reply is None:
                return _give_up(link, confirmed, 54 if last else 52, True)
            if reply.fcf in (t30.MCF, t30.RTP):
                on_page(index)
                confirmed = index = index + 1
                tries = 0
                if reply.fcf == t30.RTP:
                    trained = False
                continue
            if reply.fcf == t30.RTN:
                tries += 1
                if tries >= tm.retries:
                    return _give_up(link, confirmed, 54 if last else 52, True, f"page {index + 1} refused (RTN)")
                trained = False  # retrain (DCS + TCF) and send the page again
                rate_i = min(rate_i + 1, len(rates) - 1)
                continue
            if reply.fcf == t30.DCN:
                return SessionResult(False, confirmed, hangup_reason(55 if last else 53), True, 55 if last else 53)
            return _give_up(link, confirmed, 55 if last else 53, True)
        with contextlib.suppress(AtError):
            link.send_frames([Frame(t30.DCN, x=True)])
        _hang_up(at, timeouts)
        return SessionResult(True, confirmed, "sent", True, 0)
    except _LineDropped as exc:  # the job resumes at the first page the receiver did not confirm
        _hang_up(at, timeouts)
        return SessionResult(False, confirmed, f"{exc}; {confirmed} page(s) confirmed", True, 40)
    except AtTimeout as exc:
        _hang_up(at, timeouts)
        return SessionResult(False, confirmed, f"the modem stopped answering: {exc}")


def _train(link: Class1Link, caps: Caps, local_id: str) -> bool | None:
    """TSI + DCS, TCF; True on CFR, False on FTT, None when DCS went unanswered ``retries`` times."""
    assert caps.rate is not None
    for _ in range(link.timers.retries):
        frames = [Frame(t30.DCS, caps.dcs(), x=True)]
        if local_id:
            frames.insert(0, Frame(t30.TSI, t30.ident_fif(local_id), x=True, final=False))
        link.send_frames(frames)
        link.silence()
        link.send_data(caps.rate, t30.tcf_bytes(caps.rate))
        try:
            reply = link.receive_final(link.timers.t4)[-1]
        except _NoFrame:
            continue
        if reply.fcf == t30.CFR:
            return True
        if reply.fcf == t30.FTT:
            return False
    return None


def _command(link: Class1Link, frame: Frame) -> Frame | None:
    """Send a command frame and wait T4 for the response, at most ``retries`` times; None if none came."""
    for _ in range(link.timers.retries):
        link.send_frames([frame], answer=False)
        try:
            return link.receive_final(link.timers.t4)[-1]
        except _NoFrame:
            continue
    return None


def _give_up(link: Class1Link, confirmed: int, code: int, retryable: bool, reason: str = "") -> SessionResult:
    with contextlib.suppress(AtError):
        link.send_frames([Frame(t30.DCN, x=True)], answer=False)
    _hang_up(link.at, link.timeouts)
    return SessionResult(False, confirmed, reason or hangup_reason(code), retryable, code)


def _hang_up(at: AtChannel, timeouts: Timeouts) -> None:
    with contextlib.suppress(AtError):
        at.command("ATH0", timeouts.command)


def receive_fax(
    at: AtChannel,
    on_page: Callable[[ReceivedPage], None],
    *,
    timeouts: Timeouts,
    timers: T30Timers | None = None,
    local_id: str = "",
    allowed: Callable[[], bool] = lambda: True,
    on_caller: Callable[[str], None] = lambda caller: None,
    bit_order: str = "auto",
) -> SessionResult:
    """Answer a ringing call and receive pages running T.30 on the host.

    ``on_page`` must store the page durably before returning — only then is MCF sent for it; ``on_page``
    raising ends the call without MCF (the exception propagates after hanging up). ``bit_order``
    (``direct``, ``reversed`` or ``auto``, see :func:`~zetafailover.devices.modem.pages.decode_line_page_order`)
    says how page data is read; each :class:`ReceivedPage` says which order won.
    """
    check_bit_order(bit_order, BIT_ORDERS, "receive bit order")
    tm = timers or T30Timers()
    link = Class1Link(at, timeouts, tm)
    codes = modem_rates(at, timeouts.command)
    ours = Caps(frozenset(r.family for r in t30.RATES if not codes or r.code in codes), True)
    ans = at.command("ATA", timeouts.answer)
    if ans.result != "CONNECT":
        return SessionResult(False, 0, f"answer failed ({ans.result})", True)
    stored = 0
    try:
        # Phase B: CSI + DIS every T4 until a DCS comes (at most T1); TCF checked, CFR or FTT.
        deadline = time.monotonic() + tm.t1
        connected = True
        need_dis = True
        while True:
            if time.monotonic() > deadline or not allowed():
                return _give_up(link, stored, 11, True)
            if need_dis:
                ident = [Frame(t30.CSI, t30.ident_fif(local_id), final=False)] if local_id else []
                link.send_frames([*ident, Frame(t30.DIS, ours.dis())], answer=False, connected=connected)
                connected = False
            got = _wait_dcs(link, on_caller, tm.t4 if need_dis else tm.t2)
            if got is None or got.rate is None:
                need_dis = True
                continue
            tcf = b""
            with contextlib.suppress(_NoFrame):
                tcf = link.receive_data(got.rate, tm.t2)
            if not t30.tcf_ok(tcf, got.rate):
                link.send_frames([Frame(t30.FTT)])
                need_dis = False
                continue
            link.send_frames([Frame(t30.CFR)])
            dcs = got
            break
        rate = dcs.rate
        assert rate is not None
        while True:
            if not allowed():
                return _give_up(link, stored, 100, True, "device went off line during the call")
            try:
                data = link.receive_data(rate, tm.t2, page=True)
            except _NoFrame:
                return _give_up(link, stored, 73, True)
            ppm = _wait_post_page(link)
            if ppm is None:
                return _give_up(link, stored, 100, True)
            if ppm.fcf == t30.DCS:  # the sender retrained: TCF follows
                rate = Caps.from_dcs(ppm.fif).rate or rate
                tcf = b""
                with contextlib.suppress(_NoFrame):
                    tcf = link.receive_data(rate, tm.t2)
                link.send_frames([Frame(t30.CFR if t30.tcf_ok(tcf, rate) else t30.FTT)])
                continue
            try:
                rows, order = decode_line_page_order(data, order=bit_order)
            except T4DecodeError:
                link.send_frames([Frame(t30.RTN)])
                continue
            fine = dcs.fine
            last = ppm.fcf == t30.EOP
            on_page(ReceivedPage(page_tiff(rows, fine), len(rows), fine, 2 if last else 0, order))
            stored += 1
            link.send_frames([Frame(t30.MCF)])
            if last:
                with contextlib.suppress(_NoFrame):
                    link.receive_final(tm.t2)  # DCN
                _hang_up(at, timeouts)
                return SessionResult(True, stored, hangup_reason(0), True, 0)
    except AtTimeout as exc:
        _hang_up(at, timeouts)
        return SessionResult(False, stored, f"the modem stopped answering: {exc}")


def _wait_dcs(link: Class1Link, on_caller: Callable[[str], None], timeout: float | None = None) -> Caps | None:
    """[TSI] DCS within T4 (or ``timeout``); None if something else or nothing came."""
    try:
        frames = link.receive_final(timeout or link.timers.t4)
    except _NoFrame:
        return None
    found: Caps | None = None
    for frame in frames:
        if frame.fcf == t30.TSI:
            on_caller(t30.parse_ident(frame.fif))
        elif frame.fcf == t30.DCS:
            found = Caps.from_dcs(frame.fif)
    return found


def _wait_post_page(link: Class1Link) -> Frame | None:
    """The post-page command (MPS/EOP, or a new DCS) within T2; a repeated command is read again."""
    deadline = time.monotonic() + link.timers.t2
    while time.monotonic() < deadline:
        try:
            frame = link.receive_final(max(0.5, deadline - time.monotonic()))[-1]
        except _NotInCall:
            return None
        except _NoFrame:
            continue
        if frame.fcf in (t30.MPS, t30.EOP, t30.EOM, t30.DCS):
            return frame
        if frame.fcf == t30.DCN:
            return None
    return None
