"""Every built-in heartbeat store, bare and behind a fault-free FaultyStore, passes the one store contract."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from zetafailover.clock import FakeClock
from zetafailover.errors import CorruptRecordError, ValidationError
from zetafailover.interfaces import HeartbeatStore
from zetafailover.stores import FileHeartbeatStore, MemoryBackend, MemoryHeartbeatStore, memory_backend, open_store_url
from zetafailover.testing.faulty_store import FaultyStore
from zetafailover.testing.store_contract import HeartbeatStoreContract, StoreFactory, heartbeat

LOCK_TIMEOUT = 30.0  # generous: 8 threads fsync in turn on a shared, busy machine


class TestMemoryStore(HeartbeatStoreContract):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        backend = MemoryBackend()

        def make(cluster: str = "c") -> HeartbeatStore:
            return MemoryHeartbeatStore(cluster, backend)

        return make


class TestMemoryStoreByUrl(HeartbeatStoreContract):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        url = f"memory://contract-{uuid.uuid4().hex}"

        def make(cluster: str = "c") -> HeartbeatStore:
            return open_store_url(url, cluster)

        return make


class TestFileStore(HeartbeatStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        def make(cluster: str = "c") -> HeartbeatStore:
            return FileHeartbeatStore(tmp_path / "ha", cluster, lock_timeout=LOCK_TIMEOUT)

        return make


class TestFileStoreByUrl(HeartbeatStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        url = (tmp_path / "by url").as_uri()  # file:///…/by%20url

        def make(cluster: str = "c") -> HeartbeatStore:
            return open_store_url(url, cluster, lock_timeout=LOCK_TIMEOUT)

        return make


class TestFaultyMemoryStore(HeartbeatStoreContract):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        backend = MemoryBackend()
        clock = FakeClock()

        def make(cluster: str = "c") -> HeartbeatStore:
            return FaultyStore(MemoryHeartbeatStore(cluster, backend), clock=clock)

        return make


class TestFaultyFileStore(HeartbeatStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        clock = FakeClock()

        def make(cluster: str = "c") -> HeartbeatStore:
            return FaultyStore(FileHeartbeatStore(tmp_path / "ha", cluster, lock_timeout=LOCK_TIMEOUT), clock=clock)

        return make


# ------------------------------------------------------------- memory-store specifics the contract leaves open


def test_memory_backend_plants_bad_records() -> None:
    backend = MemoryBackend()
    a = MemoryHeartbeatStore("c", backend)
    mine = a.acquire(0, heartbeat("a", 1))
    backend.corrupt()
    read = a.read()
    assert read.record is None
    assert "truncated JSON" in read.problem
    with pytest.raises(CorruptRecordError, match="never overwritten"):
        a.renew(mine)
    a.acquire(1, heartbeat("b", 2))  # the term slot still says 1
    backend.set_raw("heartbeat", b"garbage")
    backend.set_raw("term", None)
    a.acquire(7, heartbeat("b", 8))  # nothing readable: the caller's expected term is accepted
    assert a.read().record == heartbeat("b", 8)
    with pytest.raises(ValidationError, match="slot"):
        backend.set_raw("nonsense", b"")


def test_memory_backend_refuses_to_take_over_a_foreign_record() -> None:
    backend = MemoryBackend()
    MemoryHeartbeatStore("other", backend).acquire(0, heartbeat("x", 1, cluster="other"))
    mine = MemoryHeartbeatStore("c", backend)
    assert "record of cluster 'other'" in mine.read().problem
    with pytest.raises(CorruptRecordError, match="never taken over"):
        mine.acquire(1, heartbeat("a", 2))


def test_memory_urls_share_a_named_backend() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    assert memory_backend(name) is memory_backend(name)
    open_store_url(f"memory://{name}", "c").acquire(0, heartbeat("a", 1))
    assert MemoryHeartbeatStore("c", memory_backend(name)).read().record == heartbeat("a", 1)
    for bad in ("memory://", "memory://x/y", "memory://bad name"):
        with pytest.raises(ValidationError):
            open_store_url(bad, "c")
