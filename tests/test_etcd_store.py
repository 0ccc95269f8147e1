"""The etcd heartbeat store on real, throw-away etcd servers: the store contract (one member and a 3-member
cluster), the client's edge cases, endpoint failover, quorum loss, a frozen member, leases and the watch.

Skipped (with the reason) only where ``/usr/bin/etcd`` is missing; CI installs ``etcd-server``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from zetafailover.clock import SystemClock
from zetafailover.core.timing import PROFILES, Timing
from zetafailover.errors import LostTermError, StoreUnavailableError, TermConflictError, ValidationError
from zetafailover.interfaces import HeartbeatStore, NodeState
from zetafailover.plugins import available, get_plugin_manager, make_store
from zetafailover.stores._etcd_client import (
    EtcdClient,
    EtcdRequestError,
    EtcdUnavailableError,
    cmp_create,
    op_put,
    op_range,
    parse_endpoints,
)
from zetafailover.stores.etcd import EtcdHeartbeatStore, lease_ttl_for, parse_etcd_url
from zetafailover.testing.etcd import EtcdCluster, etcd_missing_reason
from zetafailover.testing.store_contract import HeartbeatStoreContract, StoreFactory, heartbeat, member

pytestmark = pytest.mark.skipif(bool(etcd_missing_reason()), reason=etcd_missing_reason() or "etcd is installed")

TIMEOUT = 3.0  # per store call: generous, eight threads race on a busy 2-core machine


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path_factory.mktemp("etcd1"), size=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path_factory.mktemp("etcd3"), size=3) as cluster:
        yield cluster


@pytest.fixture
def fresh_trio(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A 3-member cluster of this test alone (it kills and freezes members)."""
    with EtcdCluster(tmp_path, size=3) as cluster:
        yield cluster


def _prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


class TestEtcdStoreSingleMember(HeartbeatStoreContract):
    @pytest.fixture
    def store_factory(self, single: EtcdCluster) -> StoreFactory:
        prefix = _prefix()

        def make(cluster: str = "c") -> HeartbeatStore:
            return EtcdHeartbeatStore(",".join(single.endpoints), cluster, prefix=prefix, timeout=TIMEOUT)

        return make


class TestEtcdStoreThreeMembers(HeartbeatStoreContract):
    """Each new handle talks to the next member first: the CAS holds across members (linearizable)."""

    @pytest.fixture
    def store_factory(self, trio: EtcdCluster) -> StoreFactory:
        prefix = _prefix()
        count = [0]

        def make(cluster: str = "c") -> HeartbeatStore:
            count[0] += 1
            return EtcdHeartbeatStore.from_url(trio.url(prefix, first=count[0]) + f"?timeout={TIMEOUT}&ttl=5", cluster)

        return make


class TestEtcdStoreThroughThePlugin(HeartbeatStoreContract):
    """Made the way a node makes it: through the plugin manager from the config's URL and timing."""

    @pytest.fixture
    def store_factory(self, single: EtcdCluster) -> StoreFactory:
        pm = get_plugin_manager(load_entrypoints=False)
        url = single.url(_prefix())
        timing = dataclasses.replace(PROFILES["standard"])  # store_timeout 3 s

        def make(cluster: str = "c") -> HeartbeatStore:
            return make_store(pm, url, cluster, timing, SystemClock())

        return make


# ----------------------------------------------------------------------------------------- URL, plugin


def test_url_parsing_and_errors() -> None:
    parsed = parse_etcd_url("etcd://127.0.0.1:2379,[::1]:22379,h:1/fax/site-a?timeout=0.5&ttl=4")
    assert parsed.endpoints == (("127.0.0.1", 2379), ("::1", 22379), ("h", 1))
    assert (parsed.prefix, parsed.timeout, parsed.lease_ttl) == ("fax/site-a", 0.5, 4)
    assert parse_etcd_url("etcd://h:2379").prefix == "zetafailover"
    for bad, why in [
        ("etcd://", "no etcd endpoint"),
        ("etcd://h", "HOST:PORT"),
        ("etcd://h:0/x", "port"),
        ("etcd://h:1,/x", "empty endpoint"),
        ("etcd://https://h:1/x", "HOST:PORT"),
        ("etcd://h:1/bad prefix", "prefix"),
        ("etcd://h:1/x?ttl=1.5", "whole number"),
        ("etcd://h:1/x?timeout=-1", "greater than 0"),
        ("etcd://h:1/x?retries=3", "unknown option"),
        ("etcd://u:p@h:1/x", "user names"),
    ]:
        with pytest.raises(ValidationError, match=why):
            parse_etcd_url(bad)
    with pytest.raises(ValueError, match="TLS"):
        parse_endpoints("https://h:2379")


def test_plugin_lists_the_scheme_and_derives_timeouts_from_timing() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    assert "etcd" in available(pm, "zetafailover_store_schemes")
    timing = PROFILES["fast"]
    store = make_store(pm, "etcd://127.0.0.1:1/p", "c", timing, SystemClock())
    assert isinstance(store, EtcdHeartbeatStore)
    assert store.timeout == pytest.approx(0.9 * timing.store_timeout)
    assert store.lease_ttl == lease_ttl_for(timing) == 4
    assert lease_ttl_for(Timing(heartbeat_interval=0.1, timeout=1.0, store_timeout=0.2, margin=0.2)) == 1
    assert store.root == b"/p/c/"


# ------------------------------------------------------------------------------- the client's edge cases


def test_client_reads_fields_that_etcd_omits_when_zero(single: EtcdCluster) -> None:
    client = EtcdClient(single.endpoints[0])
    key = f"/{_prefix()}/k".encode()
    kvs, revision = client.range(key, timeout=TIMEOUT)  # no "kvs", no "count"
    assert kvs == () and revision > 0
    client.put(key, b"", timeout=TIMEOUT)  # an empty value: no "value", no "lease"
    (kv,), _ = client.range(key, timeout=TIMEOUT)
    assert (kv.value, kv.lease, kv.version) == (b"", 0, 1)
    result = client.txn([cmp_create(key, 0)], [op_put(key, b"x")], [op_range(key)], timeout=TIMEOUT)
    assert result.succeeded is False  # "succeeded" is omitted when false
    assert result.ranges == ((kv,),)
    lease, ttl = client.lease_grant(1, timeout=TIMEOUT)
    assert ttl >= 1
    client.lease_revoke(lease, timeout=TIMEOUT)
    assert client.lease_keepalive(lease, timeout=TIMEOUT) == 0  # "TTL" omitted: the lease is gone
    assert client.lease_ttl(lease, timeout=TIMEOUT) == 0  # etcd answers -1
    assert client.lease_revoke(lease, timeout=TIMEOUT) is False
    with pytest.raises(EtcdRequestError, match="lease not found") as info:
        client.put(key, b"y", lease=lease, timeout=TIMEOUT)
    assert info.value.lease_not_found


def test_client_fails_over_past_a_dead_endpoint_and_stays_with_the_live_one(single: EtcdCluster) -> None:
    dead = "127.0.0.1:1"  # nothing listens on port 1
    client = EtcdClient(f"{dead},{single.endpoints[0]}")
    started = time.monotonic()
    client.put(b"/failover/x", b"1", timeout=TIMEOUT)
    assert time.monotonic() - started < 1.0
    assert client.current_endpoint == single.endpoints[0]
    with pytest.raises(EtcdUnavailableError, match="every endpoint"):
        EtcdClient("127.0.0.1:1,127.0.0.1:2").range(b"/x", timeout=0.5)


def test_watch_returns_changes_times_out_and_notices_a_dead_member(tmp_path: Path) -> None:
    with EtcdCluster(tmp_path, size=1) as cluster:
        client = EtcdClient(cluster.endpoints[0])
        revision = client.put(b"/w/a", b"1", timeout=TIMEOUT)
        events = client.watch(b"/w/", prefix=True, start_revision=revision, timeout=TIMEOUT)
        assert [(e.type, e.kv.key, e.kv.value) for e in events] == [("PUT", b"/w/a", b"1")]
        started = time.monotonic()
        assert client.watch(b"/w/", prefix=True, timeout=0.3) == []
        assert 0.25 <= time.monotonic() - started < 2.0
        client.txn([], [{"request_delete_range": {"key": "L3cvYQ=="}}], timeout=TIMEOUT)  # delete /w/a
        events = client.watch(b"/w/a", start_revision=revision + 1, timeout=TIMEOUT)
        assert [e.type for e in events] == ["DELETE"]

        # a member that dies under a watch is noticed at once, not after the timeout (nor never)
        killer = threading.Timer(0.3, cluster.kill, args=(0,))
        killer.start()
        started = time.monotonic()
        with pytest.raises(EtcdUnavailableError):
            client.watch(b"/w/", prefix=True, timeout=20)
        assert time.monotonic() - started < 5.0
        killer.join()


# ------------------------------------------------------------------------------------ store behaviour


def test_lease_marks_the_live_holder_and_release_deletes_it(single: EtcdCluster) -> None:
    prefix = _prefix()
    a = EtcdHeartbeatStore(single.endpoints, "c", prefix=prefix, timeout=TIMEOUT, lease_ttl=1)
    b = EtcdHeartbeatStore(single.endpoints, "c", prefix=prefix, timeout=TIMEOUT, lease_ttl=1)
    held = a.acquire(0, heartbeat("a", 1))
    assert b.holder_lease_alive(1)
    for _ in range(6):  # renews keep the 1 s lease alive for 1.5 s
        time.sleep(0.25)
        held = a.renew(held)
    assert b.holder_lease_alive(1)
    b.read()
    a.renew(dataclasses.replace(held, state=NodeState.RELEASED))
    assert b.wait_for_change(timeout=TIMEOUT)  # the release, seen through the watch
    assert not b.holder_lease_alive(1)
    # a takeover does not depend on any lease, and the next holder's key is on its own lease
    b.acquire(1, heartbeat("b", 2))
    assert a.holder_lease_alive(2)
    # without renews the lease expires within TTL + etcd's 0.5 s expiry loop; the records stay
    deadline = time.monotonic() + 5
    while b.holder_lease_alive(2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not b.holder_lease_alive(2)
    assert a.read().record == heartbeat("b", 2)
    # a holder whose lease expired may renew while it still holds the term: it gets a new lease
    assert b.renew(heartbeat("b", 2)).seq == 1
    assert a.holder_lease_alive(2)


def test_watch_on_the_store_reports_a_takeover(single: EtcdCluster) -> None:
    prefix = _prefix()
    a = EtcdHeartbeatStore(single.endpoints, "c", prefix=prefix, timeout=TIMEOUT)
    b = EtcdHeartbeatStore(single.endpoints, "c", prefix=prefix, timeout=TIMEOUT)
    a.acquire(0, heartbeat("a", 1))
    b.read()
    assert b.wait_for_change(timeout=0.2) == []
    a.renew(heartbeat("a", 1))
    assert ("PUT", "heartbeat") in b.wait_for_change(timeout=TIMEOUT)
    a.publish_member(member("a"))  # members are outside the watched range
    b.read()
    assert b.wait_for_change(timeout=0.2) == []


def test_endpoint_failover_when_the_member_a_store_talks_to_dies(fresh_trio: EtcdCluster) -> None:
    prefix = _prefix()
    # The store talks to a follower first: killing it must cost a reconnect, not a leader election (an election
    # can take longer than the call's budget on a loaded machine, and is not what this test is about).
    leader = fresh_trio.leader_index()
    victim, other = [i for i in range(3) if i != leader]
    a = EtcdHeartbeatStore.from_url(fresh_trio.url(prefix, first=victim) + "?timeout=2", "c")
    b = EtcdHeartbeatStore.from_url(fresh_trio.url(prefix, first=other) + "?timeout=2", "c")
    held = a.acquire(0, heartbeat("a", 1))
    assert a.client.current_endpoint == fresh_trio.endpoints[victim]
    fresh_trio.kill(victim)
    started = time.monotonic()
    held = a.renew(held)  # connection refused on the dead member → the next one, within the call's budget
    assert time.monotonic() - started < 2.0
    assert a.client.current_endpoint != fresh_trio.endpoints[victim]
    assert b.read().record == held
    # a frozen member costs one share of the budget, once; then the store stays on a live member
    fresh_trio.restart(victim)
    frozen = fresh_trio.endpoints.index(b.client.current_endpoint)
    fresh_trio.freeze(frozen)
    try:
        deadline = time.monotonic() + 10
        read = b.read()
        while not read.ok and time.monotonic() < deadline:  # the cluster may be electing a new leader
            read = b.read()
        assert read.ok, read.problem
        assert b.client.current_endpoint != fresh_trio.endpoints[frozen]
        started = time.monotonic()
        assert b.read().record == held
        assert time.monotonic() - started < 0.5
    finally:
        fresh_trio.thaw(frozen)


def test_quorum_loss_fails_writes_and_reads_within_the_timeout_and_recovers(fresh_trio: EtcdCluster) -> None:
    prefix = _prefix()
    a = EtcdHeartbeatStore.from_url(fresh_trio.url(prefix, first=0) + "?timeout=1", "c")
    b = EtcdHeartbeatStore.from_url(fresh_trio.url(prefix, first=0) + "?timeout=1", "c")
    held = a.renew(a.acquire(0, heartbeat("a", 1)))
    fresh_trio.kill(1)
    fresh_trio.kill(2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        a.renew(held)
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    read = b.read()
    assert read.record is None and "etcd read failed" in read.problem  # a problem, never "no holder"
    assert time.monotonic() - started < 1.5
    with pytest.raises(StoreUnavailableError):
        b.acquire(1, heartbeat("b", 2))  # nobody can take over without a quorum
    with pytest.raises(StoreUnavailableError):
        b.publish_member(member("b"))
    fresh_trio.restart(1, wait=False)
    fresh_trio.restart(2, wait=False)
    fresh_trio.wait_healthy()
    deadline = time.monotonic() + 15
    while True:
        read = b.read()
        if read.ok or time.monotonic() > deadline:
            break
    assert read.record == held
    # exactly one of the two contenders for the next term wins
    outcomes = []
    for store, name in ((a, "a"), (b, "b")):
        try:
            store.acquire(1, heartbeat(name, 2))
            outcomes.append(name)
        except TermConflictError:
            outcomes.append("lost")
    assert sorted(outcomes) == ["a", "lost"]
    with pytest.raises(LostTermError):
        b.renew(heartbeat("b", 2))


def test_a_frozen_single_etcd_never_hangs_a_call(tmp_path: Path) -> None:
    with EtcdCluster(tmp_path, size=1) as cluster:
        store = EtcdHeartbeatStore(cluster.endpoints, "c", prefix="p", timeout=0.5)
        held = store.acquire(0, heartbeat("a", 1))
        cluster.freeze(0)
        try:
            started = time.monotonic()
            read = store.read()
            assert read.record is None and "timed out" in read.problem
            assert time.monotonic() - started < 0.9
            for call in (lambda: store.renew(held), store.read_members, store.read_switchover):
                started = time.monotonic()
                with pytest.raises(StoreUnavailableError, match="timed out"):
                    call()
                assert time.monotonic() - started < 0.9
        finally:
            cluster.thaw(0)
        assert store.renew(held).seq == 1


def test_starting_a_running_cluster_again_is_refused_rather_than_leaking_its_members(tmp_path: Path) -> None:
    with EtcdCluster(tmp_path, size=1) as cluster:
        first = cluster.members[0]
        with pytest.raises(RuntimeError, match="running already"):
            cluster.start()
        assert cluster.members[0] is first and first.running
    assert not first.running, "the with block closed the members it started"
