"""Time, injected: every timing decision in zetafailover reads a :class:`Clock`.

The real clock reads :func:`time.monotonic` for every duration and deadline and :func:`time.time` only for
the human-readable wall-clock stamp in records and events (invariant 1: no decision reads wall time).
:class:`FakeClock` lets tests run the whole failover logic in simulated time, in milliseconds, and step the
wall clock by hours without touching the machine's clock.
"""

from __future__ import annotations

import threading
import time
from typing import final

from zetafailover.interfaces import Clock

__all__ = ["FakeClock", "SystemClock"]


@final
class SystemClock(Clock):
    """The machine's clocks: ``time.monotonic`` for durations, ``time.time`` for display only."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@final
class FakeClock(Clock):
    """A clock that moves only when told to.

    ``sleep`` advances the clock instead of blocking, so single-threaded simulations run in no real time.
    ``step_wall`` jumps the wall clock alone (an NTP step, a wrong timezone), which must change nothing.
    Thread-safe.
    """

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._mono = monotonic
        self._wall = wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def wall(self) -> float:
        with self._lock:
            return self._wall

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (negative values are refused)."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        with self._lock:
            self._mono += seconds
            self._wall += seconds

    def step_wall(self, seconds: float) -> None:
        """Jump the wall clock alone by ``seconds`` (may be negative); monotonic time is unchanged."""
        with self._lock:
            self._wall += seconds
