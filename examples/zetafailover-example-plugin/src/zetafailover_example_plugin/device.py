"""The ``example`` fax device: state in memory, lifecycle appended to a log file.

It has no hardware. It shows what a real driver must honour:

* ``open`` claims the device **off line**; ``start(term)`` puts it on line only when the node says so (after
  the term is won and the old active fenced); ``stop`` takes it off line and returns only when it is quiet;
* ``start`` and ``stop`` are idempotent, and ``start`` refuses a term older than one it already ran under;
* every side effect (the log line, a sent or received fax) carries the term;
* ``monitor`` never blocks.

Each lifecycle step appends one line to the log file and fsyncs it, so a test (or a person) can read what
happened, in order, even after the process was killed::

    1700000000.000 node=fax1 device=ex0 open
    1700000002.500 node=fax1 device=ex0 start term=3
    1700000009.000 node=fax1 device=ex0 stop
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from zetafailover.errors import DeviceError, StaleTermError
from zetafailover.interfaces import Clock, DeviceHealth, InboundSink, OutboundFax, PageConfirmed, SendOutcome

__all__ = ["ExampleDevice", "SentFax"]


@dataclass(frozen=True, slots=True)
class SentFax:
    """What :meth:`ExampleDevice.send` "transmitted": kept in memory for tests to inspect."""

    job_id: str
    number: str
    pages: tuple[int, ...]
    """Zero-based indexes of the pages sent (from ``first_page`` on)."""
    term: int


class ExampleDevice:
    """A fax device that keeps its state in memory and logs its lifecycle to ``log_path``.

    Timing: every method returns within the time of one small fsynced append (milliseconds on a local disk);
    ``monitor`` never touches the disk. Atomicity: ``start(term)`` and ``stop()`` are idempotent; each log
    line is written by one ``write`` on a file opened for appending, so lines from two processes never mix.
    Thread-safe.
    """

    driver = "example"

    def __init__(self, name: str, node: str, log_path: Path, clock: Clock, channels: int = 1) -> None:
        self.name = name
        self.node = node
        self.channels = channels
        self.log_path = log_path
        self._clock = clock
        self._lock = threading.Lock()
        self._opened = False
        self._running = False
        self._failed = ""
        self._term = 0
        self._inbound: InboundSink | None = None
        self.sent: list[SentFax] = []

    # ------------------------------------------------------------------------------------ FaxDevice

    def open(self, inbound: InboundSink | None) -> None:
        """Claim the device, off line. Raises :class:`DeviceError` when the log file cannot be written."""
        with self._lock:
            self._inbound = inbound
            self._append("open")
            self._opened = True

    def start(self, term: int) -> None:
        """Go on line under ``term``. Idempotent for the same term; refuses an older one (StaleTermError)."""
        with self._lock:
            if not self._opened:
                raise DeviceError(f"device {self.name!r}: start before open")
            if term < self._term:
                raise StaleTermError(term, self._term, f"device {self.name!r} start")
            if self._running and term == self._term:
                return
            self._append(f"start term={term}")
            self._term = term
            self._running = True

    def stop(self) -> None:
        """Go off line. Idempotent: stopping a stopped device does nothing (and logs nothing)."""
        with self._lock:
            if not self._running:
                return
            self._running = False  # off line first: even if the log write fails, we never answer again
            self._append("stop", must=False)

    def monitor(self) -> DeviceHealth:
        """RUNNING, STOPPED or FAILED (after a log write failed). Never blocks on I/O."""
        if self._failed:
            return DeviceHealth.FAILED
        return DeviceHealth.RUNNING if self._running else DeviceHealth.STOPPED

    def send(self, fax: OutboundFax, on_page: PageConfirmed) -> SendOutcome:
        """ "Transmit" ``fax``: every page from ``first_page`` on is confirmed at once and kept in :attr:`sent`."""
        with self._lock:
            if not self._running:
                return SendOutcome(False, fax.first_page, "device is off line", retryable=True)
            if fax.term and fax.term != self._term:
                return SendOutcome(
                    False,
                    fax.first_page,
                    f"job stamped with term {fax.term}, device runs under term {self._term}",
                    retryable=False,
                )
            pages = tuple(range(fax.first_page, fax.total_pages))
            self._append(f"send job={fax.job_id} pages={len(pages)} term={self._term}")
            self.sent.append(SentFax(fax.job_id, fax.number, pages, self._term))
        for index in pages:
            on_page(index)
        return SendOutcome(ok=True, pages_confirmed=fax.total_pages)

    def close(self) -> None:
        """Go off line and release the device. Idempotent."""
        self.stop()
        with self._lock:
            if self._opened:
                self._opened = False
                self._append("close", must=False)

    # ------------------------------------------------------------------------------------- extras

    def receive(self, caller: str, pages: list[bytes]) -> str:
        """Simulate an incoming call: hand ``pages`` to the spool, stamped with the term. Returns the fax id.

        Raises :class:`DeviceError` when the device is off line (it would not have answered).
        """
        with self._lock:
            if not self._running:
                raise DeviceError(f"device {self.name!r} is off line and does not answer")
            if self._inbound is None:
                raise DeviceError(f"device {self.name!r} was opened without an inbound sink")
            inbound, term = self._inbound, self._term
        return inbound.fax_received(self.name, caller, pages, True, term)

    @property
    def term(self) -> int:
        """The term the device last went on line under (0: never)."""
        return self._term

    def _append(self, event: str, *, must: bool = True) -> None:
        """Append one fsynced log line. A failure marks the device FAILED and raises DeviceError if ``must``.

        ``stop`` and ``close`` pass ``must=False``: the device is already off line, and going off line must
        never fail because a log file could not be written.
        """
        line = f"{self._clock.wall():.3f} node={self.node} device={self.name} {event}\n"
        try:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._failed = f"cannot write {self.log_path}: {exc.strerror or exc}"
            if not must:
                return
            raise DeviceError(f"device {self.name!r}: {self._failed}") from exc
