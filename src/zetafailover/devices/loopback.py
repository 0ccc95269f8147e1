"""The loopback device: a fax device with no hardware, for tests, the demo and dry runs.

It behaves like a real device towards the node: it is opened off line, goes on line under a term, goes off
line on ``stop``, reports its health and "transmits" faxes page by page (each page confirmed after
``page_seconds``). Every lifecycle step and every page is appended to an optional JSON-lines log with the
term it happened under, so tests can audit that nothing happened under a stale term.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from zetafailover.clock import SystemClock
from zetafailover.devices._device_log import DeviceLog
from zetafailover.errors import DeviceError, StaleTermError
from zetafailover.interfaces import (
    Clock,
    DeviceHealth,
    InboundSink,
    OutboundFax,
    PageConfirmed,
    SendOutcome,
)

__all__ = ["LoopbackDevice"]


class LoopbackDevice:
    """A :class:`~zetafailover.interfaces.FaxDevice` without hardware.

    Timing: every method returns at once except ``send``, which takes ``page_seconds`` per page. Atomicity:
    ``start`` and ``stop`` are idempotent; ``send`` refuses to transmit unless the device is on line, and a
    ``stop`` during a transmission ends it after the current page (reported as not ok, retryable).
    """

    driver = "loopback"

    def __init__(
        self,
        name: str,
        channels: int = 1,
        *,
        log_path: Path | None = None,
        clock: Clock | None = None,
        page_seconds: float = 0.0,
    ) -> None:
        if not 1 <= channels <= 240:
            raise ValueError(f"channels must be 1..240, not {channels}")
        self.name = name
        self.channels = channels
        self.page_seconds = page_seconds
        self._clock = clock or SystemClock()
        self._device_log = DeviceLog(log_path, name, self._clock)
        self._lock = threading.Lock()
        self._health = DeviceHealth.STOPPED
        self._term = 0
        self._opened = False
        self._busy = 0
        self.inbound: InboundSink | None = None
        self.sent: list[tuple[str, int, int]] = []
        """(job id, page index, term) of every page confirmed, in order."""

    # ------------------------------------------------------------------------------------ FaxDevice API

    def open(self, inbound: InboundSink | None) -> None:
        with self._lock:
            self.inbound = inbound
            self._opened = True
            self._health = DeviceHealth.STOPPED
        self._log("open")

    def start(self, term: int) -> None:
        """Go on line under ``term``: idempotent for the same term, :class:`StaleTermError` for an older one."""
        with self._lock:
            if term < self._term:
                raise StaleTermError(term, self._term, f"start of device {self.name}")
            if self._health == DeviceHealth.FAILED:
                raise DeviceError(f"device {self.name} has failed")
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
        if was == DeviceHealth.RUNNING:
            self._log("stop", term)

    def monitor(self) -> DeviceHealth:
        return self._health

    def send(self, fax: OutboundFax, on_page: PageConfirmed) -> SendOutcome:
        with self._lock:
            if self._health != DeviceHealth.RUNNING:
                return SendOutcome(False, fax.first_page, f"device {self.name} is off line", retryable=True)
            if self._busy >= self.channels:
                return SendOutcome(False, fax.first_page, f"all {self.channels} channels busy", retryable=True)
            self._busy += 1
            term = self._term
        try:
            confirmed = fax.first_page
            self._log("dial", term, job=fax.job_id, number=fax.number, first_page=fax.first_page)
            for index in range(fax.first_page, fax.total_pages):
                if self.page_seconds:
                    self._clock.sleep(self.page_seconds)
                if self._health != DeviceHealth.RUNNING or self._term != term:
                    self._log("hangup", term, job=fax.job_id, page=index, reason="device went off line")
                    return SendOutcome(False, confirmed, "device went off line during the call", retryable=True)
                on_page(index)
                confirmed = index + 1
                self.sent.append((fax.job_id, index, term))
                self._log("page", term, job=fax.job_id, page=index)
            return SendOutcome(True, confirmed)
        finally:
            with self._lock:
                self._busy -= 1

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._opened = False

    # ------------------------------------------------------------------------------------- test controls

    def fail(self) -> None:
        """Mark the device FAILED (a dead modem, a card that stopped answering)."""
        with self._lock:
            self._health = DeviceHealth.FAILED
        self._log("failed", self._term)

    def _log(self, event: str, term: int = 0, **fields: Any) -> None:
        self._device_log.write(event, term, **fields)
