"""The nemesis and its fault plugin: in-process checks of the control file, then real node processes under
faults, audited with every audit in ``zetafailover.testing.audits``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zetafailover.assemble import open_store
from zetafailover.clock import SystemClock
from zetafailover.config import load_config
from zetafailover.errors import ConfigError, StoreUnavailableError
from zetafailover.interfaces import HeartbeatRecord, NodeState
from zetafailover.plugins import get_plugin_manager, make_store, register_modules
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.stores.file import FileHeartbeatStore
from zetafailover.testing import audits, fault_plugin
from zetafailover.testing.fault_plugin import ControlledStore, faulty_store_url
from zetafailover.testing.nemesis import FaultableNodes, Nemesis
from zetafailover.testing.processes import NodeProcesses

TIMING = {"heartbeat_interval": 0.25, "timeout": 2.5, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}
H, TIMEOUT = TIMING["heartbeat_interval"], TIMING["timeout"]


def record(term: int = 1, seq: int = 0) -> HeartbeatRecord:
    return HeartbeatRecord(cluster="c", holder="fax1", term=term, seq=seq, written_at=0.0, state=NodeState.ACTIVE)


def write(path: Path, value: object) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")


# ------------------------------------------------------------------------------------------ fault plugin


@pytest.fixture
def controlled(tmp_path: Path) -> Iterator[ControlledStore]:
    store = ControlledStore(FileHeartbeatStore(tmp_path / "shared", "c"), tmp_path / "fax1.faults.json")
    yield store
    store.close()
    fault_plugin.set_wall_offset(0.0)


def test_control_file_modes_switch_faults_on_and_off(controlled: ControlledStore, tmp_path: Path) -> None:
    control = tmp_path / "fax1.faults.json"
    held = controlled.acquire(0, record())  # no control file: no fault
    write(control, {"store": {"mode": "read_only"}})
    assert controlled.read().record == held  # reads still work
    with pytest.raises(StoreUnavailableError, match="read-only file system"):
        controlled.renew(held)
    write(control, {"store": {"mode": "full"}})
    with pytest.raises(StoreUnavailableError, match="no space left"):
        controlled.renew(held)
    write(control, {"store": {"mode": "unreadable"}})
    with pytest.raises(StoreUnavailableError, match="permission denied"):
        controlled.read()
    write(control, {"store": {"mode": "slow", "delay": 0.2}})
    t0 = time.monotonic()
    assert controlled.read().record == held
    assert time.monotonic() - t0 >= 0.2
    write(control, {"store": {"mode": "stale"}})
    renewed = controlled.renew(held)  # writes work; reads keep the last record they returned
    assert controlled.read().record == held and renewed != held
    write(control, {})
    assert controlled.read().record == renewed and controlled.mode == "ok"


def test_bad_control_file_keeps_the_faults_in_force(controlled: ControlledStore, tmp_path: Path) -> None:
    control = tmp_path / "fax1.faults.json"
    write(control, {"store": {"mode": "unreadable"}})
    controlled.refresh()
    for bad in ("{not json", json.dumps({"store": {"mode": "melting"}}), json.dumps([1])):
        control.write_text(bad, encoding="utf-8")
        with pytest.raises(StoreUnavailableError):
            controlled.read()
    with pytest.raises(ValueError, match=r"needs store\.delay"):
        fault_plugin.parse_control({"store": {"mode": "slow"}}, "f.json")
    with pytest.raises(ValueError, match="wall_offset"):
        fault_plugin.parse_control({"wall_offset": "1h"}, "f.json")


def test_wall_offset_moves_time_time_only(controlled: ControlledStore, tmp_path: Path) -> None:
    write(tmp_path / "fax1.faults.json", {"wall_offset": -86400})
    controlled.refresh()
    mono0 = time.monotonic()
    assert abs(time.time() - (fault_plugin._real_time() - 86400)) < 5
    assert time.monotonic() - mono0 < 5
    write(tmp_path / "fax1.faults.json", {})
    controlled.refresh()
    assert abs(time.time() - fault_plugin._real_time()) < 1


def test_store_scheme_through_the_plugin_manager(tmp_path: Path) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    register_modules(pm, ["zetafailover.testing.fault_plugin"])
    timing = load_config(_faultable_config(tmp_path)).timing
    url = faulty_store_url(tmp_path / "shared", tmp_path / "x.json")
    store = make_store(pm, url, "c", timing, SystemClock())
    assert isinstance(store, ControlledStore)
    store.close()
    with pytest.raises(ConfigError, match="control"):
        make_store(pm, f"faulty+file://{tmp_path}/shared", "c", timing, SystemClock())


def _faultable_config(folder: Path) -> Path:
    return FaultableNodes(folder, cluster="c", profile="fast", timing=TIMING).write_config("fax1", 200)


def test_faultable_nodes_write_a_config_the_node_loads(tmp_path: Path) -> None:
    config = load_config(_faultable_config(tmp_path))
    assert config.store_url.startswith("faulty+file://") and config.plugin_modules == (fault_plugin.__name__,)
    assert config.spool_dir == (tmp_path / "shared" / "spool").resolve()
    pm = get_plugin_manager(load_entrypoints=False)
    register_modules(pm, config.plugin_modules)
    store = open_store(config, pm=pm)
    assert isinstance(store, ControlledStore) and store.control == tmp_path / "fax1.faults.json"
    store.close()
    with pytest.raises(ConfigError, match="spool"):
        FaultableNodes(tmp_path, extra='\n[spool]\npath = "x"\n').write_config("fax2", 100)


def test_nemesis_writes_cumulative_control_files_and_refuses_bad_requests(tmp_path: Path) -> None:
    nodes = FaultableNodes(tmp_path, cluster="c")
    nemesis = Nemesis(nodes)
    nemesis.store_fault("slow", node="fax1", delay=0.3)
    nemesis.step_wall("fax1", 3600)
    nemesis.step_wall("fax1", -86400)
    assert json.loads(nodes.control_path("fax1").read_text()) == {
        "store": {"mode": "slow", "delay": 0.3},
        "wall_offset": -82800.0,
    }
    assert [a.action for a in nemesis.history] == ["store_fault", "wall_step", "wall_step"]
    assert all(a.mono <= b.mono for a, b in zip(nemesis.history, nemesis.history[1:], strict=False))
    nemesis.heal()
    assert json.loads(nodes.control_path("fax1").read_text()) == {}
    with pytest.raises(ValueError, match="melting"):
        nemesis.store_fault("melting", node="fax1")
    with pytest.raises(ValueError, match="delay > 0"):
        nemesis.store_fault("slow", node="fax1")
    with pytest.raises(TypeError, match="FaultableNodes"):
        Nemesis(NodeProcesses(tmp_path / "plain")).store_fault("unreadable", node="fax1")


# ---------------------------------------------------------------------------------------- real processes


def wait(pred: Callable[[], bool], limit: float, what: str, nodes: NodeProcesses) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {limit:g} s waiting for {what}\n{nodes.logs()}")


def pages(nodes: NodeProcesses, name: str) -> int:
    return sum(1 for e in nodes.device_log(name) if e["event"] == "page")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[FaultableNodes, Nemesis, DirectorySpool]]:
    nodes = FaultableNodes(
        tmp_path, cluster="nem", profile="fast", timing=TIMING, device_options={"page_seconds": 0.15}
    )
    nemesis = Nemesis(nodes)
    spool = DirectorySpool(tmp_path / "shared" / "spool", node="test")
    try:
        yield nodes, nemesis, spool
    finally:
        nemesis.heal()
        nodes.close()


@pytest.mark.realprocess
def test_sigkill_mid_fax_pauses_store_fault_and_switchover_pass_every_audit(
    pair: tuple[FaultableNodes, Nemesis, DirectorySpool], tmp_path: Path
) -> None:
    nodes, nemesis, spool = pair
    doc = tmp_path / "letter.tif"
    text_document(doc, [[f"page {i + 1}"] for i in range(5)])
    options = SubmitOptions(retry_delay_s=0.3, max_attempts=10)

    nemesis.start_together({"fax1": 200, "fax2": 100})
    first = nodes.wait_active(30)
    other = "fax2" if first.holder == "fax1" else "fax1"
    nemesis.step_wall(other, 3600)  # the standby's wall clock one hour ahead: no decision may notice
    batch1 = [spool.submit(doc, "5550100", options) for _ in range(4)]
    wait(lambda: pages(nodes, first.holder) >= 3, 30, "pages under way on the active", nodes)
    nemesis.kill(first.holder)  # mid-fax: two jobs in flight on its two channels
    second = nodes.wait_active(30, holder=other, above_term=first.term)

    nemesis.restart(first.holder)  # the former primary comes back passive
    nemesis.pause(first.holder, TIMEOUT + 1.0)  # a standby paused past the timeout: nothing happens
    nemesis.pause(other, 0.5)  # the active paused well inside its budget: no takeover
    nemesis.store_fault("read_only", node=first.holder)  # the standby cannot write its member record
    time.sleep(4 * H)
    nemesis.heal_store()
    wait(lambda: all(spool.get(j).terminal for j in batch1), 60, "batch 1 done", nodes)
    during = nodes.record()
    assert during is not None and during.term == second.term

    # a planned switchover back, with faxes in flight: they finish (drain) or resume; no page twice
    batch2 = [spool.submit(doc, "5550100", options) for _ in range(2)]
    wait(
        lambda: any(e["event"] == "page" and e.get("job") in batch2 for e in nodes.device_log(other)),
        30,
        "batch 2 under way",
        nodes,
    )
    switched = None
    for _ in range(20):  # the restarted standby must be seen healthy first
        switched = nemesis.switchover(to=first.holder, wait=60)
        if switched.detail["ok"]:
            break
        time.sleep(0.5)
    assert switched is not None and switched.detail["ok"], nemesis.history
    wait(lambda: all(spool.get(j).terminal for j in batch2), 60, "batch 2 done", nodes)

    events = audits.collect_events(nodes)
    devices = audits.collect_device_logs(nodes)
    assert audits.audit_single_actor(events, devices) == []
    assert audits.audit_jobs_terminal(spool, accepted=batch1 + batch2) == []
    assert all(spool.get(j).state == "sent" for j in batch1 + batch2)
    deaths = audits.deaths_from(events, nemesis.kills())
    assert audits.audit_duplicates(devices, planned=False, deaths=deaths) == []
    planned = {n: [e for e in log if e.get("job") in batch2] for n, log in devices.items()}
    assert audits.audit_duplicates(planned, planned=True) == []
    assert audits.audit_takeover_time(events, nemesis.kills(), bound=TIMEOUT + H + 3.0) == []
    # the evidence is real: the kill caused exactly one takeover, the switchover one more term
    assert [a.action for a in nemesis.history].count("kill") == 1
    final = nodes.record()
    assert final is not None and final.term == second.term + 1 and final.holder == first.holder
    assert pages(nodes, first.holder) > 0 and pages(nodes, other) > 0


@pytest.mark.realprocess
def test_wall_clock_one_hour_behind_on_the_active_still_sends(
    pair: tuple[FaultableNodes, Nemesis, DirectorySpool], tmp_path: Path
) -> None:
    nodes, nemesis, spool = pair
    doc = tmp_path / "short.tif"
    text_document(doc, [["one"]])
    nemesis.start("fax1", 200)
    nodes.wait_active(30, holder="fax1")
    nemesis.step_wall("fax1", -3600)
    time.sleep(4 * H)  # the offset reaches the node at its next store call
    job = spool.submit(doc, "5550100", SubmitOptions(retry_delay_s=0.3))
    wait(lambda: spool.get(job).state == "sent", 8, "the job sent", nodes)
