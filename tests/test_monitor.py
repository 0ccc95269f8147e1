"""The peer monitor as a pure function of (reads, observer's monotonic time) — invariant 1."""

from __future__ import annotations

from dataclasses import replace

from zetafailover.core.monitor import HeartbeatMonitor, MemberTracker
from zetafailover.core.timing import PROFILES
from zetafailover.interfaces import HeartbeatRecord, Liveness, MemberRecord, NodeState, StoreRead

T = PROFILES["standard"]


def rec(term: int = 1, seq: int = 0, written_at: float = 0.0, **kw: object) -> StoreRead:
    return StoreRead(
        HeartbeatRecord(
            cluster="c", holder="fax1", term=term, seq=seq, written_at=written_at, state=NodeState.ACTIVE, **kw
        )  # type: ignore[arg-type]
    )


def feed(m: HeartbeatMonitor, read: StoreRead, start: float, end: float, step: float = 1.0) -> Liveness:
    """Poll ``read`` every ``step`` seconds from ``start`` up to (not including) ``end``; returns the last verdict."""
    now, last = start, Liveness.UNKNOWN
    while now < end - 1e-9:
        last = m.observe(read, now).liveness
        now += step
    return last


def test_dead_only_after_timeout_without_change() -> None:
    m = HeartbeatMonitor(T)
    assert m.observe(rec(seq=1), 0.0).liveness == Liveness.UNKNOWN  # a record that merely exists proves nothing
    assert m.observe(rec(seq=2), 1.0).liveness == Liveness.ALIVE  # a change is life
    assert feed(m, rec(seq=2), 2.0, 7.0) == Liveness.ALIVE
    assert feed(m, rec(seq=2), 7.0, 16.0) == Liveness.SUSPECT
    status = m.observe(rec(seq=2), 16.0)
    assert status.liveness == Liveness.DEAD
    assert status.age_s == 15.0


def test_record_unchanged_since_start_is_dead_after_timeout() -> None:
    m = HeartbeatMonitor(T)
    assert feed(m, rec(seq=9), 0.0, 15.0) == Liveness.UNKNOWN
    assert m.observe(rec(seq=9), 15.0).liveness == Liveness.DEAD


def test_change_of_seq_or_term_is_life() -> None:
    m = HeartbeatMonitor(T)
    m.observe(rec(seq=1), 0.0)
    for i, now in enumerate([2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]):
        assert m.observe(rec(seq=2 + i), now).liveness == Liveness.ALIVE
    assert m.observe(rec(term=2, seq=0), 20.0).liveness == Liveness.ALIVE


def test_writer_wall_clock_is_never_read() -> None:
    """The same (term, seq) with a fresh writer timestamp is NOT a heartbeat; an old one with a new seq is."""
    m = HeartbeatMonitor(T)
    m.observe(rec(seq=1, written_at=0.0), 0.0)
    m.observe(rec(seq=2, written_at=1.0), 1.0)
    feed(m, rec(seq=2, written_at=1e12), 2.0, 16.0)  # timestamp far in the future, no seq change
    assert m.observe(rec(seq=2, written_at=1e12), 16.0).liveness == Liveness.DEAD
    m2 = HeartbeatMonitor(T)
    feed(m2, rec(seq=1, written_at=0.0), 0.0, 14.0)
    assert m2.observe(rec(seq=2, written_at=-1e9), 14.0).liveness == Liveness.ALIVE  # timestamp in the past


def test_problem_reads_are_no_new_evidence() -> None:
    m = HeartbeatMonitor(T)
    m.observe(rec(seq=1), 0.0)
    m.observe(rec(seq=2), 0.5)
    bad = StoreRead(None, problem="crc mismatch")
    feed(m, bad, 1.0, 10.0)
    status = m.observe(bad, 10.0)
    assert status.liveness == Liveness.SUSPECT  # never ALIVE: the bad read refreshed nothing
    assert "crc mismatch" in status.evidence
    assert feed(m, bad, 11.0, 17.0) == Liveness.DEAD  # and no proof of death before the timeout


def test_missing_record_only_vacant_if_never_seen() -> None:
    assert HeartbeatMonitor(T).observe(StoreRead(None), 0.0).liveness == Liveness.VACANT
    m = HeartbeatMonitor(T)
    m.observe(rec(seq=1), 0.0)
    m.observe(rec(seq=2), 0.5)
    assert m.observe(StoreRead(None), 1.0).liveness == Liveness.ALIVE
    assert feed(m, StoreRead(None), 2.0, 17.0) == Liveness.DEAD


def test_overrun_resets_observation() -> None:
    m = HeartbeatMonitor(T)
    m.observe(rec(seq=1), 0.0)
    m.observe(rec(seq=2), 1.0)
    status = m.observe(rec(seq=2), 40.0)  # the observer itself was paused for 39 s
    assert status.liveness == Liveness.UNKNOWN
    assert "overran" in status.evidence
    assert feed(m, rec(seq=2), 41.0, 55.0) == Liveness.UNKNOWN
    assert m.observe(rec(seq=2), 55.0).liveness == Liveness.DEAD  # a full timeout after the overrun


def test_hung_when_activity_stalls_with_pending_work() -> None:
    t = replace(T, activity_timeout=30.0)
    m = HeartbeatMonitor(t)
    m.observe(rec(seq=0, activity=5, pending=2), 0.0)
    now, seq = 2.0, 1
    while now < 29.0:
        assert m.observe(rec(seq=seq, activity=5, pending=2), now).liveness == Liveness.ALIVE
        now, seq = now + 2.0, seq + 1
    assert m.observe(rec(seq=seq, activity=5, pending=2), 30.0).liveness == Liveness.HUNG
    # activity moving again, or nothing pending, is not hung
    assert m.observe(rec(seq=seq + 1, activity=6, pending=2), 32.0).liveness == Liveness.ALIVE
    m2 = HeartbeatMonitor(t)
    m2.observe(rec(seq=0, activity=5, pending=0), 0.0)
    for i in range(1, 30):
        assert m2.observe(rec(seq=i, activity=5, pending=0), 2.0 * i).liveness == Liveness.ALIVE


def test_released_is_reported() -> None:
    m = HeartbeatMonitor(T)
    read = rec(seq=3)
    assert read.record is not None
    released = StoreRead(replace(read.record, state=NodeState.RELEASED, handover_to="fax2"))
    status = m.observe(released, 0.0)
    assert status.liveness == Liveness.RELEASED and "fax2" in status.evidence


def member(name: str, seq: int) -> MemberRecord:
    return MemberRecord(
        cluster="c", name=name, seq=seq, written_at=0.0, state=NodeState.PASSIVE, priority=1, term=0, timing_hash="h"
    )


def test_member_alive_only_after_a_change_is_seen() -> None:
    tr = MemberTracker(T)
    assert not tr.observe([member("a", 5)], 0.0)[0].alive  # a leftover record is not a live standby
    assert tr.observe([member("a", 6)], 1.0)[0].alive
    for now in range(2, 16):
        assert tr.observe([member("a", 6)], float(now))[0].alive
    assert not tr.observe([member("a", 6)], 16.0)[0].alive
