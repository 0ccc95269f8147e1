"""The dispatcher: claims due jobs onto device channels, records pages, completes, stops on a stale term."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from test_spool_basic import small_doc
from zetafailover.clock import SystemClock
from zetafailover.interfaces import DeviceHealth, InboundSink, OutboundFax, PageConfirmed, SendOutcome
from zetafailover.spool import DirectorySpool, Dispatcher, JobState, SubmitOptions


class FakeDevice:
    """A fax device whose calls succeed, fail or block as the test says; records what it was given."""

    driver = "fake"

    def __init__(self, name: str, channels: int = 1, outcome: Callable[[OutboundFax], str] | None = None) -> None:
        self.name = name
        self.channels = channels
        self.sent: list[OutboundFax] = []
        self.outcome = outcome or (lambda fax: "ok")
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def open(self, inbound: InboundSink | None) -> None: ...
    def start(self, term: int) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def monitor(self) -> DeviceHealth:
        return DeviceHealth.RUNNING

    def send(self, fax: OutboundFax, on_page: PageConfirmed) -> SendOutcome:
        with self.lock:
            self.sent.append(fax)
        what = self.outcome(fax)
        pages = int(Path(fax.pages[0]).stat().st_size > 0) and 3
        for p in range(fax.first_page, pages):
            self.gate.wait(10)
            on_page(p)
        if what == "ok":
            return SendOutcome(ok=True, pages_confirmed=pages)
        if what == "raise":
            raise RuntimeError("modem on fire")
        return SendOutcome(ok=False, pages_confirmed=0, reason="busy", retryable=what == "busy")


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_dispatcher_sends_everything_on_all_channels(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "s", node="a")
    spool.advance_term(1)
    doc = small_doc(tmp_path / "d.tif", pages=3, rows=2)
    ids = [spool.submit(doc, str(i)) for i in range(12)]
    devs = [FakeDevice("m0", channels=2), FakeDevice("m1")]
    d = Dispatcher(spool, devs, "a", SystemClock(), poll_s=0.05)
    assert d.pending == 12
    before = d.activity
    d.start(1)
    assert wait_for(lambda: all(spool.get(i).state == JobState.SENT for i in ids))
    d.stop()
    assert sorted(f.job_id for dev in devs for f in dev.sent) == sorted(ids)  # each sent exactly once
    assert d.activity - before == 12 * 3 + 12
    assert d.pending == 0


def test_failures_retry_and_device_errors(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "s", node="a")
    spool.advance_term(1)
    doc = small_doc(tmp_path / "d.tif", pages=3, rows=2)
    busy = spool.submit(doc, "1", SubmitOptions(max_attempts=2, retry_delay_s=0))
    fatal = spool.submit(doc, "2")
    boom = spool.submit(doc, "3", SubmitOptions(max_attempts=1))
    numbers = {"1": "busy", "2": "fatal", "3": "raise"}
    dev = FakeDevice("m0", outcome=lambda fax: numbers[fax.number])
    d = Dispatcher(spool, [dev], "a", SystemClock(), poll_s=0.02)
    d.start(1)
    assert wait_for(lambda: all(spool.get(i).terminal for i in (busy, fatal, boom)))
    d.stop()
    assert spool.get(busy).state == JobState.FAILED and spool.get(busy).attempts == 2
    assert spool.get(fatal).state == JobState.FAILED and spool.get(fatal).attempts == 1
    assert "modem on fire" in spool.get(boom).reason


def test_stale_term_stops_the_dispatcher_and_records_nothing(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "s", node="old")
    spool.advance_term(1)
    doc = small_doc(tmp_path / "d.tif", pages=3, rows=2)
    ids = [spool.submit(doc, str(i)) for i in range(3)]
    dev = FakeDevice("m0")
    dev.gate.clear()  # the call hangs before its first page
    d = Dispatcher(spool, [dev], "old", SystemClock(), poll_s=0.02)
    d.start(1)
    assert wait_for(lambda: len(dev.sent) == 1)
    DirectorySpool(tmp_path / "s", node="new").advance_term(2)  # takeover
    dev.gate.set()
    assert wait_for(lambda: d.stale)
    assert d.drain(10)
    assert not d.claiming
    job = spool.get(dev.sent[0].job_id)
    assert job.state == JobState.DIALING and job.pages_confirmed == 0 and job.term == 1  # nothing recorded
    assert len(dev.sent) == 1 and [spool.get(i).state for i in ids].count(JobState.QUEUED) == 2
    new = DirectorySpool(tmp_path / "s", node="new")
    assert new.recover(2) == [job.id]


def test_resume_passes_first_page_to_the_device(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "s", node="a")
    spool.advance_term(1)
    job_id = spool.submit(small_doc(tmp_path / "d.tif", pages=3, rows=2), "1")
    spool.claim(1, "m0")
    spool.page_confirmed(job_id, 0, 1)
    spool.page_confirmed(job_id, 1, 1)
    spool.advance_term(2)
    spool.recover(2)
    dev = FakeDevice("m0")
    d = Dispatcher(spool, [dev], "b", SystemClock(), poll_s=0.02)
    d.start(2)
    assert wait_for(lambda: spool.get(job_id).state == JobState.SENT)
    d.stop()
    assert dev.sent[0].first_page == 2 and dev.sent[0].term == 2


def test_workload_notifies_job_and_fax_hooks(tmp_path: Path) -> None:
    """The job_state_changed and fax_received hooks are fed by the spool workload."""
    from zetafailover.devices.loopback import LoopbackDevice
    from zetafailover.spool.render import text_document
    from zetafailover.spool.workload import SpoolWorkload

    seen: list[tuple[str, dict[str, object]]] = []
    spool = DirectorySpool(tmp_path / "spool", node="n1")
    device = LoopbackDevice("lo0", channels=1)
    work = SpoolWorkload(
        spool, [device], "n1", SystemClock(), poll_s=0.05, notify=lambda event, **kw: seen.append((event, kw))
    )
    device.open(work.inbound)
    assert work.recover(1) == []
    device.start(1)
    doc = tmp_path / "d.tif"
    text_document(doc, [["one"], ["two"]])
    job_id = spool.submit(doc, "5550100")
    work.start(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(e == "job_state_changed" for e, _ in seen):
        time.sleep(0.02)
    work.stop()
    jobs = [kw for e, kw in seen if e == "job_state_changed"]
    assert jobs and jobs[0]["job_id"] == job_id and jobs[0]["state"] == "sent" and jobs[0]["term"] == 1
    fax_id = work.inbound.fax_received("lo0", "5550199", [b"page-1"], True, 1)
    faxes = [kw for e, kw in seen if e == "fax_received"]
    assert faxes == [{"fax_id": fax_id, "device": "lo0", "caller": "5550199", "pages": 1, "complete": True}]
