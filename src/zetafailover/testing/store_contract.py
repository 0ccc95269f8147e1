"""The contract every :class:`~zetafailover.interfaces.HeartbeatStore` must pass — built-in or third-party.

Subclass :class:`HeartbeatStoreContract` in a test module and provide the ``store_factory`` fixture: a
callable ``make(cluster="c")`` that returns a new, independent handle on one shared backend each time it is
called (two calls = two nodes looking at the same store). pytest then runs every contract test against your
store::

    import pytest
    from zetafailover.testing.store_contract import HeartbeatStoreContract

    class TestMyStore(HeartbeatStoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path):
            backend = MyBackend(tmp_path)          # one backend per test
            return lambda cluster="c": MyStore(backend, cluster)

The tests use no wall-clock sleeps; the only concurrency is real threads racing on the compare-and-swap.
Handles made through the factory are closed at the end of each test.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Protocol

import pytest

from zetafailover.errors import LostTermError, StoreError, TermConflictError
from zetafailover.interfaces import (
    Characteristic,
    DeviceStatus,
    HeartbeatRecord,
    HeartbeatStore,
    MemberRecord,
    NodeState,
    ProcessIdentity,
    SwitchoverRequest,
)

__all__ = ["HeartbeatStoreContract", "StoreFactory", "heartbeat", "member"]

WALL = 1_700_000_000.25


class StoreFactory(Protocol):
    """``make(cluster="c")``: a new handle on the shared backend of one test."""

    def __call__(self, cluster: str = "c") -> HeartbeatStore: ...


def heartbeat(holder: str, term: int, seq: int = 0, *, cluster: str = "c", **fields: object) -> HeartbeatRecord:
    """A heartbeat record for tests (state ACTIVE unless given)."""
    values: dict[str, object] = {"written_at": WALL, "state": NodeState.ACTIVE, **fields}
    return HeartbeatRecord(cluster=cluster, holder=holder, term=term, seq=seq, **values)  # type: ignore[arg-type]


def member(name: str, *, cluster: str = "c", seq: int = 1, priority: int = 100, **fields: object) -> MemberRecord:
    """A member record for tests (state PASSIVE unless given)."""
    values: dict[str, object] = {
        "written_at": WALL,
        "state": NodeState.PASSIVE,
        "term": 0,
        "timing_hash": "t1",
        **fields,
    }
    return MemberRecord(cluster=cluster, name=name, seq=seq, priority=priority, **values)  # type: ignore[arg-type]


class HeartbeatStoreContract:
    """The store contract as pytest tests. Subclasses provide the ``store_factory`` fixture (see module doc)."""

    @pytest.fixture
    def make(self, store_factory: StoreFactory) -> Iterator[StoreFactory]:
        """Wraps ``store_factory`` so that every handle made in a test is closed afterwards."""
        handles: list[HeartbeatStore] = []

        def _make(cluster: str = "c") -> HeartbeatStore:
            handle = store_factory(cluster)
            handles.append(handle)
            return handle

        yield _make
        for handle in handles:
            with suppress(StoreError):
                handle.close()

    # -------------------------------------------------------------------------------------- basics

    def test_characteristics_include_atomic_cas(self, make: StoreFactory) -> None:
        store = make()
        assert isinstance(store.characteristics, frozenset)
        assert Characteristic.ATOMIC_CAS in store.characteristics
        assert all(isinstance(c, Characteristic) for c in store.characteristics)

    def test_is_a_heartbeat_store(self, make: StoreFactory) -> None:
        assert isinstance(make(), HeartbeatStore)

    def test_empty_store_reads_none_without_problem(self, make: StoreFactory) -> None:
        read = make().read()
        assert read.record is None
        assert read.ok, read.problem
        assert read.problem == ""

    def test_empty_store_has_no_members_and_no_switchover(self, make: StoreFactory) -> None:
        store = make()
        assert list(store.read_members()) == []
        assert store.read_switchover() is None

    def test_close_is_idempotent(self, make: StoreFactory) -> None:
        store = make()
        store.close()
        store.close()

    def test_close_of_one_handle_leaves_the_other_working(self, make: StoreFactory) -> None:
        a, b = make(), make()
        a.acquire(0, heartbeat("a", 1))
        a.close()
        assert b.read().record == heartbeat("a", 1)
        b.acquire(1, heartbeat("b", 2))

    # ------------------------------------------------------------------------------------- acquire

    def test_acquire_first_term(self, make: StoreFactory) -> None:
        a, b = make(), make()
        stored = a.acquire(0, heartbeat("a", 1))
        assert stored == heartbeat("a", 1)
        for handle in (a, b):
            read = handle.read()
            assert read.ok, read.problem
            assert read.record == stored

    def test_acquire_with_wrong_expected_term_conflicts(self, make: StoreFactory) -> None:
        a, b = make(), make()
        a.acquire(0, heartbeat("a", 1))
        with pytest.raises(TermConflictError):
            b.acquire(0, heartbeat("b", 1))
        with pytest.raises(TermConflictError):
            b.acquire(4, heartbeat("b", 5))
        assert b.read().record == heartbeat("a", 1)

    def test_acquire_on_empty_store_with_expected_above_zero_conflicts(self, make: StoreFactory) -> None:
        store = make()
        with pytest.raises(TermConflictError):
            store.acquire(3, heartbeat("a", 4))
        assert store.read().record is None

    @pytest.mark.parametrize(("expected", "term"), [(0, 0), (0, 2), (1, 1), (3, 5), (2, 1)])
    def test_acquire_requires_term_to_be_expected_plus_one(self, make: StoreFactory, expected: int, term: int) -> None:
        store = make()
        with pytest.raises(ValueError, match="term"):
            store.acquire(expected, heartbeat("a", term))
        assert store.read().record is None

    def test_acquire_next_terms_in_turn(self, make: StoreFactory) -> None:
        a, b = make(), make()
        a.acquire(0, heartbeat("a", 1))
        b.acquire(1, heartbeat("b", 2))
        a.acquire(2, heartbeat("a", 3))
        assert b.read().record == heartbeat("a", 3)

    def test_a_term_is_never_reused(self, make: StoreFactory) -> None:
        a, b = make(), make()
        a.acquire(0, heartbeat("a", 1))
        b.acquire(1, heartbeat("b", 2))
        for expected in (0, 1):
            with pytest.raises(TermConflictError):
                a.acquire(expected, heartbeat("a", expected + 1))
        assert a.read().record == heartbeat("b", 2)

    def test_acquire_after_release(self, make: StoreFactory) -> None:
        a, b = make(), make()
        a.acquire(0, heartbeat("a", 1))
        released = a.renew(heartbeat("a", 1, state=NodeState.RELEASED, handover_to="b"))
        assert b.read().record == released
        b.acquire(1, heartbeat("b", 2))
        assert a.read().record == heartbeat("b", 2)

    def test_concurrent_acquire_exactly_one_wins(self, make: StoreFactory) -> None:
        contenders = 8
        handles = [make() for _ in range(contenders)]
        for term in (1, 2, 3):
            winners, losers, unexpected = _race_acquire(handles, term)
            assert unexpected == [], unexpected
            assert len(winners) == 1, f"term {term}: winners {winners}"
            assert len(losers) == contenders - 1
            assert handles[0].read().record == heartbeat(winners[0], term)

    # --------------------------------------------------------------------------------------- renew

    def test_renew_bumps_seq_by_exactly_one_and_keeps_term(self, make: StoreFactory) -> None:
        a, b = make(), make()
        current = a.acquire(0, heartbeat("a", 1))
        for expected_seq in range(1, 6):
            current = a.renew(current)
            assert current.seq == expected_seq
            assert current.term == 1
            assert current.holder == "a"
            assert b.read().record == current

    def test_renew_takes_seq_from_the_store_not_from_the_argument(self, make: StoreFactory) -> None:
        a = make()
        a.acquire(0, heartbeat("a", 1))
        a.renew(heartbeat("a", 1, seq=0))
        again = a.renew(heartbeat("a", 1, seq=0))  # a stale copy in hand: the store still counts on
        assert again.seq == 2
        far = a.renew(heartbeat("a", 1, seq=1000))
        assert far.seq == 3

    def test_renew_writes_the_other_fields(self, make: StoreFactory) -> None:
        a, b = make(), make()
        a.acquire(0, heartbeat("a", 1, state=NodeState.ACTIVATING))
        stored = a.renew(heartbeat("a", 1, state=NodeState.ACTIVE, activity=7, pending=3, written_at=WALL + 2))
        assert (stored.state, stored.activity, stored.pending, stored.written_at) == (NodeState.ACTIVE, 7, 3, WALL + 2)
        assert b.read().record == stored

    def test_renew_on_empty_store_raises_lost_term(self, make: StoreFactory) -> None:
        store = make()
        with pytest.raises(LostTermError):
            store.renew(heartbeat("a", 1))
        assert store.read().record is None

    def test_renew_by_non_holder_raises_lost_term(self, make: StoreFactory) -> None:
        a, b = make(), make()
        a.acquire(0, heartbeat("a", 1))
        with pytest.raises(LostTermError):
            b.renew(heartbeat("b", 1))
        assert b.read().record == heartbeat("a", 1)

    def test_renew_of_a_term_never_won_raises_lost_term(self, make: StoreFactory) -> None:
        a = make()
        a.acquire(0, heartbeat("a", 1))
        with pytest.raises(LostTermError):
            a.renew(heartbeat("a", 2))
        assert a.read().record == heartbeat("a", 1)

    def test_renew_after_another_node_acquired_raises_lost_term(self, make: StoreFactory) -> None:
        a, b = make(), make()
        mine = a.renew(a.acquire(0, heartbeat("a", 1)))
        b.acquire(1, heartbeat("b", 2))
        with pytest.raises(LostTermError):
            a.renew(mine)

    def test_old_holder_can_never_write_again(self, make: StoreFactory) -> None:
        a, b = make(), make()
        old = a.renew(a.acquire(0, heartbeat("a", 1)))
        new = b.acquire(1, heartbeat("b", 2))
        for attempt in (old, heartbeat("a", 1, seq=99), heartbeat("a", 2), heartbeat("a", 1, state=NodeState.RELEASED)):
            with pytest.raises(LostTermError):
                a.renew(attempt)
        with pytest.raises(TermConflictError):
            a.acquire(0, heartbeat("a", 1))
        with pytest.raises(TermConflictError):
            a.acquire(1, heartbeat("a", 2))
        assert a.read().record == new
        assert b.read().record == new
        assert b.renew(new).seq == 1

    def test_renew_racing_a_takeover_never_overwrites_the_new_term(self, make: StoreFactory) -> None:
        a, b = make(), make()
        first = a.acquire(0, heartbeat("a", 1))
        started = threading.Event()
        outcome: list[BaseException] = []
        renewed_after_takeover: list[int] = []
        took_over = threading.Event()

        def renew_loop() -> None:
            current = first
            for i in range(100_000):
                if i == 5:
                    started.set()
                try:
                    current = a.renew(current)
                except BaseException as exc:
                    outcome.append(exc)
                    return
                if took_over.is_set():
                    renewed_after_takeover.append(current.seq)
                    if len(renewed_after_takeover) > 3:  # a broken store: stop, the asserts below report it
                        return
            started.set()

        t = threading.Thread(target=renew_loop)
        t.start()
        assert started.wait(timeout=60)
        new = b.acquire(1, heartbeat("b", 2))
        took_over.set()
        t.join(timeout=60)
        assert not t.is_alive()
        # At most one renew may have been in flight when the takeover returned; none may succeed after it.
        assert len(renewed_after_takeover) <= 1, f"renews after the takeover: {renewed_after_takeover}"
        assert len(outcome) == 1, outcome
        assert isinstance(outcome[0], LostTermError), outcome
        assert b.read().record == new
        assert b.renew(new).seq == 1, "the old holder's renew landed over the new term"

    # ---------------------------------------------------------------------------------- round trip

    def test_round_trip_preserves_every_field(self, make: StoreFactory) -> None:
        a, b = make(), make()
        processes = (
            ProcessIdentity(host="fax-1.example", boot_id="0b1c-42", pid=4242, start_time=987654, role="node"),
            ProcessIdentity(host="fax-1.example", boot_id="0b1c-42", pid=31337, start_time=1, role="faxgetty"),
        )
        record = HeartbeatRecord(
            cluster="c",
            holder="fax-1",
            term=1,
            seq=0,
            written_at=1_700_000_123.456,
            state=NodeState.ACTIVATING,
            activity=12,
            pending=4,
            timing_hash="sha256:0123abcd",
            processes=processes,
            handover_to="",
        )
        assert a.acquire(0, record) == record
        assert b.read().record == record
        released = HeartbeatRecord(
            cluster="c",
            holder="fax-1",
            term=1,
            seq=5,
            written_at=1_700_000_124.5,
            state=NodeState.RELEASED,
            activity=13,
            pending=0,
            timing_hash="sha256:0123abcd",
            processes=processes[:1],
            handover_to="fax-2",
        )
        stored = a.renew(released)
        assert stored == dataclasses.replace(released, seq=1)
        got = b.read().record
        assert got == stored
        assert got is not None
        assert got.state is NodeState.RELEASED
        assert got.processes == processes[:1]
        assert got.handover_to == "fax-2"

    def test_every_state_round_trips(self, make: StoreFactory) -> None:
        a, b = make(), make()
        current = a.acquire(0, heartbeat("a", 1))
        for state in NodeState:
            current = a.renew(heartbeat("a", 1, state=state))
            assert b.read().record == current

    # ------------------------------------------------------------------------------------- members

    def test_members_publish_replace_and_read(self, make: StoreFactory) -> None:
        nodes = {name: make() for name in ("fax-1", "fax-2", "fax-3")}
        for i, (name, store) in enumerate(nodes.items()):
            store.publish_member(member(name, priority=100 - i))
        seen = {m.name: m for m in nodes["fax-1"].read_members()}
        assert seen == {name: member(name, priority=100 - i) for i, name in enumerate(nodes)}
        replaced = member(
            "fax-2",
            seq=2,
            priority=50,
            state=NodeState.ACTIVE,
            term=3,
            timing={"heartbeat_interval": 2.0, "timeout": 15.0},
            healthy=False,
            devices=(DeviceStatus(name="modem0", driver="modem", channels=1, health="failed"),),
            processes=(ProcessIdentity(host="h2", boot_id="b", pid=77, start_time=5),),
        )
        nodes["fax-2"].publish_member(replaced)
        nodes["fax-2"].publish_member(replaced)  # idempotent
        after = {m.name: m for m in nodes["fax-3"].read_members()}
        assert len(after) == 3
        assert after["fax-2"] == replaced
        assert after["fax-1"] == member("fax-1", priority=100)

    # ---------------------------------------------------------------------------------- switchover

    def test_switchover_put_read_and_replace(self, make: StoreFactory) -> None:
        a, b = make(), make()
        assert b.read_switchover() is None
        request = SwitchoverRequest(id="sw-1", from_term=1, target="fax-2", requested_at=WALL)
        a.put_switchover(request)
        assert b.read_switchover() == request
        accepted = SwitchoverRequest(id="sw-1", from_term=1, target="fax-2", requested_at=WALL, status="accepted")
        b.put_switchover(accepted)
        b.put_switchover(accepted)  # idempotent
        assert a.read_switchover() == accepted
        refused = SwitchoverRequest(
            id="sw-2", from_term=1, target="", requested_at=WALL + 1, status="refused", reason="no healthy standby"
        )
        a.put_switchover(refused)
        assert b.read_switchover() == refused

    # ---------------------------------------------------------------------------------- isolation

    def test_another_cluster_never_sees_this_clusters_records(self, make: StoreFactory) -> None:
        mine = make("c")
        record = mine.renew(mine.acquire(0, heartbeat("a", 1)))
        mine.publish_member(member("a"))
        mine.put_switchover(SwitchoverRequest(id="sw", from_term=1, target="b", requested_at=WALL))
        other = make("other")
        # The other cluster never wrote anything: it sees nothing (or a problem), never this cluster's records.
        assert other.read().record is None
        assert list(other.read_members()) == []
        assert other.read_switchover() is None
        # Whatever the other cluster's handle does, this cluster's record stays intact.
        with suppress(StoreError):
            other.acquire(0, heartbeat("x", 1, cluster="other"))
        with suppress(StoreError):
            other.renew(heartbeat("a", 1, cluster="other"))
        assert mine.read().record == record
        assert mine.renew(record).seq == record.seq + 1

    def test_records_of_another_cluster_are_refused_by_a_handle(self, make: StoreFactory) -> None:
        store = make("c")
        with pytest.raises(ValueError, match="cluster"):
            store.acquire(0, heartbeat("a", 1, cluster="other"))
        with pytest.raises(ValueError, match="cluster"):
            store.publish_member(member("a", cluster="other"))
        assert store.read().record is None


def _race_acquire(handles: list[HeartbeatStore], term: int) -> tuple[list[str], list[str], list[BaseException]]:
    """Every handle tries to win ``term`` at once (released by a barrier); returns winners, losers, surprises."""
    barrier = threading.Barrier(len(handles))
    lock = threading.Lock()
    winners: list[str] = []
    losers: list[str] = []
    unexpected: list[BaseException] = []

    def contend(i: int) -> None:
        name = f"n{i}"
        barrier.wait()
        try:
            handles[i].acquire(term - 1, heartbeat(name, term))
        except TermConflictError:
            with lock:
                losers.append(name)
        except BaseException as exc:  # reported by the test
            with lock:
                unexpected.append(exc)
        else:
            with lock:
                winners.append(name)

    threads = [threading.Thread(target=contend, args=(i,), name=f"contender-{i}") for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if any(t.is_alive() for t in threads):
        unexpected.append(TimeoutError("an acquire hung for 60 s"))
    return winners, losers, unexpected
