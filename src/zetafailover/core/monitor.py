"""The peer monitor: store reads in, ALIVE / SUSPECT / DEAD out (invariant 1).

The monitor keeps, on the observer's own monotonic clock, the time it last saw the holder's ``(term, seq)``
change. It never compares the writer's timestamp with its own clock and never looks at file times. A read
that failed, or a record that is torn or foreign, is *no new evidence*: it neither refreshes the holder's
liveness nor proves its death. When the monitor's own loop overran (the process was starved, paused or
suspended), it forgets what it knew and observes for a full ``timeout`` again before it may declare anyone
dead.
"""

from __future__ import annotations

from dataclasses import dataclass

from zetafailover.core.timing import Timing
from zetafailover.interfaces import (
    HeartbeatRecord,
    Liveness,
    MemberRecord,
    NodeState,
    PeerStatus,
    StoreRead,
)

__all__ = ["HeartbeatMonitor", "MemberTracker", "MemberView"]


class HeartbeatMonitor:
    """The built-in :class:`~zetafailover.interfaces.PeerMonitor`, parameterised by timing.

    * ``ALIVE`` while ``(term, seq)`` changed within ``heartbeat_interval + store_timeout``;
    * ``SUSPECT`` after that, ``DEAD`` once no change was seen for ``timeout``;
    * ``HUNG`` when the activity check is on (``activity_timeout > 0``), the heartbeat is fresh, work is
      pending and the holder's activity counter has not moved for ``activity_timeout``;
    * ``RELEASED`` when the holder handed its term over (switchover, clean shutdown);
    * ``VACANT`` when no record has ever existed (a new cluster);
    * ``UNKNOWN`` while no change has been seen yet (after a start or an overrun) and ``timeout`` has not
      passed: a record that merely exists proves nothing.

    Timing: pure computation; ``observe`` never blocks. Not thread-safe (one monitor per loop).
    """

    def __init__(self, timing: Timing) -> None:
        self._timing = timing
        self._overrun_limit = timing.heartbeat_interval + timing.store_timeout
        self._key: tuple[int, int] | None = None
        self._record: HeartbeatRecord | None = None
        self._last_change_at: float | None = None
        self._last_observe_at: float | None = None
        self._activity: int | None = None
        self._activity_changed_at: float | None = None
        self._ever_seen = False
        self._changed = False
        """Whether (term, seq) was seen to change since the last reset (only then is the holder ALIVE)."""
        self._note = ""

    @property
    def record(self) -> HeartbeatRecord | None:
        """The last valid record seen (possibly old)."""
        return self._record

    def reset(self, now: float) -> None:
        """Forget the evidence: the holder is watched for a full ``timeout`` from ``now`` on."""
        self._last_change_at = now
        self._activity_changed_at = now
        self._last_observe_at = now
        self._changed = False

    def observe(self, read: StoreRead, now: float) -> PeerStatus:
        """Feed one read made at monotonic time ``now``; returns the verdict with its evidence."""
        self._note = ""
        if self._last_change_at is None:
            self.reset(now)
        elif self._last_observe_at is not None and now - self._last_observe_at > self._overrun_limit:
            gap = now - self._last_observe_at
            self.reset(now)
            self._note = f"monitor loop overran ({gap:.2f} s between reads); observing a full timeout again. "
        self._last_observe_at = now

        if not read.ok:
            return self._verdict(now, f"no new evidence: {read.problem}")
        record = read.record
        if record is None:
            if not self._ever_seen:
                return self._status(Liveness.VACANT, now, "no heartbeat record exists: a new cluster")
            return self._verdict(now, "no new evidence: the heartbeat record is missing")

        self._ever_seen = True
        if record.key != self._key:
            if self._key is not None:
                self._changed = True
            self._key = record.key
            self._last_change_at = now
        if record.activity != self._activity or record.pending == 0:
            self._activity = record.activity
            self._activity_changed_at = now
        self._record = record
        return self._verdict(now, "")

    # ------------------------------------------------------------------------------------------ private

    def _verdict(self, now: float, why: str) -> PeerStatus:
        assert self._last_change_at is not None
        age = now - self._last_change_at
        t = self._timing
        record = self._record
        if record is not None and record.state == NodeState.RELEASED and not why:
            return self._status(
                Liveness.RELEASED,
                now,
                f"{record.holder} released term {record.term} (handover to {record.handover_to or 'the best standby'})",
            )
        if record is None and not self._ever_seen:
            return self._status(Liveness.UNKNOWN, now, why or "nothing readable seen yet")
        if age >= t.timeout:
            return self._status(Liveness.DEAD, now, f"{why}no change of (term, seq) for {age:.2f} s ≥ timeout")
        if not self._changed:
            return self._status(Liveness.UNKNOWN, now, f"{why}watching: no change of (term, seq) seen yet")
        if (
            t.activity_timeout > 0
            and record is not None
            and record.pending > 0
            and self._activity_changed_at is not None
            and now - self._activity_changed_at >= t.activity_timeout
        ):
            idle = now - self._activity_changed_at
            return self._status(
                Liveness.HUNG,
                now,
                f"heartbeat fresh but activity {record.activity} unchanged for {idle:.2f} s with "
                f"{record.pending} pending (activity_timeout {t.activity_timeout:g} s)",
            )
        if age > t.heartbeat_interval + t.store_timeout:
            return self._status(Liveness.SUSPECT, now, f"{why}no change of (term, seq) for {age:.2f} s")
        return self._status(Liveness.ALIVE, now, why or f"(term, seq) changed {age:.2f} s ago")

    def _status(self, liveness: Liveness, now: float, evidence: str) -> PeerStatus:
        assert self._last_change_at is not None
        return PeerStatus(
            liveness=liveness,
            record=self._record,
            age_s=now - self._last_change_at,
            evidence=self._note + evidence,
            last_change_at=self._last_change_at,
        )


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member record with this observer's verdict on its liveness."""

    record: MemberRecord
    alive: bool
    age_s: float


class MemberTracker:
    """Liveness of every member record, by the same rule: time since its ``seq`` last changed.

    A member is alive while its ``seq`` changed within ``timeout`` on this observer's monotonic clock; a
    member first seen is alive only once a change has been observed (a record left by a dead node is never
    mistaken for a live standby). Timing: pure computation.
    """

    def __init__(self, timing: Timing) -> None:
        self._timing = timing
        self._seen: dict[str, tuple[int, float, bool]] = {}  # name -> (seq, last change, changed once)
        self._last_observe_at: float | None = None

    def observe(self, members: list[MemberRecord], now: float) -> list[MemberView]:
        """Feed one read of all member records; returns each with its verdict."""
        overran = (
            self._last_observe_at is not None
            and now - self._last_observe_at > self._timing.heartbeat_interval + self._timing.store_timeout
        )
        self._last_observe_at = now
        views: list[MemberView] = []
        for member in members:
            prev = self._seen.get(member.name)
            if prev is None:
                entry = (member.seq, now, False)
            elif prev[0] != member.seq:
                entry = (member.seq, now, True)
            elif overran:
                entry = (prev[0], now, prev[2])
            else:
                entry = prev
            self._seen[member.name] = entry
            age = now - entry[1]
            views.append(MemberView(member, alive=entry[2] and age < self._timing.timeout, age_s=age))
        return views
