"""A :class:`~zetafailover.interfaces.HeartbeatStore` that wraps another and injects faults.

For tests and the nemesis: slow stores, failing operations, ambiguous writes (done but reported failed),
stale reads (an NFS/SMB attribute cache that keeps serving an old heartbeat), corrupt reads and a full
partition. Without faults it is a transparent pass-through and passes the store contract suite.

Example::

    store = FaultyStore(MemoryHeartbeatStore("fax", backend), clock=fake_clock)
    store.set_delay("renew", 3.0)              # every renew takes 3 s of (fake) time
    store.fail("acquire", times=1)             # the next acquire raises StoreUnavailableError
    store.fail("renew", times=1, after=True)   # the next renew is written, then reported as failed
    store.stale_reads(True)                    # read() keeps returning the last result it returned
    store.partition()                          # every operation raises StoreUnavailableError
    store.heal()                               # all faults cleared
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from zetafailover.clock import SystemClock
from zetafailover.errors import StoreUnavailableError
from zetafailover.interfaces import (
    Characteristic,
    Clock,
    HeartbeatRecord,
    HeartbeatStore,
    MemberRecord,
    StoreRead,
    SwitchoverRequest,
)

__all__ = ["OPERATIONS", "FaultyStore"]

OPERATIONS = (
    "read",
    "acquire",
    "renew",
    "publish_member",
    "read_members",
    "put_switchover",
    "read_switchover",
)
"""The operations faults can target (``"*"`` targets all of them). ``close`` is never faulted."""

INJECTED_CORRUPTION = "injected corruption"

_R = TypeVar("_R")
ExceptionSpec = BaseException | type[BaseException]


@dataclass(slots=True)
class _Failure:
    remaining: int | None
    exc: ExceptionSpec | None
    after: bool


class FaultyStore:
    """Wraps ``inner`` and injects faults into its operations.

    Timing: each operation first sleeps its configured delay on ``clock`` (a FakeClock just advances), then
    behaves as the inner store does, unless a fault says otherwise. Atomicity: exactly the inner store's; an
    injected failure before the call leaves the store untouched, one with ``after=True`` happens after the
    inner call took effect (the ambiguous outcome of a write whose answer was lost). Thread-safe.

    ``calls`` lists every operation as ``(op, clock.monotonic())`` at the moment it was called.
    """

    def __init__(self, inner: HeartbeatStore, clock: Clock | None = None) -> None:
        self.inner = inner
        self.characteristics: frozenset[Characteristic] = inner.characteristics
        """The inner store's characteristics (faults do not change what it promises)."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.calls: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._delays: dict[str, float] = {}
        self._failures: dict[str, _Failure] = {}
        self._stale = False
        self._frozen: StoreRead | None = None
        self._last_read: StoreRead | None = None
        self._corrupt = False
        self._partitioned = False

    def __repr__(self) -> str:
        return f"FaultyStore({self.inner!r})"

    # ------------------------------------------------------------------------------------------ faults

    def set_delay(self, op: str, seconds: float) -> None:
        """Delay every call of ``op`` (or ``"*"``: all operations) by ``seconds`` on the clock; 0 removes it.

        An operation's own delay replaces the ``"*"`` delay.
        """
        _check_op(op)
        if seconds < 0:
            raise ValueError(f"set_delay: seconds must be ≥ 0, not {seconds!r}")
        with self._lock:
            if seconds:
                self._delays[op] = float(seconds)
            else:
                self._delays.pop(op, None)

    def fail(self, op: str, times: int | None = None, exc: ExceptionSpec | None = None, *, after: bool = False) -> None:
        """Make the next ``times`` calls of ``op`` (``"*"``: any operation) raise; ``times=None``: until heal.

        ``exc`` is an exception instance or class (default :class:`StoreUnavailableError`). With ``after=True``
        the inner call is made first and its effect kept, then the exception is raised. An operation's own rule
        takes precedence over the ``"*"`` rule.
        """
        _check_op(op)
        if times is not None and times < 1:
            raise ValueError(f"fail: times must be ≥ 1 or None, not {times!r}")
        with self._lock:
            self._failures[op] = _Failure(times, exc, after)

    def stale_reads(self, on: bool) -> None:
        """While on, ``read()`` keeps returning the last StoreRead it returned before (like an attribute cache).

        If nothing was read yet, the first read under the fault reads the inner store once and keeps that.
        """
        with self._lock:
            self._stale = on
            self._frozen = self._last_read if on else None

    def corrupt_reads(self, on: bool) -> None:
        """While on, ``read()`` returns ``StoreRead(None, problem="injected corruption")``."""
        with self._lock:
            self._corrupt = on

    def partition(self) -> None:
        """Every operation raises StoreUnavailableError until :meth:`heal`."""
        with self._lock:
            self._partitioned = True

    def heal(self) -> None:
        """Clear every fault: delays, failures, stale and corrupt reads, partition."""
        with self._lock:
            self._delays.clear()
            self._failures.clear()
            self._stale = False
            self._frozen = None
            self._corrupt = False
            self._partitioned = False

    # -------------------------------------------------------------------------------------- operations

    def read(self) -> StoreRead:
        """The inner ``read()``, unless a fault applies. Raises only for an injected failure or partition."""

        def call() -> StoreRead:
            with self._lock:
                corrupt, stale, frozen = self._corrupt, self._stale, self._frozen
            if corrupt:
                return StoreRead(None, problem=INJECTED_CORRUPTION)
            if stale and frozen is not None:
                return frozen
            result = self.inner.read()
            with self._lock:
                if self._stale and self._frozen is None:
                    self._frozen = result
                self._last_read = result
            return result

        return self._run("read", call)

    def acquire(self, expected_term: int, record: HeartbeatRecord) -> HeartbeatRecord:
        """The inner compare-and-swap ``acquire``, unless a fault applies."""
        return self._run("acquire", lambda: self.inner.acquire(expected_term, record))

    def renew(self, record: HeartbeatRecord) -> HeartbeatRecord:
        """The inner compare-and-swap ``renew``, unless a fault applies."""
        return self._run("renew", lambda: self.inner.renew(record))

    def publish_member(self, member: MemberRecord) -> None:
        """The inner ``publish_member``, unless a fault applies."""
        self._run("publish_member", lambda: self.inner.publish_member(member))

    def read_members(self) -> Sequence[MemberRecord]:
        """The inner ``read_members``, unless a fault applies."""
        return self._run("read_members", self.inner.read_members)

    def put_switchover(self, request: SwitchoverRequest) -> None:
        """The inner ``put_switchover``, unless a fault applies."""
        self._run("put_switchover", lambda: self.inner.put_switchover(request))

    def read_switchover(self) -> SwitchoverRequest | None:
        """The inner ``read_switchover``, unless a fault applies."""
        return self._run("read_switchover", self.inner.read_switchover)

    def close(self) -> None:
        """Close the inner store (never faulted). Idempotent."""
        with self._lock:
            self.calls.append(("close", self.clock.monotonic()))
        self.inner.close()

    # ---------------------------------------------------------------------------------------- helpers

    def _run(self, op: str, call: Callable[[], _R]) -> _R:
        with self._lock:
            self.calls.append((op, self.clock.monotonic()))
            partitioned = self._partitioned
            delay = self._delays.get(op, self._delays.get("*", 0.0))
        if delay:
            self.clock.sleep(delay)
        if partitioned:
            raise StoreUnavailableError(f"injected partition: {op} cannot reach the store")
        failure = self._take_failure(op)
        if failure is not None and not failure.after:
            raise _exception(failure.exc, op)
        result = call()
        if failure is not None:
            raise _exception(failure.exc, op)
        return result

    def _take_failure(self, op: str) -> _Failure | None:
        with self._lock:
            key = op if op in self._failures else "*" if "*" in self._failures else None
            if key is None:
                return None
            failure = self._failures[key]
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    del self._failures[key]
            return failure


def _check_op(op: str) -> None:
    if op != "*" and op not in OPERATIONS:
        raise ValueError(f"unknown store operation {op!r}; use one of {', '.join(OPERATIONS)} or '*'")


def _exception(spec: ExceptionSpec | None, op: str) -> BaseException:
    if spec is None:
        return StoreUnavailableError(f"injected failure: {op}")
    if isinstance(spec, BaseException):
        return spec
    return spec(f"injected failure: {op}")
