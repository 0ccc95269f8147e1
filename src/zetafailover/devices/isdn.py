"""The ISDN card driver (``driver = "isdn"``) and the simulated BRI / PRI card it drives.

The card (:class:`IsdnCard`) is shaped like real fax-card APIs (CAPI 2.0, Brooktrout): spans of B-channels
(BRI 2, PRI T1 23, PRI E1 30), one **call handle** per call (:class:`CardCall`, like a CAPI PLCI) that walks the
Q.931 user-side states — SETUP, CALL PROCEEDING, ALERTING, CONNECT, DISCONNECT, RELEASE, RELEASE COMPLETE —
and ends with a Q.850 cause (16 normal clearing, 17 user busy, 34 no circuit, 41 temporary failure, 26
non-selected user clearing for a call answered elsewhere on a shared bus). Its "hardware" is the simulated
exchange (:mod:`zetafailover.testing.exchange`): one endpoint per span, attached to that span's line, over
one TCP connection. Channels are out of service until :meth:`IsdnCard.set_in_service`; a channel or a whole
span can fail (:meth:`IsdnCard.fail_channel`), which :meth:`IsdnDevice.monitor` reports.

The driver (:class:`IsdnDevice`) is a :class:`~zetafailover.interfaces.FaxDevice`: ``start(term)`` puts every
channel in service and answers calls (only while started, only when the line strategy lets this node answer,
and only while the optional ``guard`` — the node's ``may_act`` — agrees); ``stop()`` takes the channels out of
service and clears every call. Every channel works at once: ``send`` runs on the dispatcher's thread (one per
channel), each incoming call on a thread of its own. Received pages go to the spool one by one and each is
confirmed to the caller (MCF) only after the spool has it on disk.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import itertools
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from zetafailover.clock import SystemClock
from zetafailover.devices._device_log import DeviceLog
from zetafailover.errors import DeviceError, StaleTermError, ValidationError
from zetafailover.interfaces import Clock, DeviceHealth, InboundSink, OutboundFax, PageConfirmed, SendOutcome
from zetafailover.spool.tiff import MAX_DOCUMENT_BYTES, PageInfo, page_strip, validate_tiff_bytes
from zetafailover.testing.exchange.client import (
    CallCleared,
    CallLeg,
    EndpointHandle,
    ExchangeClient,
    ExchangeUnavailable,
    WaitTimedOut,
)
from zetafailover.testing.exchange.q931 import RETRYABLE_CAUSES, CallState, Cause, Message, cause_text

__all__ = [
    "B_CHANNELS",
    "CardCall",
    "IsdnCard",
    "IsdnDevice",
    "PagedInboundSink",
    "SpanType",
    "split_document",
]

log = logging.getLogger(__name__)


class SpanType(enum.StrEnum):
    """The interface of one span of a card."""

    BRI = "bri"
    T1 = "t1"
    E1 = "e1"


B_CHANNELS = {SpanType.BRI: 2, SpanType.T1: 23, SpanType.E1: 30}
"""B-channels per span: BRI 2B+D, PRI T1 23B+D (D on channel 24), PRI E1 30B+D (D in timeslot 16)."""


# ------------------------------------------------------------------------------------------------ pages


@runtime_checkable
class PagedInboundSink(Protocol):
    """An :class:`InboundSink` that stores a fax page by page (the directory spool does): the driver confirms
    each page to the caller only after :meth:`receive_page` returned, i.e. once the page is on disk."""

    def begin_receive(self, device: str, caller: str, term: int) -> str: ...

    def receive_page(self, inbound_id: str, page_bytes: bytes, term: int) -> int: ...

    def finish_receive(self, inbound_id: str, complete: bool, term: int, reason: str = "") -> object: ...


def split_document(data: bytes, source: str = "<document>") -> list[bytes]:
    """Split a TIFF-F document into single-page TIFF-F files (the coded data is copied, never re-encoded).

    Raises :class:`~zetafailover.errors.ValidationError` for a document that is not valid TIFF-F.
    Timing: linear in the document size (no decoding).
    """
    info = validate_tiff_bytes(data, source, widths=(1728, 2048, 2432))
    return [_single_page(page_strip(data, page), page) for page in info.pages]


def _single_page(strip: bytes, page: PageInfo) -> bytes:
    out = bytearray(b"II*\x00\x08\x00\x00\x00")
    entries_at = 8
    count = 14
    res_off = entries_at + 2 + count * 12 + 4
    strip_off = res_off + 16
    yres = round(page.y_lpi)
    entries = [
        (254, 4, 1, 2),
        (256, 4, 1, page.width),
        (257, 4, 1, page.length),
        (258, 3, 1, 1),
        (259, 3, 1, page.compression),
        (262, 3, 1, page.photometric),
        (266, 3, 1, page.fill_order),
        (273, 4, 1, strip_off),
        (277, 3, 1, 1),
        (278, 4, 1, page.length),
        (279, 4, 1, len(strip)),
        (282, 5, 1, res_off),
        (283, 5, 1, res_off + 8),
        (292 if page.compression != 4 else 293, 4, 1, page.t4_options if page.compression != 4 else 0),
    ]
    assert len(entries) == count
    out += struct.pack("<H", count)
    for tag, typ, n, value in entries:
        out += struct.pack("<HHI", tag, typ, n)
        out += struct.pack("<H", value) + b"\x00\x00" if typ == 3 else struct.pack("<I", value)
    out += b"\x00\x00\x00\x00"
    out += struct.pack("<IIII", 204, 1, yres, 1)
    out += strip
    return bytes(out)


# ------------------------------------------------------------------------------------------------- card


@dataclass
class CardCall:
    """One call on the card (a CAPI PLCI): its B-channel, Q.931 state, the messages exchanged and the cause."""

    ref: int
    channel: int
    """Card-wide channel index (span offset + B-channel)."""
    direction: str
    """``in`` or ``out``."""
    number: str
    """The other party's number (caller id for ``in``, the called number for ``out``)."""
    leg: CallLeg | None = None
    state: CallState = CallState.NULL
    cause: int = 0
    messages: list[tuple[str, Message]] = field(default_factory=list)
    """``("tx" | "rx", message)`` in order."""

    def _msg(self, way: str, message: Message, state: CallState) -> None:
        self.messages.append((way, message))
        self.state = state

    @property
    def active(self) -> bool:
        return self.state == CallState.ACTIVE


ANALOG = "analog"
"""A one-channel analog port: the span kind :class:`~zetafailover.testing.exchange.analog.SimAnalogDevice` uses."""


@dataclass
class _Span:
    kind: str
    line: str
    offset: int
    endpoint: EndpointHandle | None = None
    down: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.kind == ANALOG else B_CHANNELS[SpanType(self.kind)]


class IsdnCard:
    """A simulated ISDN card: ``spans`` of (type, exchange line), attached to the exchange at ``address``.

    Timing: :meth:`connect` and :meth:`set_in_service` do one round trip per span (bounded by ``timeout``);
    :meth:`place_call` blocks until CONNECT or a clearing cause (at most ``answer_timeout``); page methods block
    until the confirmation or the page arrives (at most their ``timeout``). Atomicity: channel allocation is
    atomic under the card's lock; every method is safe to call from many threads at once (one per call).
    """

    def __init__(
        self,
        name: str,
        spans: Sequence[tuple[SpanType | str, str]],
        address: str,
        *,
        label: str = "",
        timeout: float = 5.0,
    ) -> None:
        if not spans:
            raise ValueError("a card needs at least one span")
        self.name = name
        self.address = address
        self.label = label or name
        self.timeout = timeout
        self.spans: list[_Span] = []
        offset = 0
        for kind, line in spans:
            span = _Span(ANALOG if kind == ANALOG else SpanType(kind), line, offset)
            self.spans.append(span)
            offset += span.channels
        self.channels = offset
        self.on_call: Callable[[CardCall], None] | None = None
        """Called on a new thread for every incoming SETUP (the driver answers or rejects it)."""
        self._client: ExchangeClient | None = None
        self._lock = threading.Lock()
        self._calls: dict[int, CardCall] = {}
        self._busy: set[int] = set()
        self._failed: set[int] = set()
        self._in_service = False
        self._refs = itertools.count(1)

    # ------------------------------------------------------------------------------------- life cycle

    def connect(self) -> None:
        """Attach every span to its line, all channels out of service. Raises DeviceError when it cannot."""
        if self._client is not None and not self._client.closed:
            return
        try:
            self._client = ExchangeClient(self.address, timeout=self.timeout)
            for i, span in enumerate(self.spans):
                ep = f"{self.label}/{self.name}/span{i}/{os.getpid()}"
                span.endpoint = self._client.endpoint(ep, span.line, self.label)
                if span.endpoint.channels != span.channels:
                    raise DeviceError(
                        f"card {self.name} span {i} is {span.kind} ({span.channels} B-channels) but line "
                        f"{span.line} has {span.endpoint.channels} channels"
                    )
                span.endpoint.on_setup = self._make_setup_handler(span)
        except (ExchangeUnavailable, RuntimeError) as exc:
            self.close()
            raise DeviceError(f"card {self.name}: {exc}") from None

    @property
    def analog(self) -> bool:
        """True for an analog port (calls are left ringing rather than refused when it must not answer)."""
        return all(span.kind == ANALOG for span in self.spans)

    @property
    def lost(self) -> bool:
        """True when the connection to the exchange broke after :meth:`connect` (the card's hardware failed)."""
        return self._client is not None and self._client.closed

    def set_in_service(self, in_service: bool) -> None:
        """Put every working channel in service (answer calls) or take every channel out of service.

        Taking them out also clears every call on the card (cause 41 towards the other party).
        """
        self._in_service = in_service
        for span in self.spans:
            if span.endpoint is None or span.down:
                continue
            with contextlib.suppress(ExchangeUnavailable, RuntimeError):
                if in_service:
                    working = [c for c in range(span.channels) if span.offset + c not in self._failed]
                    span.endpoint.set_service(True, working, timeout=self.timeout)
                else:
                    span.endpoint.set_service(False, None, timeout=self.timeout)
        if not in_service:
            for call in self.calls():
                self.disconnect(call, Cause.TEMPORARY_FAILURE)

    def fail_channel(self, channel: int) -> None:
        """A B-channel fails: out of service, its call cleared with cause 41. Reported by :meth:`failed_channels`."""
        span, ch = self._span_of(channel)
        with self._lock:
            self._failed.add(channel)
            call = next((c for c in self._calls.values() if c.channel == channel), None)
        if call is not None:
            self.disconnect(call, Cause.TEMPORARY_FAILURE)
        if span.endpoint is not None:
            with contextlib.suppress(ExchangeUnavailable, RuntimeError):
                span.endpoint.set_service(False, [ch], timeout=self.timeout)

    def restore_channel(self, channel: int) -> None:
        """A failed B-channel works again (back in service if the card is)."""
        span, ch = self._span_of(channel)
        with self._lock:
            self._failed.discard(channel)
        if self._in_service and span.endpoint is not None and not span.down:
            with contextlib.suppress(ExchangeUnavailable, RuntimeError):
                span.endpoint.set_service(True, [ch], timeout=self.timeout)

    def fail_span(self, index: int) -> None:
        """The D-channel of span ``index`` goes down: every call on it is cleared (cause 41), no new calls."""
        span = self.spans[index]
        span.down = True
        for call in self.calls():
            if span.offset <= call.channel < span.offset + span.channels:
                self.disconnect(call, Cause.TEMPORARY_FAILURE)
        if span.endpoint is not None:
            with contextlib.suppress(ExchangeUnavailable, RuntimeError):
                span.endpoint.set_service(False, None, timeout=self.timeout)

    def failed_channels(self) -> set[int]:
        """Channels that failed (including every channel of a span whose D-channel is down)."""
        with self._lock:
            failed = set(self._failed)
        for span in self.spans:
            if span.down:
                failed |= set(range(span.offset, span.offset + span.channels))
        return failed

    def calls(self) -> list[CardCall]:
        with self._lock:
            return list(self._calls.values())

    def close(self) -> None:
        """Leave the exchange (every call cleared). Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # ----------------------------------------------------------------------------------------- calls

    def place_call(self, number: str, answer_timeout: float) -> CardCall:
        """SETUP to ``number`` on a free channel; returns the ACTIVE call or raises :class:`CallCleared`.

        Outgoing calls take the highest free channel (the network offers incoming calls from the lowest), so
        glare is rare; when it happens the network refuses with cause 34 and the job is retried later.
        """
        span, ch, channel = self._allocate()
        call = CardCall(next(self._refs), channel, "out", number)
        call._msg("tx", Message.SETUP, CallState.CALL_INITIATED)
        with self._lock:
            self._calls[call.ref] = call
        try:
            assert span.endpoint is not None
            call.leg = span.endpoint.dial(number, ch, timeout=self.timeout)
        except CallCleared as exc:
            self._cleared(call, exc.cause, "rx")
            raise
        except (ExchangeUnavailable, RuntimeError) as exc:
            self._cleared(call, Cause.NETWORK_OUT_OF_ORDER, "rx")
            raise CallCleared(Cause.NETWORK_OUT_OF_ORDER, str(exc)) from None
        call._msg("rx", Message.CALL_PROCEEDING, CallState.OUTGOING_PROCEEDING)
        try:
            deadline = time.monotonic() + answer_timeout
            while True:
                event = call.leg.wait_for_any(("alerting", "connected"), deadline - time.monotonic())
                if event["ev"] == "alerting":
                    call._msg("rx", Message.ALERTING, CallState.CALL_DELIVERED)
                    continue
                call._msg("rx", Message.CONNECT, CallState.CONNECT_REQUEST)
                call._msg("tx", Message.CONNECT_ACKNOWLEDGE, CallState.ACTIVE)
                return call
        except CallCleared as exc:
            self._cleared(call, exc.cause, "rx")
            if isinstance(exc, WaitTimedOut):  # our answer timer ran out: clear the call ourselves
                call.leg.hangup(Cause.RECOVERY_ON_TIMER_EXPIRY)
            raise

    def accept(self, call: CardCall, timeout: float) -> None:
        """Answer an incoming call: CALL PROCEEDING, ALERTING, CONNECT; returns when ACTIVE (CONNECT ACK).

        Raises :class:`CallCleared` (cause 26 when another terminal on the bus answered first).
        """
        assert call.leg is not None
        call._msg("tx", Message.CALL_PROCEEDING, CallState.INCOMING_PROCEEDING)
        call._msg("tx", Message.ALERTING, CallState.CALL_RECEIVED)
        call.leg.alerting()
        call._msg("tx", Message.CONNECT, CallState.CONNECT_REQUEST)
        call.leg.answer()
        try:
            call.leg.wait_for("connected", timeout)
        except CallCleared as exc:
            self._cleared(call, exc.cause, "rx")
            raise
        call._msg("rx", Message.CONNECT_ACKNOWLEDGE, CallState.ACTIVE)

    def reject(self, call: CardCall, cause: int) -> None:
        """Refuse an incoming call with ``cause`` (RELEASE COMPLETE)."""
        assert call.leg is not None
        call.leg.reject(cause)
        call.cause = int(cause)
        call._msg("tx", Message.RELEASE_COMPLETE, CallState.NULL)
        self._free(call)

    def send_page(self, call: CardCall, index: int, data: bytes, last: bool, timeout: float) -> None:
        """Transmit one page and wait for the receiver's confirmation (MCF); :class:`CallCleared` otherwise."""
        assert call.leg is not None
        try:
            call.leg.send_page(index, data, last)
            call.leg.wait_for("confirmed", timeout, index=index)
        except CallCleared as exc:
            self._cleared(call, exc.cause, "rx")
            raise
        except ExchangeUnavailable:
            self._cleared(call, Cause.NETWORK_OUT_OF_ORDER, "rx")
            raise CallCleared(Cause.NETWORK_OUT_OF_ORDER) from None

    def next_page(self, call: CardCall, timeout: float) -> tuple[int, bytes, bool]:
        """Wait for the next page of an incoming fax: ``(index, data, last)``; :class:`CallCleared` when it ends."""
        assert call.leg is not None
        try:
            event = call.leg.wait_for("page", timeout)
        except CallCleared as exc:
            self._cleared(call, exc.cause, "rx")
            raise
        return int(event["index"]), base64.b64decode(event["data"]), bool(event.get("last"))

    def confirm_page(self, call: CardCall, index: int) -> None:
        """MCF for page ``index`` — only once the page is safe (on disk)."""
        assert call.leg is not None
        with contextlib.suppress(ExchangeUnavailable):
            call.leg.confirm(index)

    def disconnect(self, call: CardCall, cause: int = Cause.NORMAL_CLEARING) -> None:
        """Clear the call: DISCONNECT, RELEASE, RELEASE COMPLETE. Idempotent."""
        with self._lock:
            if call.state == CallState.NULL or call.ref not in self._calls:
                return
        call.cause = call.cause or int(cause)
        call._msg("tx", Message.DISCONNECT, CallState.DISCONNECT_REQUEST)
        if call.leg is not None:
            call.leg.hangup(cause)
        call._msg("rx", Message.RELEASE, CallState.RELEASE_REQUEST)
        call._msg("tx", Message.RELEASE_COMPLETE, CallState.NULL)
        self._free(call)

    # ------------------------------------------------------------------------------------------ inside

    def _cleared(self, call: CardCall, cause: int, way: str) -> None:
        """The network cleared the call: DISCONNECT (rx), RELEASE (tx), RELEASE COMPLETE (rx)."""
        if call.state == CallState.NULL and call.ref not in self._calls:
            return
        call.cause = int(cause)
        call._msg(way, Message.DISCONNECT, CallState.DISCONNECT_INDICATION)
        call._msg("tx", Message.RELEASE, CallState.RELEASE_REQUEST)
        call._msg("rx", Message.RELEASE_COMPLETE, CallState.NULL)
        self._free(call)

    def _free(self, call: CardCall) -> None:
        with self._lock:
            if self._calls.pop(call.ref, None) is not None:
                self._busy.discard(call.channel)

    def _allocate(self) -> tuple[_Span, int, int]:
        with self._lock:
            for span in reversed(self.spans):
                if span.down or span.endpoint is None:
                    continue
                for ch in reversed(range(span.channels)):
                    channel = span.offset + ch
                    if channel not in self._busy and channel not in self._failed:
                        self._busy.add(channel)
                        return span, ch, channel
        raise CallCleared(Cause.NO_CIRCUIT_AVAILABLE, f"card {self.name}: every B-channel is busy or failed")

    def _span_of(self, channel: int) -> tuple[_Span, int]:
        for span in self.spans:
            if span.offset <= channel < span.offset + span.channels:
                return span, channel - span.offset
        raise ValueError(f"card {self.name} has no channel {channel} (0..{self.channels - 1})")

    def _make_setup_handler(self, span: _Span) -> Callable[[CallLeg], None]:
        def on_setup(leg: CallLeg) -> None:
            channel = span.offset + int(leg.ch or 0)
            call = CardCall(next(self._refs), channel, "in", leg.caller, leg)
            call._msg("rx", Message.SETUP, CallState.CALL_PRESENT)
            with self._lock:
                glare = channel in self._busy
                self._calls[call.ref] = call
                self._busy.add(channel)
            if glare or self.on_call is None:
                # Glare (we picked the same channel for an outgoing call) or nobody listening: refuse.
                leg.reject(Cause.NO_CIRCUIT_AVAILABLE)
                with self._lock:
                    self._calls.pop(call.ref, None)
                    if not glare:
                        self._busy.discard(channel)
                return
            handler = self.on_call
            threading.Thread(target=handler, args=(call,), name=f"{self.name}-rx-{channel}", daemon=True).start()

        return on_setup


# ----------------------------------------------------------------------------------------------- driver


class IsdnDevice:
    """A :class:`~zetafailover.interfaces.FaxDevice` on a simulated ISDN card (BRI, PRI T1, PRI E1; spans).

    Timing: ``open`` connects to the exchange (bounded by ``timeout``, 5 s by default); ``start`` and ``stop``
    do one round trip per span; ``stop`` also clears every call and waits (at most ``stop_timeout``) for the
    receptions and transmissions under way to notice. ``monitor`` never blocks. ``send`` blocks for the call:
    at most ``answer_timeout`` to connect plus ``page_seconds`` + ``page_timeout`` per page.
    Atomicity: ``start`` and ``stop`` are idempotent; ``start`` with a term lower than one already seen raises
    :class:`~zetafailover.errors.StaleTermError`; every page is stamped with the term it was sent or received
    under, and a page is confirmed to a caller only after :meth:`InboundSink` stored it.
    """

    driver = "isdn"

    def __init__(
        self,
        name: str,
        node: str,
        card: IsdnCard,
        *,
        clock: Clock | None = None,
        log_path: Path | None = None,
        page_seconds: float = 0.0,
        answer_timeout: float = 30.0,
        page_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        may_answer: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.node = node
        self.card = card
        self.channels = card.channels
        self.page_seconds = page_seconds
        self.answer_timeout = answer_timeout
        self.page_timeout = page_timeout
        self.stop_timeout = stop_timeout
        self.may_answer = may_answer
        """Asked before answering: the line strategy's ``may_answer(node)`` (None: always)."""
        self.guard: Callable[[int], bool] | None = None
        """Optional: the node's ``may_act(term)``, asked before answering a call and before every page."""
        self._clock = clock or SystemClock()
        self._device_log = DeviceLog(log_path, name, self._clock)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._health = DeviceHealth.STOPPED
        self._term = 0
        self._sessions = 0
        self.inbound: InboundSink | None = None
        card.on_call = self._receive

    # ------------------------------------------------------------------------------------ FaxDevice API

    def open(self, inbound: InboundSink | None) -> None:
        self.inbound = inbound
        try:
            self.card.connect()
        except DeviceError:
            self._health = DeviceHealth.FAILED
            raise
        self._health = DeviceHealth.STOPPED
        self._log("open", 0, channels=self.channels)

    def start(self, term: int) -> None:
        with self._lock:
            if term < self._term:
                raise StaleTermError(term, self._term, f"start of device {self.name}")
            if self._health == DeviceHealth.FAILED or self.card.lost:
                raise DeviceError(f"device {self.name}: the card is not usable (no exchange connection)")
            if self._health == DeviceHealth.RUNNING and term == self._term:
                return
            self._term = term
            self._health = DeviceHealth.RUNNING
        self.card.set_in_service(True)
        self._log("start", term)

    def stop(self) -> None:
        with self._lock:
            was = self._health
            if self._health == DeviceHealth.RUNNING:
                self._health = DeviceHealth.STOPPED
            term = self._term
        if was != DeviceHealth.RUNNING:
            return
        self.card.set_in_service(False)
        deadline = time.monotonic() + self.stop_timeout
        with self._idle:
            while self._sessions and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
        self._log("stop", term)

    def monitor(self) -> DeviceHealth:
        if self.card.lost or len(self.card.failed_channels()) >= self.channels:
            return DeviceHealth.FAILED
        return self._health

    def send(self, fax: OutboundFax, on_page: PageConfirmed) -> SendOutcome:
        with self._lock:
            if self._health != DeviceHealth.RUNNING:
                return SendOutcome(False, fax.first_page, f"device {self.name} is off line", retryable=True)
            term = self._term
            self._sessions += 1
        try:
            return self._send(fax, on_page, term)
        finally:
            self._session_done()

    def close(self) -> None:
        self.stop()
        self.card.close()

    # ------------------------------------------------------------------------------------ test controls

    def fail_channel(self, channel: int) -> None:
        """Make one B-channel fail (its call is cleared with cause 41)."""
        self.card.fail_channel(channel)
        self._log("channel_failed", self._term, channel=channel)

    # -------------------------------------------------------------------------------------------- inside

    def _on_line(self, term: int) -> bool:
        return self._health == DeviceHealth.RUNNING and self._term == term

    def _allowed(self, term: int) -> bool:
        return self._on_line(term) and (self.guard is None or self.guard(term))

    def _send(self, fax: OutboundFax, on_page: PageConfirmed, term: int) -> SendOutcome:
        first = fax.first_page
        try:
            pages = self._pages(fax)
        except (OSError, ValidationError) as exc:
            return SendOutcome(False, first, f"cannot read the document: {exc}", retryable=False)
        if self.guard is not None and not self.guard(term):
            return SendOutcome(False, first, f"device {self.name}: the node may not act under term {term}")
        try:
            call = self.card.place_call(fax.number, self.answer_timeout)
        except CallCleared as exc:
            self._log("dial_failed", term, job=fax.job_id, number=fax.number, cause=exc.cause)
            return SendOutcome(False, first, cause_text(exc.cause), retryable=exc.cause in RETRYABLE_CAUSES)
        if not self._allowed(term):
            # The node lost its right to act while the far end was answering (a pause past its self-fence
            # deadline, a takeover): the answered call is not taken up; the next active sends the fax.
            self.card.disconnect(call, Cause.TEMPORARY_FAILURE)
            self._log("hangup", term, job=fax.job_id, page=first, reason="may no longer act once the call connected")
            return SendOutcome(False, first, f"device {self.name}: the node may no longer act under term {term}")
        self._log("connected", term, job=fax.job_id, number=fax.number, channel=call.channel)
        confirmed = first
        try:
            for index in range(first, len(pages)):
                if self.page_seconds:
                    self._clock.sleep(self.page_seconds)
                if not self._allowed(term):
                    self.card.disconnect(call, Cause.TEMPORARY_FAILURE)
                    self._log("hangup", term, job=fax.job_id, page=index, reason="device went off line")
                    return SendOutcome(False, confirmed, "device went off line during the call", retryable=True)
                self.card.send_page(call, index, pages[index], index == len(pages) - 1, self.page_timeout)
                on_page(index)
                confirmed = index + 1
                self._log("page", term, job=fax.job_id, page=index, channel=call.channel)
        except CallCleared as exc:
            self._log("cleared", term, job=fax.job_id, page=confirmed, cause=exc.cause)
            return SendOutcome(False, confirmed, cause_text(exc.cause), retryable=exc.cause in RETRYABLE_CAUSES)
        except BaseException:
            self.card.disconnect(call, Cause.TEMPORARY_FAILURE)
            raise
        self.card.disconnect(call, Cause.NORMAL_CLEARING)
        self._log("sent", term, job=fax.job_id, pages=len(pages) - first)
        return SendOutcome(True, confirmed, cause_text(Cause.NORMAL_CLEARING))

    def _pages(self, fax: OutboundFax) -> list[bytes]:
        if len(fax.pages) == 1:
            data = Path(fax.pages[0]).read_bytes()[: MAX_DOCUMENT_BYTES + 1]
            pages = split_document(data, fax.pages[0])
        else:
            pages = [split_document(Path(p).read_bytes(), p)[0] for p in fax.pages]
        if fax.total_pages and len(pages) != fax.total_pages:
            raise ValidationError(f"{fax.pages[0]}: {len(pages)} pages, but the job has {fax.total_pages}")
        return pages

    def _receive(self, call: CardCall) -> None:
        with self._lock:
            term = self._term
            self._sessions += 1
        try:
            self._answer_and_store(call, term)
        except Exception:
            log.exception("device %s: reception on channel %d failed", self.name, call.channel)
            self.card.disconnect(call, Cause.TEMPORARY_FAILURE)
        finally:
            self._session_done()

    def _answer_and_store(self, call: CardCall, term: int) -> None:
        if not self._allowed(term) or (self.may_answer is not None and not self.may_answer()):
            # Not ours to answer (off line, or the line strategy says another node holds the lines).
            if self.card.analog:
                # An analog device that must not answer stays on-hook and lets it ring (a Y-splitter partner
                # may pick up); it only counts the rings until the call goes away.
                self._log("ringing_ignored", term, caller=call.number)
                with contextlib.suppress(CallCleared):
                    assert call.leg is not None
                    call.leg.wait_for("never", self.answer_timeout + 60.0)
                self.card._cleared(call, call.leg.cause if call.leg else Cause.NORMAL_CLEARING, "rx")
                return
            self.card.reject(call, Cause.TEMPORARY_FAILURE if self._on_line(term) else Cause.NO_CIRCUIT_AVAILABLE)
            self._log("refused", term, caller=call.number, channel=call.channel)
            return
        try:
            self.card.accept(call, self.answer_timeout)
        except CallCleared as exc:
            self._log("not_connected", term, caller=call.number, cause=exc.cause)
            return
        self._log("answered", term, caller=call.number, channel=call.channel)
        sink = self.inbound
        paged = sink if isinstance(sink, PagedInboundSink) else None
        fax_id = ""
        complete, reason, held = False, "", []
        try:
            while True:
                index, data, last = self.card.next_page(call, self.page_timeout)
                if not self._allowed(term):
                    reason = "device went off line"
                    break
                if paged is not None:
                    if not fax_id:
                        fax_id = paged.begin_receive(self.name, call.number, term)
                    paged.receive_page(fax_id, data, term)
                else:
                    held.append(data)
                self.card.confirm_page(call, index)  # MCF only now: the page is on disk
                self._log("received_page", term, caller=call.number, page=index, fax=fax_id)
                if last:
                    complete = True
                    break
        except CallCleared as exc:
            reason = cause_text(exc.cause)
        except StaleTermError as exc:
            reason = f"stale term: {exc}"
        finally:
            self.card.disconnect(call, Cause.NORMAL_CLEARING if complete else Cause.TEMPORARY_FAILURE)
            with contextlib.suppress(StaleTermError):
                if fax_id and paged is not None:
                    paged.finish_receive(fax_id, complete, term, reason)
                elif held and sink is not None:
                    fax_id = sink.fax_received(self.name, call.number, held, complete, term)
        self._log("received", term, caller=call.number, fax=fax_id, complete=complete, reason=reason)

    def _session_done(self) -> None:
        with self._idle:
            self._sessions -= 1
            self._idle.notify_all()

    def _log(self, event: str, term: int = 0, **fields: Any) -> None:
        self._device_log.write(event, term, **fields)
