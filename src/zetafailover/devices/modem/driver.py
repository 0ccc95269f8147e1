"""The analog fax modem driver (``driver = "modem"``): a :class:`~zetafailover.interfaces.FaxDevice` over pyserial.

Safe on a shared line (a Y-splitter): initialisation always sends ``ATS0=0`` (the modem never answers by
itself — only the node decides) and ``AT&D2`` (a dead host's modem hangs up when DTR drops). The driver counts
``RING`` s and answers (``ATA``) only while started under a term, only while the line strategy's
``may_answer`` and the node's ``guard`` agree, and only after ``rings`` rings. Dial strings come only from
:func:`zetafailover.spool.numbers.validate_number` — a number that does not validate is refused before any
byte reaches the port — and the AT layer refuses control characters in any command as a second line of defence.

Failure handling is the fax servers' reset ladder: drop DTR (on a port without modem control: close and reopen
it), flush a stuck data state (``<DLE><ETX>``, ``<CAN>``), ``ATZ``, initialise again; a modem that fails the
ladder twice in a row is FAILED in :meth:`ModemDevice.monitor`. While idle the driver checks the modem with a
bare ``AT`` every ``poll_interval`` seconds (off-hook-free, as on a shared line it must be).

Pages: sent from the spool's TIFF-F (MH, LSB first + RTC); ``on_page(i)`` is called as soon as the modem reports
the receiver's MCF (Class 2.0 ``OK`` after ``<DLE>,``/``<DLE>.``; Class 2 ``+FPTS:1``). Received pages are
decoded and written to the spool as single-page TIFF-F one at a time, and the next ``+FDR`` — which releases
the MCF — is issued only after the spool has the page on disk.

Bit order (Class 2/2.0): initialisation asks for direct page data (``+FBO=0`` / ``+FBOR=0``), but many real
modems deliver received data bit-reversed whatever they were told, and some expect sent data reversed.
``receive_bit_order`` (``auto`` by default: direct, and reversed as well when direct does not decode cleanly)
and ``send_bit_order`` (``direct`` by default, or ``reversed``) deal with them; when ``auto`` finds a call's
pages reversed the device log records ``bit_order_detected`` once for that call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from zetafailover.clock import SystemClock
from zetafailover.devices._device_log import DeviceLog
from zetafailover.devices.modem import class1
from zetafailover.devices.modem.at import AtChannel, AtError, AtTimeout, check_command
from zetafailover.devices.modem.class2 import (
    CLASS2,
    CLASS20,
    Dialect,
    ReceivedPage,
    Timeouts,
    receive_fax,
    send_fax,
)
from zetafailover.devices.modem.pages import BIT_ORDERS, SEND_BIT_ORDERS, check_bit_order, load_fax_pages
from zetafailover.devices.modem.t30 import T30Timers
from zetafailover.errors import DeviceError, StaleTermError, ValidationError
from zetafailover.interfaces import Clock, DeviceHealth, InboundSink, OutboundFax, PageConfirmed, SendOutcome
from zetafailover.spool.numbers import validate_number

__all__ = ["CLASSES", "FLOW_CONTROLS", "ModemDevice", "check_local_id"]

log = logging.getLogger(__name__)

CLASSES = {"2.0": CLASS20, "2": CLASS2, "1": class1.CLASS1}
"""Supported service classes (``class`` config key) and their dialects."""

FLOW_CONTROLS = ("xonxoff", "rtscts", "none")


@runtime_checkable
class _PagedSink(Protocol):
    def begin_receive(self, device: str, caller: str, term: int) -> str: ...

    def receive_page(self, inbound_id: str, page_bytes: bytes, term: int) -> int: ...

    def finish_receive(self, inbound_id: str, complete: bool, term: int, reason: str = "") -> object: ...


class _OffLine(Exception):
    pass


def check_local_id(text: str) -> str:
    """Our fax id (TSI/CSI): at most 20 printable ASCII characters, no double quote. Raises ValidationError."""
    if len(text) > 20 or any(not (" " <= c <= "~") or c == '"' for c in text):
        raise ValidationError(f"local id {text!r}: at most 20 printable ASCII characters and no '\"'")
    return text


class ModemDevice:
    """One fax modem on a serial port (one channel). See the module docstring.

    Timing: ``open`` initialises the modem (≈ 1 s; with the recovery ladder at most ≈ 2 × (``timeouts.command``
    × 8)); ``start`` returns at once; ``stop`` waits at most ``stop_timeout`` for a call under way to end, then
    hangs up; ``monitor`` never blocks; ``send`` blocks for the call (dial ≤ ``timeouts.dial``, each page ≤
    ``timeouts.page_start`` + ``timeouts.page``) and waits at most ``busy_timeout`` for the port if an incoming
    call holds it. Atomicity: ``start``/``stop`` are idempotent; ``start`` with a lower term than one seen raises
    :class:`~zetafailover.errors.StaleTermError`; every page is stamped with its term in the device log.
    """

    driver = "modem"
    channels = 1

    def __init__(
        self,
        name: str,
        node: str,
        port: str,
        *,
        modem_class: str = "2.0",
        speed: int = 19200,
        flow: str = "xonxoff",
        init: Sequence[str] = (),
        local_id: str = "",
        rings: int = 1,
        timeouts: Timeouts | None = None,
        poll_interval: float = 30.0,
        stop_timeout: float = 10.0,
        busy_timeout: float = 30.0,
        may_answer: Callable[[], bool] | None = None,
        clock: Clock | None = None,
        log_path: Path | None = None,
        serial_factory: Callable[[], Any] | None = None,
        t30_timers: T30Timers | None = None,
        receive_bit_order: str = "auto",
        send_bit_order: str = "direct",
    ) -> None:
        if modem_class not in CLASSES:
            raise ValidationError(f"modem class {modem_class!r}: supported are {', '.join(CLASSES)}")
        if flow not in FLOW_CONTROLS:
            raise ValidationError(f"flow control {flow!r}: one of {', '.join(FLOW_CONTROLS)}")
        check_bit_order(receive_bit_order, BIT_ORDERS, "receive bit order")
        check_bit_order(send_bit_order, SEND_BIT_ORDERS, "send bit order")
        for command in init:
            check_command(command)
        self.name = name
        self.node = node
        self.port_path = port
        self.modem_class = modem_class
        self.dialect: Dialect = CLASSES[modem_class]
        self.speed = speed
        self.flow = flow
        self.init = tuple(init)
        self.local_id = check_local_id(local_id)
        self.rings = max(1, rings)
        self.timeouts = timeouts or Timeouts()
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.busy_timeout = busy_timeout
        self.may_answer = may_answer
        self.t30_timers = t30_timers or T30Timers()
        """Class 1 only: the T.30 timers (T1, T2, T4), the 75 ms pause and the retry limit."""
        self.receive_bit_order = receive_bit_order
        """How received page data is read: ``auto`` (default), ``direct`` or ``reversed``."""
        self.send_bit_order = send_bit_order
        """Class 2/2.0 only: ``direct`` (default) or ``reversed`` page data to the modem (Class 1 has no such
        setting: its page data always goes direct)."""
        self.guard: Callable[[int], bool] | None = None
        """Optional: the node's ``may_act(term)``, asked before answering and before every page."""
        self._serial_factory = serial_factory
        self._clock = clock or SystemClock()
        self._device_log = DeviceLog(log_path, name, self._clock)
        self._port: Any = None
        self._at: AtChannel | None = None
        self._port_lock = threading.Lock()
        self._lock = threading.Lock()
        self._health = DeviceHealth.STOPPED
        self._failed = False
        self._term = 0
        self._session = False
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._rings_seen = 0
        self._last_ring = 0.0
        self._last_ok = 0.0
        self.identity: dict[str, str] = {}
        """What the modem said about itself at initialisation (``ati``, ``classes``) — shown in ``status``."""
        self.inbound: InboundSink | None = None

    # ------------------------------------------------------------------------------------ FaxDevice API

    def open(self, inbound: InboundSink | None) -> None:
        self.inbound = inbound
        with self._port_lock:
            if not self._setup_with_ladder():
                raise DeviceError(f"device {self.name}: the modem on {self.port_path} does not initialise")
        self._log("open", 0, port=self.port_path, **self.identity)
        self._closing.clear()
        self._thread = threading.Thread(target=self._line_loop, name=f"modem-{self.name}", daemon=True)
        self._thread.start()

    def start(self, term: int) -> None:
        with self._lock:
            if term < self._term:
                raise StaleTermError(term, self._term, f"start of device {self.name}")
            if self._failed:
                raise DeviceError(f"device {self.name}: the modem has failed")
            if self._health == DeviceHealth.RUNNING and term == self._term:
                return
            self._term = term
            self._health = DeviceHealth.RUNNING
        self._log("start", term)

    def stop(self) -> None:
        with self._lock:
            was = self._health
            if self._health == DeviceHealth.RUNNING:
                self._health = DeviceHealth.STOPPED
            term = self._term
        if was != DeviceHealth.RUNNING:
            return
        # A call under way notices at its next step; then make sure the modem is on-hook and will not answer.
        if self._port_lock.acquire(timeout=self.stop_timeout):
            try:
                if self._at is not None:
                    with contextlib.suppress(AtError, OSError):
                        self._at.command("ATH0", self.timeouts.command)
                        self._at.command("ATS0=0", self.timeouts.command)
            finally:
                self._port_lock.release()
        else:
            self._drop_dtr()  # a stuck call: hang up the hard way
        self._log("stop", term)

    def monitor(self) -> DeviceHealth:
        return DeviceHealth.FAILED if self._failed else self._health

    def send(self, fax: OutboundFax, on_page: PageConfirmed) -> SendOutcome:
        first = fax.first_page
        try:
            number = validate_number(fax.number)
        except ValidationError as exc:
            self._log("refused_number", self._term, job=fax.job_id)
            return SendOutcome(False, first, f"refused to dial: {exc}", retryable=False)
        try:
            pages = load_fax_pages(fax)
        except (OSError, ValidationError) as exc:
            return SendOutcome(False, first, f"cannot read the document: {exc}", retryable=False)
        with self._lock:
            if self._health != DeviceHealth.RUNNING or self._failed:
                return SendOutcome(False, first, f"device {self.name} is off line", retryable=True)
            term = self._term
        if not self._port_lock.acquire(timeout=self.busy_timeout):
            return SendOutcome(False, first, f"device {self.name} is busy with another call", retryable=True)
        try:
            if not self._allowed(term) or self._at is None:
                return SendOutcome(False, first, f"device {self.name} may not act under term {term}")
            self._session = True
            self._log("dial", term, job=fax.job_id, number=number, first_page=first)

            done = [first]  # pages confirmed so far (reported even when the modem fails mid-call)

            def confirmed(index: int) -> None:
                on_page(index)
                done[0] = index + 1
                self._log("page", term, job=fax.job_id, page=index)

            try:
                if self.dialect is class1.CLASS1:
                    result = class1.send_fax(
                        self._at,
                        number,
                        pages,
                        first,
                        confirmed,
                        timeouts=self.timeouts,
                        timers=self.t30_timers,
                        local_id=self.local_id,
                        allowed=lambda: self._allowed(term),
                        flow=self._flow,
                    )  # Class 1 has no +FBO: send_bit_order does not apply
                else:
                    result = send_fax(
                        self._at,
                        self.dialect,
                        number,
                        pages,
                        first,
                        confirmed,
                        timeouts=self.timeouts,
                        allowed=lambda: self._allowed(term),
                        flow=self._flow,
                        bit_order=self.send_bit_order,
                    )
            except (AtError, OSError) as exc:
                self._log("modem_error", term, job=fax.job_id, error=str(exc))
                self._recover_locked()
                return SendOutcome(False, done[0], f"modem error: {exc}", retryable=True)
            self._log("sent" if result.ok else "send_failed", term, job=fax.job_id, pages=result.pages,
                      reason=result.reason)  # fmt: skip
            self._hang_up_quietly()
            return SendOutcome(result.ok, result.pages, result.reason, result.retryable)
        finally:
            self._session = False
            self._port_lock.release()

    def close(self) -> None:
        self.stop()
        self._closing.set()
        if self._thread is not None:
            self._thread.join(self.stop_timeout)
        with self._port_lock:
            self._close_port()

    def status(self) -> dict[str, Any]:
        """Health, class, port and what the modem said about itself (``ATI``, ``AT+FCLASS=?``)."""
        return {"health": str(self.monitor()), "class": self.modem_class, "port": self.port_path, **self.identity}

    # --------------------------------------------------------------------------------------- the line

    def _line_loop(self) -> None:
        while not self._closing.is_set():
            if not self._port_lock.acquire(timeout=0.2):
                continue
            try:
                self._idle_step()
            except Exception:
                log.exception("device %s: line loop", self.name)
            finally:
                self._port_lock.release()
            time.sleep(0.02)  # let send() take the port

    def _idle_step(self) -> None:
        at = self._at
        now = time.monotonic()
        if at is None or self._failed:
            if not self._failed:
                self._recover_locked()
            else:
                time.sleep(0.2)
            return
        try:
            lines = at.poll(0.2)
        except OSError:
            self._recover_locked()
            return
        rang = [x for x in lines if x == "RING"]
        if rang:
            self._rings_seen += len(rang)
            self._last_ring = now
            term = self._term
            self._log("ring", term, rings=self._rings_seen)
            if self._rings_seen >= self.rings and self._may_answer(term):
                self._rings_seen = 0
                self._receive(term)
                return
        elif self._rings_seen and now - self._last_ring > 10.0:
            self._rings_seen = 0
        if now - self._last_ok > self.poll_interval:
            try:
                at.expect_ok("AT", self.timeouts.command)
                self._last_ok = time.monotonic()
            except (AtError, OSError):
                self._log("modem_silent", self._term)
                self._recover_locked()

    def _may_answer(self, term: int) -> bool:
        return self._allowed(term) and (self.may_answer is None or self.may_answer())

    def _allowed(self, term: int) -> bool:
        return (
            self._health == DeviceHealth.RUNNING
            and self._term == term
            and not self._failed
            and (self.guard is None or self.guard(term))
        )

    def _receive(self, term: int) -> None:
        at = self._at
        assert at is not None
        sink = self.inbound
        paged = sink if isinstance(sink, _PagedSink) else None
        fax_id = ""
        held: list[bytes] = []
        caller = ""
        detected = False
        self._session = True
        self._log("answer", term)

        def store(page: ReceivedPage) -> None:
            nonlocal fax_id, detected
            if not self._allowed(term):
                raise _OffLine
            if paged is not None:
                if not fax_id:
                    fax_id = paged.begin_receive(self.name, caller, term)
                paged.receive_page(fax_id, page.tiff, term)
            else:
                held.append(page.tiff)
            if page.bit_order != "direct" and self.receive_bit_order == "auto" and not detected:
                detected = True  # once a call: tell the administrator which receive_bit_order to configure
                self._log("bit_order_detected", term, fax=fax_id, order=page.bit_order)
            self._log("received_page", term, fax=fax_id, rows=page.rows, fine=page.fine)

        def set_caller(text: str) -> None:
            nonlocal caller
            caller = text

        reason = ""
        complete = False
        try:
            if self.dialect is class1.CLASS1:
                result = class1.receive_fax(
                    at,
                    store,
                    timeouts=self.timeouts,
                    timers=self.t30_timers,
                    local_id=self.local_id,
                    allowed=lambda: self._allowed(term),
                    on_caller=set_caller,
                    bit_order=self.receive_bit_order,
                )
            else:
                result = receive_fax(
                    at,
                    self.dialect,
                    store,
                    timeouts=self.timeouts,
                    allowed=lambda: self._allowed(term),
                    on_caller=set_caller,
                    bit_order=self.receive_bit_order,
                )
            complete, reason = result.ok, result.reason
        except (_OffLine, StaleTermError) as exc:
            reason = "device went off line" if isinstance(exc, _OffLine) else f"stale term: {exc}"
            self._hang_up_quietly()
        except (AtError, OSError) as exc:
            reason = f"modem error: {exc}"
            self._recover_locked()
        finally:
            self._session = False
        self._hang_up_quietly()
        with contextlib.suppress(StaleTermError):
            if fax_id and paged is not None:
                paged.finish_receive(fax_id, complete, term, reason)
            elif held and sink is not None:
                fax_id = sink.fax_received(self.name, caller, held, complete, term)
        self._log("received", term, fax=fax_id, complete=complete, reason=reason)

    def _hang_up_quietly(self) -> None:
        if self._at is None:
            return
        with contextlib.suppress(AtError, OSError):
            self._at.command("ATH0", self.timeouts.command)

    # ------------------------------------------------------------------------------- port and ladder

    def _open_port(self) -> None:
        self._close_port()
        if self._serial_factory is not None:
            port = self._serial_factory()
        else:
            import serial  # noqa: PLC0415

            port = serial.Serial(
                self.port_path,
                baudrate=self.speed,
                timeout=0.2,
                write_timeout=60.0,
                rtscts=self.flow == "rtscts",
                xonxoff=False,
                exclusive=True,
            )
        self._port = port
        self._at = AtChannel(port, log=self._trace if os.environ.get("ZETAFAILOVER_MODEM_TRACE") else None)

    def _close_port(self) -> None:
        port, self._port, self._at = self._port, None, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _drop_dtr(self) -> None:
        """DTR off for 0.5 s (a modem with ``&D2`` hangs up); on a port without modem control, close and reopen."""
        port = self._port
        try:
            if port is None:
                raise OSError("port closed")
            port.dtr = False
            time.sleep(0.5)
            port.dtr = True
        except (OSError, ValueError, AttributeError):
            self._close_port()
            time.sleep(0.5)

    def _initialise(self) -> None:
        if self._at is None:
            self._open_port()
        at = self._at
        assert at is not None
        t = self.timeouts.command
        for attempt in range(3):
            try:
                at.command("AT", min(t, 2.0))
                break
            except AtTimeout:
                if attempt == 2:
                    raise
                at.write_raw(b"\x10\x03\x18")
        at.verbose = False  # ATZ may restore a stored profile with numeric results (ATV0)
        at.command("ATZ", t)
        at.expect_ok("ATE0V1Q0", t)
        at.verbose = True
        at.expect_ok("ATS0=0", t)
        at.expect_ok("AT&D2", t)
        ati = at.command("ATI", t)
        classes = at.command("AT+FCLASS=?", t)
        self.identity = {"ati": ati.text(), "classes": classes.text()}
        offered = {c.strip() for c in classes.text().replace("(", "").replace(")", "").split(",")}
        d = self.dialect
        if d.fclass not in offered:
            raise AtError(f"the modem offers classes {classes.text()!r}, not {d.fclass}")
        at.expect_ok(f"AT+FCLASS={d.fclass}", t)
        for command in self.init:
            at.expect_ok(command, t)
        ident = [at.command(f"AT{q}", t) for q in d.ident]
        self.identity["model"] = " / ".join(r.text() for r in ident if r.ok and r.text())
        if d is class1.CLASS1:
            self.identity["rates"] = at.command("AT+FTM=?", t).text()
            self._last_ok = time.monotonic()
            return  # Class 1 has no session parameters: the host negotiates everything in T.30
        if d is CLASS20:
            flo = {"xonxoff": 1, "rtscts": 2, "none": 0}[self.flow]
            at.expect_ok(f"AT+FLO={flo}", t)
            at.expect_ok("AT+FNR=1,1,1,0", t)
        at.expect_ok(f"AT{d.bit_order}=0", t)
        at.expect_ok("AT+FCR=1", t)
        at.expect_ok(f"AT{d.caps}=1,5,0,2,0,0,0,0", t)
        at.expect_ok(f'AT{d.local_id}="{self.local_id}"', t)
        self._last_ok = time.monotonic()

    def _setup_with_ladder(self) -> bool:
        for attempt in range(2):
            try:
                if attempt:
                    self._drop_dtr()
                self._initialise()
                self._failed = False
                return True
            except (AtError, OSError) as exc:
                self._log("init_failed", self._term, attempt=attempt + 1, error=str(exc))
        self._failed = True
        self._log("failed", self._term)
        return False

    def _recover_locked(self) -> None:
        """The recovery ladder (caller holds the port lock): DTR drop, flush, ATZ, re-initialise — twice."""
        if self._failed:
            return
        self._drop_dtr()
        self._setup_with_ladder()

    def _flow(self, on: bool) -> None:
        if self.flow == "xonxoff" and self._port is not None:
            with contextlib.suppress(Exception):
                self._port.xonxoff = on

    # ---------------------------------------------------------------------------------------- logging

    def _trace(self, way: str, text: str) -> None:
        log.debug("%s %s %s", self.name, way, text)

    def _log(self, event: str, term: int, **fields: Any) -> None:
        self._device_log.write(event, term, **fields)
