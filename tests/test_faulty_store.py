"""FaultyStore: each injected fault behaves as documented, in fake time."""

from __future__ import annotations

import pytest

from zetafailover.clock import FakeClock
from zetafailover.errors import LostTermError, StoreUnavailableError, TermConflictError
from zetafailover.interfaces import Characteristic, HeartbeatStore, StoreRead, SwitchoverRequest
from zetafailover.stores import MemoryBackend, MemoryHeartbeatStore
from zetafailover.testing.faulty_store import OPERATIONS, FaultyStore
from zetafailover.testing.store_contract import heartbeat, member


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(monotonic=100.0)


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def faulty(backend: MemoryBackend, clock: FakeClock) -> FaultyStore:
    return FaultyStore(MemoryHeartbeatStore("c", backend), clock=clock)


@pytest.fixture
def peer(backend: MemoryBackend) -> MemoryHeartbeatStore:
    return MemoryHeartbeatStore("c", backend)


def every_call(store: FaultyStore) -> list[object]:
    """Run each faultable operation once (results or exceptions, in OPERATIONS order)."""
    calls = {
        "read": store.read,
        "acquire": lambda: store.acquire(0, heartbeat("a", 1)),
        "renew": lambda: store.renew(heartbeat("a", 1)),
        "publish_member": lambda: store.publish_member(member("a")),
        "read_members": store.read_members,
        "put_switchover": lambda: store.put_switchover(SwitchoverRequest("1", 1, "b", 1.0)),
        "read_switchover": store.read_switchover,
    }
    assert set(calls) == set(OPERATIONS)
    out: list[object] = []
    for op in OPERATIONS:
        try:
            out.append(calls[op]())
        except Exception as exc:
            out.append(exc)
    return out


def test_without_faults_it_is_a_pass_through(faulty: FaultyStore, peer: MemoryHeartbeatStore) -> None:
    assert isinstance(faulty, HeartbeatStore)
    assert faulty.characteristics == peer.characteristics
    assert Characteristic.LINEARIZABLE in faulty.characteristics
    results = every_call(faulty)
    assert not [r for r in results if isinstance(r, Exception)]
    assert peer.read().record == heartbeat("a", 1, seq=1)
    assert [m.name for m in peer.read_members()] == ["a"]


def test_calls_are_recorded_with_monotonic_time(faulty: FaultyStore, clock: FakeClock) -> None:
    faulty.read()
    clock.advance(2.5)
    faulty.acquire(0, heartbeat("a", 1))
    faulty.close()
    assert faulty.calls == [("read", 100.0), ("acquire", 102.5), ("close", 102.5)]


def test_delay_advances_the_fake_clock(faulty: FaultyStore, clock: FakeClock) -> None:
    faulty.set_delay("renew", 3.0)
    faulty.acquire(0, heartbeat("a", 1))
    assert clock.monotonic() == 100.0
    faulty.renew(heartbeat("a", 1))
    assert clock.monotonic() == 103.0
    assert faulty.calls[-1] == ("renew", 100.0)  # recorded when called, before the delay


def test_star_delay_applies_to_all_and_an_own_delay_replaces_it(faulty: FaultyStore, clock: FakeClock) -> None:
    faulty.set_delay("*", 1.0)
    faulty.set_delay("read", 0.25)
    faulty.read()
    assert clock.monotonic() == 100.25
    faulty.read_members()
    assert clock.monotonic() == 101.25
    faulty.set_delay("*", 0)
    faulty.read_switchover()
    assert clock.monotonic() == 101.25
    with pytest.raises(ValueError, match="≥ 0"):
        faulty.set_delay("read", -1)


def test_fail_a_number_of_times_before_the_call(faulty: FaultyStore, peer: MemoryHeartbeatStore) -> None:
    faulty.fail("acquire", times=2)
    for _ in range(2):
        with pytest.raises(StoreUnavailableError, match="injected failure: acquire"):
            faulty.acquire(0, heartbeat("a", 1))
        assert peer.read().record is None  # a failure before the call leaves the store untouched
    assert faulty.acquire(0, heartbeat("a", 1)) == heartbeat("a", 1)


def test_fail_until_heal(faulty: FaultyStore) -> None:
    faulty.fail("read")
    for _ in range(5):
        with pytest.raises(StoreUnavailableError):
            faulty.read()
    faulty.read_members()  # other operations are unaffected
    faulty.heal()
    assert faulty.read().ok


def test_fail_with_a_given_exception(faulty: FaultyStore) -> None:
    faulty.fail("renew", times=1, exc=LostTermError)
    with pytest.raises(LostTermError, match="injected failure: renew"):
        faulty.renew(heartbeat("a", 1))
    boom = TermConflictError("someone else won")
    faulty.fail("acquire", times=1, exc=boom)
    with pytest.raises(TermConflictError) as err:
        faulty.acquire(0, heartbeat("a", 1))
    assert err.value is boom


def test_fail_after_keeps_the_effect(faulty: FaultyStore, peer: MemoryHeartbeatStore) -> None:
    faulty.fail("acquire", times=1, after=True)
    with pytest.raises(StoreUnavailableError):
        faulty.acquire(0, heartbeat("a", 1))
    assert peer.read().record == heartbeat("a", 1)  # the write happened; only its answer was lost


def test_star_failure_hits_every_operation_but_an_own_rule_wins(faulty: FaultyStore) -> None:
    faulty.fail("*")
    assert all(isinstance(r, StoreUnavailableError) for r in every_call(faulty))
    faulty.fail("read", exc=RuntimeError)
    with pytest.raises(RuntimeError):
        faulty.read()


def test_stale_reads_keep_returning_the_last_result(faulty: FaultyStore, peer: MemoryHeartbeatStore) -> None:
    peer.acquire(0, heartbeat("b", 1))
    before = faulty.read()
    faulty.stale_reads(True)
    peer.renew(heartbeat("b", 1))
    peer.renew(heartbeat("b", 1))
    for _ in range(3):
        assert faulty.read() == before
    faulty.stale_reads(False)
    assert faulty.read().record == heartbeat("b", 1, seq=2)


def test_stale_reads_before_any_read_freeze_the_first(faulty: FaultyStore, peer: MemoryHeartbeatStore) -> None:
    faulty.stale_reads(True)
    first = faulty.read()
    assert first == StoreRead(None)
    peer.acquire(0, heartbeat("b", 1))
    assert faulty.read() == first
    faulty.heal()
    assert faulty.read().record == heartbeat("b", 1)


def test_corrupt_reads(faulty: FaultyStore, peer: MemoryHeartbeatStore) -> None:
    peer.acquire(0, heartbeat("b", 1))
    faulty.corrupt_reads(True)
    read = faulty.read()
    assert read.record is None
    assert read.problem == "injected corruption"
    assert not read.ok
    faulty.put_switchover(SwitchoverRequest("1", 1, "b", 1.0))  # writes are unaffected
    faulty.corrupt_reads(False)
    assert faulty.read().record == heartbeat("b", 1)


def test_partition_and_heal(faulty: FaultyStore, peer: MemoryHeartbeatStore) -> None:
    faulty.partition()
    results = every_call(faulty)
    assert all(isinstance(r, StoreUnavailableError) for r in results), results
    assert peer.read().record is None
    assert peer.read_members() == []
    faulty.heal()
    assert not [r for r in every_call(faulty) if isinstance(r, Exception)]


def test_heal_clears_everything(faulty: FaultyStore, clock: FakeClock) -> None:
    faulty.set_delay("*", 5)
    faulty.fail("*")
    faulty.stale_reads(True)
    faulty.corrupt_reads(True)
    faulty.partition()
    faulty.heal()
    assert faulty.read().ok
    assert clock.monotonic() == 100.0


def test_close_is_never_faulted_and_idempotent(faulty: FaultyStore) -> None:
    faulty.partition()
    faulty.close()
    faulty.close()
    faulty.heal()
    with pytest.raises(StoreUnavailableError, match="closed"):
        faulty.read()


def test_bad_arguments(faulty: FaultyStore) -> None:
    with pytest.raises(ValueError, match="unknown store operation 'write'"):
        faulty.fail("write")
    with pytest.raises(ValueError, match="unknown store operation"):
        faulty.set_delay("close", 1)
    with pytest.raises(ValueError, match="times"):
        faulty.fail("read", times=0)
