"""Real node processes on a real 3-member etcd cluster (issue 7): SIGKILL of the active, death of the etcd member
a node talks to, loss of the etcd quorum, SIGSTOP of the active.

Every node's store URL lists all three members, starting with "its" member (fax1 → member 0, fax2 → member
1, fax3 → member 2). Bounds are generous where load on 2 shared cores could stretch them, never looser than
the issue's acceptance criteria. Skipped (with the reason) only where ``/usr/bin/etcd`` is missing.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zetafailover.errors import StaleTermError
from zetafailover.interfaces import NodeState
from zetafailover.spool.directory import DirectorySpool
from zetafailover.testing.etcd import EtcdCluster, EtcdNodeProcesses, etcd_missing_reason

pytestmark = [
    pytest.mark.realprocess,
    pytest.mark.skipif(bool(etcd_missing_reason()), reason=etcd_missing_reason() or "etcd is installed"),
]

# Rule: 0.25 + 2 × 0.6 + 0.6 = 2.05 ≤ 3.0; fence 1.0 + store 0.6 ≤ timeout − margin = 2.4. Lease TTL: 3 s.
TIMING = {"heartbeat_interval": 0.25, "timeout": 3.0, "store_timeout": 0.6, "margin": 0.6, "fence_timeout": 1.0}
H, TIMEOUT, MARGIN = TIMING["heartbeat_interval"], TIMING["timeout"], TIMING["margin"]
SELF_FENCE_AFTER = TIMEOUT - MARGIN
NODES = (("fax1", 300, 0), ("fax2", 200, 1), ("fax3", 100, 2))  # name, priority, the etcd member it talks to


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path / "etcd", size=3) as cluster:
        yield cluster


def _nodes(tmp_path: Path, etcd: EtcdCluster, terminator: str = "pid") -> EtcdNodeProcesses:
    return EtcdNodeProcesses(
        tmp_path / "nodes",
        etcd,
        prefix=f"zf-{uuid.uuid4().hex[:8]}",
        cluster="etcdtest",
        profile="fast",
        timing=TIMING,
        terminator=terminator,
    )


@pytest.fixture
def trio(tmp_path: Path, etcd: EtcdCluster) -> Iterator[EtcdNodeProcesses]:
    (tmp_path / "nodes").mkdir()
    nodes = _nodes(tmp_path, etcd)
    yield nodes
    nodes.close()


@pytest.fixture
def unfenceable_trio(tmp_path: Path, etcd: EtcdCluster) -> Iterator[EtcdNodeProcesses]:
    """Terminator ``none``: the frozen old active is not killed, so it can resume and must stand down."""
    (tmp_path / "nodes").mkdir()
    nodes = _nodes(tmp_path, etcd, terminator="none")
    yield nodes
    nodes.close()


def _start_all(nodes: EtcdNodeProcesses) -> None:
    for name, priority, member in NODES:
        nodes.start(name, priority, first_endpoint=member)


def _events_after(nodes: EtcdNodeProcesses, name: str, mono: float, kinds: set[str]) -> list[dict[str, Any]]:
    return [e for e in nodes.events(name) if float(e["mono"]) >= mono and e["kind"] in kinds]


def _last_state(nodes: EtcdNodeProcesses, name: str) -> str:
    transitions = nodes.events(name, "transition")
    return str(transitions[-1]["to_state"]) if transitions else "passive"


def test_sigkill_of_the_active_highest_priority_standby_takes_over(trio: EtcdNodeProcesses) -> None:
    _start_all(trio)
    first = trio.wait_active(60)
    time.sleep(6 * H)  # every standby has seen the active alive
    standbys = [(priority, name) for name, priority, _ in NODES if name != first.holder]
    expected = max(standbys)[1]
    killed = trio.signal(first.holder, signal.SIGKILL)
    second = trio.wait_active(TIMEOUT + 15, above_term=first.term)
    assert second.holder == expected, f"{second.holder} took over, expected the highest-priority standby {expected}"
    assert second.term == first.term + 1
    active_at = trio.became_active_at(expected, second.term)
    assert active_at is not None
    assert active_at - killed <= TIMEOUT + H + 1.5, f"takeover took {active_at - killed:.2f} s"
    fence = trio.events(expected, "fence")[-1]
    assert fence["confirmed"] is True, fence
    # the old active's term is refused by the spool
    spool = DirectorySpool(trio.spool_dir, node="probe")
    assert spool.current_term() == second.term
    with pytest.raises(StaleTermError):
        spool.advance_term(first.term)
    with pytest.raises(StaleTermError):
        spool.claim(first.term, f"{first.holder}-lo0")
    # the other standby stayed passive
    other = next(name for _, name in standbys if name != expected)
    assert not trio.events(other, "term_won")


def test_killing_the_etcd_member_a_node_talks_to_changes_no_role(trio: EtcdNodeProcesses) -> None:
    _start_all(trio)
    first = trio.wait_active(60)
    time.sleep(6 * H)
    member = trio.first_endpoint[first.holder]
    killed = trio.etcd.kill(member)
    time.sleep(2 * TIMEOUT)  # a takeover, if any, would have happened by now
    record = trio.record()
    assert record is not None and (record.holder, record.term) == (first.holder, first.term), trio.logs()
    assert record.state == NodeState.ACTIVE and record.seq > first.seq
    for name, _, _ in NODES:
        changes = _events_after(trio, name, killed, {"transition", "term_won", "self_fenced", "stood_down"})
        assert changes == [], f"{name}: {changes}"


def test_quorum_loss_self_fences_the_active_and_nobody_takes_over_until_it_returns(trio: EtcdNodeProcesses) -> None:
    _start_all(trio)
    first = trio.wait_active(60)
    time.sleep(6 * H)
    survivor = trio.first_endpoint[first.holder]  # the active keeps "its" member: it still cannot write
    lost = [i for i in range(3) if i != survivor]
    killed = min(trio.etcd.kill(i) for i in lost)
    # the active self-fences by timeout − margin after its last successful renew (which preceded the kill)
    deadline = time.monotonic() + SELF_FENCE_AFTER + 10
    fenced: list[dict[str, Any]] = []
    while not fenced and time.monotonic() < deadline:
        fenced = _events_after(trio, first.holder, killed, {"self_fenced"})
        time.sleep(0.05)
    assert fenced, trio.logs()
    assert float(fenced[0]["mono"]) - killed <= SELF_FENCE_AFTER + 0.5, fenced
    # nobody takes over while there is no quorum
    time.sleep(2 * TIMEOUT)
    for name, _, _ in NODES:
        assert not _events_after(trio, name, killed, {"term_won"}), name
        assert _last_state(trio, name) == "passive", name
    # quorum returns: exactly one node becomes active, in a higher term
    returned = time.monotonic()
    for i in lost:
        trio.etcd.restart(i, wait=False)
    trio.etcd.wait_healthy(timeout=30)
    second = trio.wait_active(2 * TIMEOUT + 20, above_term=first.term)
    assert second.term == first.term + 1
    time.sleep(6 * H)
    active = [name for name, _, _ in NODES if _last_state(trio, name) == "active"]
    assert active == [second.holder], active
    winners = [name for name, _, _ in NODES if _events_after(trio, name, returned, {"term_won"})]
    assert winners == [second.holder], winners


def test_sigstop_of_the_active_for_two_timeouts(unfenceable_trio: EtcdNodeProcesses) -> None:
    nodes = unfenceable_trio
    _start_all(nodes)
    first = nodes.wait_active(60)
    time.sleep(6 * H)
    stopped = nodes.signal(first.holder, signal.SIGSTOP)
    second = nodes.wait_active(3 * TIMEOUT + 15, above_term=first.term)
    assert second.holder != first.holder and second.term == first.term + 1
    time.sleep(max(0.0, stopped + 2 * TIMEOUT - time.monotonic()))
    nodes.procs[first.holder].send_signal(signal.SIGCONT)
    resumed_wall = time.time()
    time.sleep(8 * H)
    # the resumed old active stood down and did nothing under its old term
    after = [e for e in nodes.events(first.holder) if float(str(e["ts"])) >= resumed_wall - 0.05]
    kinds = [str(e["kind"]) for e in after]
    assert "self_fenced" in kinds or "stood_down" in kinds, kinds
    assert not [e for e in after if e["kind"] in ("term_won", "devices_online", "lines_switched")]
    device_after = [e for e in nodes.device_log(first.holder) if float(str(e["ts"])) >= resumed_wall - 0.05]
    assert all(e["event"] == "stop" for e in device_after), device_after
    record = nodes.record()
    assert record is not None and (record.holder, record.term) == (second.holder, second.term)
    assert record.state == NodeState.ACTIVE
    with pytest.raises(StaleTermError):
        DirectorySpool(nodes.spool_dir, node="probe").advance_term(first.term)
