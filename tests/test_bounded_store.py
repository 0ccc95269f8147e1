"""BoundedStore on the real clock: a frozen store never hangs a node, nor keeps an active past its deadline."""

from __future__ import annotations

import time

import pytest

from zetafailover.clock import SystemClock
from zetafailover.core.node import BoundedStore
from zetafailover.errors import StoreUnavailableError
from zetafailover.interfaces import HeartbeatRecord, NodeState
from zetafailover.stores.memory import MemoryBackend, MemoryHeartbeatStore
from zetafailover.testing.faulty_store import FaultyStore


def record(term: int = 1) -> HeartbeatRecord:
    return HeartbeatRecord(cluster="b", holder="fax1", term=term, seq=0, written_at=0.0, state=NodeState.ACTIVE)


@pytest.fixture
def slow() -> FaultyStore:
    store = FaultyStore(MemoryHeartbeatStore("b", MemoryBackend()), clock=SystemClock())
    store.acquire(0, record())
    return store


def test_call_cut_at_store_timeout(slow: FaultyStore) -> None:
    bounded = BoundedStore(slow, timeout=0.2, clock=SystemClock())
    slow.set_delay("renew", 2.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        bounded.renew(record())
    assert time.monotonic() - started < 1.5
    # while that call is still stuck, the next fails fast instead of queueing behind it
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="still blocked"):
        bounded.renew(record())
    assert time.monotonic() - started < 0.5
    bounded.close()


def test_call_cut_at_the_self_fence_deadline(slow: FaultyStore) -> None:
    bounded = BoundedStore(slow, timeout=5.0, clock=SystemClock())
    slow.set_delay("renew", 3.0)
    bounded.deadline = time.monotonic() + 0.3
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        bounded.renew(record())
    assert time.monotonic() - started < 1.5, "cut at the deadline, not at the 5 s store timeout"
    bounded.deadline = time.monotonic() - 0.1
    with pytest.raises(StoreUnavailableError, match="no time left"):
        bounded.read_members()
    bounded.close()


def test_read_never_raises(slow: FaultyStore) -> None:
    bounded = BoundedStore(slow, timeout=0.2, clock=SystemClock())
    slow.partition()
    result = bounded.read()
    assert result.record is None and "partition" in result.problem
    bounded.close()


def test_calls_pass_through(slow: FaultyStore) -> None:
    bounded = BoundedStore(slow, timeout=2.0, clock=SystemClock())
    renewed = bounded.renew(record())
    assert renewed.seq == 1
    assert bounded.read().record == renewed
    bounded.close()


def test_passive_node_waits_on_a_watching_store() -> None:
    """A store that can watch (etcd) wakes the passive loop instead of a plain sleep; a failing watch falls back."""
    import threading

    from zetafailover.core.node import FailoverNode
    from zetafailover.core.timing import PROFILES

    class WatchingStore(MemoryHeartbeatStore):
        def __init__(self) -> None:
            super().__init__("b", MemoryBackend())
            self.waits: list[float] = []

        def wait_for_change(self, timeout: float) -> list[tuple[str, str]]:
            self.waits.append(timeout)
            if len(self.waits) % 2:
                raise StoreUnavailableError("watch broke")  # falls back to a plain sleep
            time.sleep(min(timeout, 0.01))
            return []

    class NoFence:
        kind, confirms = "none", False

        def terminate(self, target: object, timeout: float) -> object:
            raise AssertionError("nobody to fence")

    store = WatchingStore()
    store.acquire(0, record())  # someone else holds term 1 and is alive as far as we know: we stay passive
    timing = PROFILES["lab"]
    node = FailoverNode(
        name="fax2",
        cluster="b",
        timing=timing,
        store=BoundedStore(store, timing.store_timeout, SystemClock()),
        terminator=NoFence(),
        clock=SystemClock(),  # type: ignore[arg-type]
    )
    stop = threading.Event()
    runner = threading.Thread(target=node.run, args=(stop,))
    runner.start()
    time.sleep(0.3)
    stop.set()
    runner.join(5)
    assert not runner.is_alive()
    assert len(store.waits) >= 2, "the passive loop waited on the store's watch"
    assert all(0 < w <= timing.poll_interval + 1e-9 for w in store.waits)
