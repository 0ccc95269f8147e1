"""Spool faults and fax-worker deaths: the faulty spool in-process, the dispatcher's policy under it, then real
node processes under the nemesis's ``spool_fault`` / ``folder_fault`` / ``kill_worker``, audited."""

from __future__ import annotations

import errno
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zetafailover.clock import SystemClock
from zetafailover.config import load_config
from zetafailover.errors import ConfigError
from zetafailover.interfaces import DeviceHealth, InboundSink, OutboundFax, PageConfirmed, SendOutcome
from zetafailover.plugins import get_plugin_manager, hookimpl, make_spool, register_modules
from zetafailover.spool import DirectorySpool, Dispatcher, JobState, SubmitOptions
from zetafailover.spool.dispatcher import MAX_STRIKES
from zetafailover.spool.render import text_document
from zetafailover.spool.workload import SpoolWorkload
from zetafailover.testing import audits, fault_plugin
from zetafailover.testing.faulty_spool import ControlledSpool, WorkerKilled, parse_spool_control
from zetafailover.testing.nemesis import FaultableNodes, Nemesis
from zetafailover.testing.processes import NodeProcesses

TIMING = {"heartbeat_interval": 0.25, "timeout": 2.5, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}
H, TIMEOUT = TIMING["heartbeat_interval"], TIMING["timeout"]


def write(path: Path, value: object) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")


def wait_for(pred: Callable[[], bool], limit: float, what: str, logs: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {limit:g} s waiting for {what}\n{logs()}")


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "letter.tif"
    text_document(path, [[f"page {i + 1}"] for i in range(4)])
    return path


@pytest.fixture
def faulty(tmp_path: Path) -> ControlledSpool:
    spool = ControlledSpool(tmp_path / "spool", node="fax1", control=tmp_path / "fax1.faults.json")
    spool.advance_term(1)
    return spool


# --------------------------------------------------------------------------------------- the faulty spool


def test_spool_modes_raise_what_a_real_folder_raises(faulty: ControlledSpool, tmp_path: Path, doc: Path) -> None:
    control = tmp_path / "fax1.faults.json"
    job = faulty.submit(doc, "5550100")  # no control file: no fault
    write(control, {"spool": {"mode": "read_only"}})
    assert faulty.get(job).state == JobState.QUEUED and faulty.pending_count() == 1  # reads work
    with pytest.raises(OSError) as erofs:
        faulty.claim(1, "lo0")
    assert erofs.value.errno == errno.EROFS and "claim" in str(erofs.value)
    write(control, {"spool": {"mode": "full"}})
    with pytest.raises(OSError) as enospc:
        faulty.submit(doc, "5550100")
    assert enospc.value.errno == errno.ENOSPC
    write(control, {"spool": {"mode": "unreadable"}})
    with pytest.raises(PermissionError):
        faulty.get(job)
    with pytest.raises(PermissionError):
        faulty.fax_received("lo0", "5550199", [b"page"], True, 1)
    write(control, {"spool": {"mode": "slow", "delay": 0.2}})
    t0 = time.monotonic()
    fax = faulty.fax_received("lo0", "5550199", [b"p1", b"p2"], True, 1)  # nested calls: one delay, not four
    assert 0.2 <= time.monotonic() - t0 < 0.75
    write(control, {})
    claimed = faulty.claim(1, "lo0")
    assert claimed is not None and claimed.id == job and faulty.faults.mode == "ok"
    assert faulty.get_inbound(fax).pages == 2
    # an injected failure leaves the folder untouched: the failed submits and claim wrote nothing
    assert [j.id for j in DirectorySpool(tmp_path / "spool", node="x").jobs()] == [job]


def test_bad_control_files_are_refused_and_keep_the_faults(faulty: ControlledSpool, tmp_path: Path) -> None:
    control = tmp_path / "fax1.faults.json"
    write(control, {"spool": {"mode": "unreadable"}})
    faulty.refresh()
    for bad in ({"spool": {"mode": "melting"}}, {"spool": {"mode": "slow"}}, {"worker": {"kill": 3}}, [1]):
        write(control, bad)
        with pytest.raises(PermissionError):
            faulty.current_term()
    with pytest.raises(ValueError, match=r"f\.json: spool\.mode 'melting'"):
        parse_spool_control({"spool": {"mode": "melting"}}, "f.json")
    with pytest.raises(ValueError, match=r"spool\.delay"):
        parse_spool_control({"spool": {"mode": "slow", "delay": -1}}, "f.json")
    with pytest.raises(ValueError, match=r"worker\.kill"):
        parse_spool_control({"worker": {"kill": 7}}, "f.json")


def test_kill_tokens_kill_once_each_and_an_old_token_never(tmp_path: Path, doc: Path) -> None:
    control = tmp_path / "fax1.faults.json"
    write(control, {"worker": {"kill": "old"}})
    spool = ControlledSpool(tmp_path / "spool", node="fax1", control=control)
    spool.advance_term(1)
    for _ in range(2):
        spool.submit(doc, "5550100")
    job = spool.claim(1, "lo0")
    assert job is not None
    spool.page_confirmed(job.id, 0, 1)  # the token in force at start-up is not for this spool
    write(control, {"worker": {"kill": "new"}})
    with pytest.raises(WorkerKilled, match="before recording page 1"):
        spool.page_confirmed(job.id, 1, 1)
    assert spool.get(job.id).pages_confirmed == 1  # killed before the record
    spool.page_confirmed(job.id, 1, 1)  # one death per token
    write(control, {"worker": {"kill": "withdrawn"}})
    write(control, {})  # healed before any page: the request is withdrawn
    spool.page_confirmed(job.id, 2, 1)
    assert spool.killed == 1 and not issubclass(WorkerKilled, Exception)


def test_the_fault_plugin_provides_the_spool_through_the_hook(tmp_path: Path) -> None:
    nodes = FaultableNodes(tmp_path, cluster="c", profile="fast", timing=TIMING)
    config = load_config(nodes.write_config("fax1", 200))
    pm = get_plugin_manager(load_entrypoints=False)
    plain = make_spool(pm, config, tmp_path / "plain", SystemClock())
    assert type(plain) is DirectorySpool  # no plugin: the core's own spool
    register_modules(pm, config.plugin_modules)
    assert config.spool_dir is not None
    spool = make_spool(pm, config, config.spool_dir, SystemClock())
    assert isinstance(spool, ControlledSpool) and spool.control == nodes.control_path("fax1").resolve()
    assert fault_plugin.control_path_of("file:///x") is None

    class Wrong:
        @hookimpl(tryfirst=True)
        def zetafailover_make_spool(self) -> object:
            return object()

    pm.register(Wrong(), name="wrong")
    with pytest.raises(ConfigError, match=r"spool\.path.*not a DirectorySpool"):
        make_spool(pm, config, config.spool_dir, SystemClock())


# ------------------------------------------------------------------------------------- the dispatcher


class ScriptedDevice:
    """One channel; each page first runs ``before_page(fax, index)`` (the test's hook), then is confirmed."""

    driver = "scripted"

    def __init__(
        self,
        before_page: Callable[[OutboundFax, int], None] = lambda fax, index: None,
        after_send: Callable[[OutboundFax], None] = lambda fax: None,
    ) -> None:
        self.name = "lo0"
        self.channels = 1
        self.before_page = before_page
        self.after_send = after_send
        self.calls: list[OutboundFax] = []
        self.pages: list[tuple[str, int]] = []
        """(job, page) of every page whose confirmation was recorded (on_page returned)."""

    def open(self, inbound: InboundSink | None) -> None: ...
    def start(self, term: int) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def monitor(self) -> DeviceHealth:
        return DeviceHealth.RUNNING

    def send(self, fax: OutboundFax, on_page: PageConfirmed) -> SendOutcome:
        self.calls.append(fax)
        for index in range(fax.first_page, fax.total_pages):
            time.sleep(0.01)
            self.before_page(fax, index)
            on_page(index)
            self.pages.append((fax.job_id, index))
        self.after_send(fax)
        return SendOutcome(True, fax.total_pages)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, term: int, **fields: Any) -> None:
        self.seen.append((kind, fields))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.seen]


@pytest.fixture
def run_dispatcher(faulty: ControlledSpool) -> Iterator[Callable[[ScriptedDevice], tuple[Dispatcher, Events]]]:
    started: list[Dispatcher] = []

    def run(device: ScriptedDevice) -> tuple[Dispatcher, Events]:
        events = Events()
        d = Dispatcher(faulty, [device], "fax1", SystemClock(), poll_s=0.05, on_event=events)
        started.append(d)
        d.start(1)
        return d, events

    yield run
    for d in started:
        d.stop()


def every_page_once(device: ScriptedDevice, jobs: list[str], pages: int = 4) -> None:
    assert sorted(device.pages) == sorted((j, p) for j in jobs for p in range(pages))


def test_unreadable_spool_mid_call_holds_the_job_and_resumes_it_at_the_unrecorded_page(
    faulty: ControlledSpool, tmp_path: Path, doc: Path, run_dispatcher: Any
) -> None:
    control = tmp_path / "fax1.faults.json"
    job = faulty.submit(doc, "5550100")
    fired = threading.Event()

    def fault_at_page_2(fax: OutboundFax, index: int) -> None:
        if index == 2 and not fired.is_set():
            fired.set()
            write(control, {"spool": {"mode": "unreadable"}})

    probes: list[str] = []

    def counting(name: str) -> Callable[..., Any]:
        real = getattr(faulty, name)

        def call(*args: Any) -> Any:
            probes.append(name)
            return real(*args)

        return call

    for name in ("claim", "get"):
        setattr(faulty, name, counting(name))
    device = ScriptedDevice(fault_at_page_2)
    d, events = run_dispatcher(device)
    wait_for(lambda: "spool_fault" in events.kinds(), 10, "the spool fault noticed")
    probes.clear()
    time.sleep(1.0)  # the fault lasts: nothing is claimed, the job stays held and in flight
    assert 1 <= len(probes) <= 6, probes  # probed with back-off (0.1, 0.2, 0.4 s…), not every poll (0.05 s)
    assert d.in_flight == 1 and d.spool_problem and d.pending_estimate >= 1
    assert len(device.calls) == 1 and DirectorySpool(faulty.root, node="x").get(job).state == JobState.SENDING
    write(control, {})
    wait_for(lambda: faulty.get(job).state == JobState.SENT, 10, "the job sent")
    assert [c.first_page for c in device.calls] == [0, 2]  # resumed at the page that was not recorded
    every_page_once(device, [job])
    assert faulty.get(job).attempts == 1 and faulty.get(job).failures == 0  # a spool fault is not a failed try
    assert audits.audit_jobs_terminal(faulty, [job]) == []
    assert events.kinds() == ["spool_fault", "spool_ok"] and d.spool_problem == ""


@pytest.mark.parametrize("mode", ["read_only", "full"])
def test_a_completion_the_spool_refuses_is_recorded_once_it_answers(
    mode: str, faulty: ControlledSpool, tmp_path: Path, doc: Path, run_dispatcher: Any
) -> None:
    control = tmp_path / "fax1.faults.json"
    jobs = [faulty.submit(doc, "5550100") for _ in range(2)]
    fired = threading.Event()

    def fault_after_last_page(fax: OutboundFax) -> None:
        if not fired.is_set():
            fired.set()
            write(control, {"spool": {"mode": mode}})

    device = ScriptedDevice(after_send=fault_after_last_page)
    d, events = run_dispatcher(device)
    wait_for(lambda: "spool_fault" in events.kinds(), 10, "the spool fault noticed")
    time.sleep(0.4)
    assert d.in_flight == 1 and faulty.get(jobs[1]).state == JobState.QUEUED  # reads work; nothing new claimed
    write(control, {})
    wait_for(lambda: all(faulty.get(j).state == JobState.SENT for j in jobs), 10, "both jobs sent")
    every_page_once(device, jobs)
    assert audits.audit_jobs_terminal(faulty, jobs) == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_a_dead_worker_is_replaced_and_its_job_resumed(
    faulty: ControlledSpool, tmp_path: Path, doc: Path, run_dispatcher: Any
) -> None:
    control = tmp_path / "fax1.faults.json"
    job = faulty.submit(doc, "5550100")
    fired = threading.Event()

    def kill_at_page_1(fax: OutboundFax, index: int) -> None:
        if index == 1 and not fired.is_set():
            fired.set()
            write(control, {"worker": {"kill": "k1"}})

    device = ScriptedDevice(kill_at_page_1)
    d, events = run_dispatcher(device)
    wait_for(lambda: faulty.get(job).state == JobState.SENT, 10, "the job sent")
    assert d.worker_deaths == 1 and faulty.killed == 1
    (died,) = [f for k, f in events.seen if k == "worker_died"]
    assert died["job"] == job and "WorkerKilled" in died["error"]
    assert [c.first_page for c in device.calls] == [0, 1]
    every_page_once(device, [job])
    assert audits.audit_jobs_terminal(faulty, [job]) == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_a_job_that_kills_every_worker_ends_as_failed_tries_not_a_loop(
    faulty: ControlledSpool, tmp_path: Path, doc: Path, run_dispatcher: Any
) -> None:
    control = tmp_path / "fax1.faults.json"
    job = faulty.submit(doc, "5550100", SubmitOptions(max_attempts=1))
    kills = iter(range(1000))

    def always_kill(fax: OutboundFax, index: int) -> None:
        write(control, {"worker": {"kill": f"k{next(kills)}"}})

    device = ScriptedDevice(always_kill)
    d, _events = run_dispatcher(device)
    wait_for(lambda: faulty.get(job).terminal, 20, "the job ended")
    final = faulty.get(job)
    assert final.state == JobState.FAILED and f"worker died {MAX_STRIKES} times" in final.reason
    assert d.worker_deaths == MAX_STRIKES and len(device.calls) == MAX_STRIKES


def test_a_slow_spool_never_holds_up_the_heartbeats_figures(faulty: ControlledSpool, tmp_path: Path) -> None:
    work = SpoolWorkload(faulty, [ScriptedDevice()], "fax1", SystemClock(), poll_s=0.05)
    write(tmp_path / "fax1.faults.json", {"spool": {"mode": "slow", "delay": 1.0}})
    work.start(1)
    try:
        t0 = time.monotonic()
        figures = (work.pending, work.activity, work.in_flight)
        assert time.monotonic() - t0 < 0.1, figures
    finally:
        write(tmp_path / "fax1.faults.json", {})
        work.stop()


# ---------------------------------------------------------------------------------------- real processes


def pages_sent(nodes: NodeProcesses, name: str) -> int:
    return sum(1 for e in nodes.device_log(name) if e["event"] == "page")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[FaultableNodes, Nemesis, DirectorySpool]]:
    nodes = FaultableNodes(
        tmp_path, cluster="nsp", profile="fast", timing=TIMING, device_options={"page_seconds": 0.15}
    )
    nemesis = Nemesis(nodes)
    spool = DirectorySpool(tmp_path / "shared" / "spool", node="submitter")
    try:
        yield nodes, nemesis, spool
    finally:
        nemesis.heal()
        nodes.close()


def start_pair(nodes: FaultableNodes, nemesis: Nemesis) -> tuple[str, str, int]:
    nemesis.start_together({"fax1": 200, "fax2": 100})
    first = nodes.wait_active(30)
    return first.holder, ("fax2" if first.holder == "fax1" else "fax1"), first.term


def audit_run(
    nodes: FaultableNodes, nemesis: Nemesis, spool: DirectorySpool, accepted: list[str], pages: int = 4
) -> None:
    events = audits.collect_events(nodes)
    devices = audits.collect_device_logs(nodes)
    assert audits.audit_single_actor(events, devices) == []
    assert audits.audit_jobs_terminal(spool, accepted=accepted) == []
    assert audits.audit_duplicates(devices, planned=False, deaths=audits.deaths_from(events, nemesis.kills())) == []
    assert audits.audit_takeover_time(events, nemesis.kills(), bound=TIMEOUT + H + 3.0) == []
    assert all(spool.get(j).state == JobState.SENT for j in accepted), [spool.get(j) for j in accepted]
    sent = {(e["job"], e["page"]) for log in devices.values() for e in log if e["event"] == "page"}
    lost = [(j, p) for j in accepted for p in range(pages) if (j, p) not in sent]
    assert lost == [], "pages never sent"


@pytest.mark.realprocess
@pytest.mark.parametrize("mode", ["unreadable", "read_only", "full", "slow"])
def test_spool_fault_on_the_active_under_load(
    mode: str, pair: tuple[FaultableNodes, Nemesis, DirectorySpool], doc: Path
) -> None:
    nodes, nemesis, spool = pair
    active, _standby, term = start_pair(nodes, nemesis)
    options = SubmitOptions(retry_delay_s=0.3, max_attempts=10)
    jobs = [spool.submit(doc, "5550100", options) for _ in range(4)]
    wait_for(lambda: pages_sent(nodes, active) >= 2, 30, "pages under way", nodes.logs)
    nemesis.spool_fault(mode, node=active, delay=0.4)
    jobs += [spool.submit(doc, "5550100", options) for _ in range(2)]  # accepted while the fault lasts
    if mode == "slow":
        time.sleep(2.0)
    else:
        wait_for(lambda: nodes.events(active, "spool_fault") != [], 15, "the active noticing", nodes.logs)
        stuck = pages_sent(nodes, active)
        time.sleep(1.5)
        assert pages_sent(nodes, active) <= stuck + 2  # at most the pages already past their record
    nemesis.heal_spool()
    wait_for(lambda: all(spool.get(j).terminal for j in jobs), 60, "every job done", nodes.logs)
    assert f"spool mode {mode}" in (nodes.folder / f"{active}.log").read_text()  # the node saw the fault
    record = nodes.record()
    assert record is not None and record.term == term and record.holder == active  # the store never failed
    audit_run(nodes, nemesis, spool, jobs)
    if mode != "slow":
        assert nodes.events(active, "spool_ok") != []


@pytest.mark.realprocess
def test_spool_unreadable_on_both_nodes_then_healed(
    pair: tuple[FaultableNodes, Nemesis, DirectorySpool], doc: Path
) -> None:
    nodes, nemesis, spool = pair
    active, _standby, term = start_pair(nodes, nemesis)
    options = SubmitOptions(retry_delay_s=0.3, max_attempts=10)
    jobs = [spool.submit(doc, "5550100", options) for _ in range(3)]
    wait_for(lambda: pages_sent(nodes, active) >= 1, 30, "pages under way", nodes.logs)
    nemesis.spool_fault("unreadable")
    jobs.append(spool.submit(doc, "5550100", options))
    time.sleep(TIMEOUT)  # longer than the timeout: the heartbeat still flows, nobody takes over
    nemesis.heal_spool()
    wait_for(lambda: all(spool.get(j).terminal for j in jobs), 60, "every job done", nodes.logs)
    record = nodes.record()
    assert record is not None and record.term == term
    audit_run(nodes, nemesis, spool, jobs)


@pytest.mark.realprocess
def test_read_only_folder_on_the_active_hands_its_jobs_to_the_standby(
    pair: tuple[FaultableNodes, Nemesis, DirectorySpool], doc: Path
) -> None:
    nodes, nemesis, spool = pair
    active, standby, term = start_pair(nodes, nemesis)
    options = SubmitOptions(retry_delay_s=0.3, max_attempts=10)
    jobs = [spool.submit(doc, "5550100", options) for _ in range(4)]
    wait_for(lambda: pages_sent(nodes, active) >= 2, 30, "pages under way", nodes.logs)
    nemesis.folder_fault("read_only", node=active)  # store and spool: the active self-fences
    nodes.wait_active(30, holder=standby, above_term=term)
    nemesis.heal_folder()
    wait_for(lambda: all(spool.get(j).terminal for j in jobs), 60, "every job done", nodes.logs)
    assert nodes.events(active, "self_fenced") != []
    audit_run(nodes, nemesis, spool, jobs)
    assert pages_sent(nodes, standby) > 0


@pytest.mark.realprocess
def test_the_actives_fax_worker_dies_mid_job_and_the_job_completes(
    pair: tuple[FaultableNodes, Nemesis, DirectorySpool], tmp_path: Path
) -> None:
    nodes, nemesis, spool = pair
    long_doc = tmp_path / "long.tif"
    text_document(long_doc, [[f"page {i + 1}"] for i in range(6)])
    active, _standby, term = start_pair(nodes, nemesis)
    jobs = [spool.submit(long_doc, "5550100", SubmitOptions(retry_delay_s=0.3)) for _ in range(2)]
    wait_for(lambda: pages_sent(nodes, active) >= 2, 30, "pages under way", nodes.logs)
    nemesis.kill_worker(active)
    wait_for(lambda: nodes.events(active, "worker_died") != [], 15, "the worker's death noticed", nodes.logs)
    (died,) = nodes.events(active, "worker_died")
    assert died["job"] in jobs and "WorkerKilled" in died["error"]
    wait_for(lambda: all(spool.get(j).terminal for j in jobs), 60, "every job done", nodes.logs)
    record = nodes.record()
    assert record is not None and record.term == term and record.holder == active  # the node lived on
    audit_run(nodes, nemesis, spool, jobs, pages=6)
    dials = [e for e in nodes.device_log(active) if e["event"] == "dial" and e["job"] == died["job"]]
    assert len(dials) == 2 and dials[1]["first_page"] > 0  # resumed, not restarted from page 1
    assert [a.action for a in nemesis.history].count("kill_worker") == 1


@pytest.mark.realprocess
def test_with_the_hung_check_a_standby_replaces_an_active_whose_spool_fails(tmp_path: Path, doc: Path) -> None:
    nodes = FaultableNodes(
        tmp_path,
        cluster="nsp",
        profile="fast",
        timing={**TIMING, "activity_timeout": 2.0},
        device_options={"page_seconds": 0.15},
    )
    nemesis = Nemesis(nodes)
    spool = DirectorySpool(tmp_path / "shared" / "spool", node="submitter")
    try:
        active, standby, term = start_pair(nodes, nemesis)
        options = SubmitOptions(retry_delay_s=0.3, max_attempts=10)
        jobs = [spool.submit(doc, "5550100", options) for _ in range(6)]
        wait_for(lambda: pages_sent(nodes, active) >= 2, 30, "pages under way", nodes.logs)
        nemesis.spool_fault("unreadable", node=active)  # only this host's view of the share breaks
        nodes.wait_active(30, holder=standby, above_term=term)
        hung = [e for e in nodes.events(standby, "peer") if e.get("liveness") == "hung"]
        assert hung, "the standby took over for another reason"
        wait_for(lambda: all(spool.get(j).terminal for j in jobs), 60, "every job done", nodes.logs)
        audit_run(nodes, nemesis, spool, jobs)
        assert pages_sent(nodes, standby) > 0
    finally:
        nemesis.heal()
        nodes.close()
