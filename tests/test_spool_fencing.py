"""Term fencing and recovery: stale terms refused under a concurrent takeover, a paused old active does
nothing, failover with jobs in flight resumes at the right page, recovery cost ignores the queue size."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from test_spool_basic import small_doc, tree
from zetafailover.clock import FakeClock
from zetafailover.errors import StaleTermError
from zetafailover.spool import DirectorySpool, InboundState, JobState
from zetafailover.spool import records as rec
from zetafailover.spool.tiff import write_tiff


class CountingClock:
    """A clock whose wall time is a global logical counter: it orders every stamp taken by any thread."""

    def __init__(self) -> None:
        self._n = itertools.count(1)
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        with self._lock:
            return float(next(self._n))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def all_records(root: Path) -> list[dict[str, object]]:
    out = []
    for folder in (root / "jobs").iterdir():
        fd = rec.open_dir(folder)
        try:
            out.extend(rec.read_all_records(fd))
        finally:
            import os

            os.close(fd)
    return out


def test_stale_term_refused_under_concurrent_takeover(tmp_path: Path) -> None:
    clock = CountingClock()
    root = tmp_path / "spool"
    old = DirectorySpool(root, node="old", clock=clock)
    old.advance_term(1)
    doc = small_doc(tmp_path / "d.tif", pages=2, rows=2)
    for _ in range(150):
        old.submit(doc, "123")
    new = DirectorySpool(root, node="new", clock=clock)
    refused_after: list[str] = []
    succeeded_after: list[str] = []
    advanced = threading.Event()
    stop = threading.Event()
    some_done = threading.Event()
    done_count = itertools.count(1)

    def worker(n: int) -> None:
        while not stop.is_set():
            started_after = advanced.is_set()
            try:
                job = old.claim(1, f"m{n}")
                if job is None:
                    return
                old.page_confirmed(job.id, 0, 1)
                old.page_confirmed(job.id, 1, 1)
                old.complete(job.id, 1, ok=True)
                if next(done_count) >= 10:
                    some_done.set()
                if started_after:
                    succeeded_after.append(job.id)
            except StaleTermError:
                refused_after.append("x")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    assert some_done.wait(30)
    new.advance_term(2)
    term_at = float(__import__("json").loads((root / "term").read_bytes())["at"])
    advanced.set()
    time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    assert refused_after, "the old term was never refused"
    assert succeeded_after == [], "an operation that started after the takeover succeeded with the old term"
    # Linearizability: every record stamped with term 1 was written before the term file said 2.
    for body in all_records(root):
        if body["term"] == 1:
            assert float(body["at"]) < term_at  # type: ignore[arg-type]
    # Nothing is lost: every job is queued, in flight under term 1 (to be recovered) or sent.
    new.recover(2)
    assert {j.state for j in new.jobs()} <= {JobState.QUEUED, JobState.SENT}
    assert len(new.jobs()) == 150
    assert any(j.state == JobState.QUEUED for j in new.jobs())


def test_paused_old_active_resumed_after_takeover_does_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    root = tmp_path / "spool"
    old = DirectorySpool(root, node="old", clock=clock)
    old.advance_term(1)
    doc = small_doc(tmp_path / "d.tif", pages=3, rows=2)
    a = old.submit(doc, "1")
    clock.advance(0.01)  # the queue is FIFO by submit time (ms)
    old.submit(doc, "2")
    job = old.claim(1, "m0")
    assert job is not None and job.id == a
    old.page_confirmed(a, 0, 1)
    fax = old.begin_receive("m0", "caller", 1)
    # --- the old active is paused here; the backup takes over ---
    new = DirectorySpool(root, node="new", clock=clock)
    new.advance_term(2)
    before = tree(root)
    # --- the old active resumes and carries on as if nothing happened ---
    for call in (
        lambda: old.page_confirmed(a, 1, 1),
        lambda: old.complete(a, 1, ok=True),
        lambda: old.claim(1, "m0"),
        lambda: old.receive_page(fax, b"p", 1),
        lambda: old.finish_receive(fax, True, 1),
        lambda: old.begin_receive("m0", "x", 1),
        lambda: old.recover(1),
        lambda: old.advance_term(1),
    ):
        with pytest.raises(StaleTermError):
            call()
    assert tree(root) == before, "a stale-term call changed the spool"
    assert new.recover(2) == [a]
    assert new.get(a).state == JobState.QUEUED and new.get(a).reason == "failover"
    assert new.get_inbound(fax).state == InboundState.PARTIAL


def test_failover_with_jobs_in_flight_resumes_at_first_unconfirmed_page(tmp_path: Path) -> None:
    clock = FakeClock()
    root = tmp_path / "spool"
    a = DirectorySpool(root, node="a", clock=clock)
    a.advance_term(1)
    doc = small_doc(tmp_path / "d.tif", pages=5, rows=2)
    ids = [a.submit(doc, str(100 + i)) for i in range(8)]
    confirmed: dict[str, int] = {}
    for k in range(5):  # five in flight with 0..4 pages confirmed
        job = a.claim(1, f"m{k}")
        assert job is not None
        for p in range(k):
            a.page_confirmed(job.id, p, 1)
        confirmed[job.id] = k
    done = a.claim(1, "m9")
    assert done is not None
    a.complete(done.id, 1, ok=True)
    # a dies; b takes over
    b = DirectorySpool(root, node="b", clock=clock)
    b.advance_term(2)
    requeued = b.recover(2)
    assert sorted(requeued) == sorted(confirmed)
    assert b.recover(2) == []  # idempotent
    sent_from: dict[str, int] = {}
    while (job := b.claim(2, "mb")) is not None:
        sent_from[job.id] = job.pages_confirmed
        for p in range(job.pages_confirmed, job.pages):
            b.page_confirmed(job.id, p, 2)
        b.complete(job.id, 2, ok=True)
    for job_id, k in confirmed.items():
        assert sent_from[job_id] == k, "not resumed at the first unconfirmed page"
        hist = b.history(job_id)
        assert any("failover" in h.why for h in hist)
    final = b.jobs()
    assert len(final) == len(ids) and all(j.state == JobState.SENT for j in final)
    assert sorted(j.id for j in final) == sorted(ids)


def test_recovery_reads_only_the_in_flight_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    s = DirectorySpool(tmp_path / "spool", node="a", clock=clock)
    s.advance_term(1)
    doc = tmp_path / "d.tif"
    write_tiff(doc, [[bytes(216)]])
    s._bulk_create_queued(doc, "1", 2000)
    for _ in range(3):
        assert s.claim(1, "m") is not None
    opened: list[str] = []
    real = rec.RecordLog.__init__

    def spy(self: rec.RecordLog, fd: int, data: bytes) -> None:
        opened.append("x")
        real(self, fd, data)

    monkeypatch.setattr(rec.RecordLog, "__init__", spy)
    s.advance_term(2)
    assert len(s.recover(2)) == 3
    assert len(opened) == 3, f"recovery read {len(opened)} jobs for 3 in flight"


def test_recovery_syncs_the_queue_folder_once_per_batch_not_once_per_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A takeover with many jobs in flight pays one queue-folder fsync per batch of BATCH jobs."""
    from zetafailover.spool.recovery import BATCH

    s = DirectorySpool(tmp_path / "spool", node="a", clock=FakeClock())
    s.advance_term(1)
    doc = tmp_path / "d.tif"
    write_tiff(doc, [[bytes(216)]] * 3)
    inflight = BATCH + 22
    s._bulk_create_queued(doc, "1", inflight + 5)
    claimed = []
    for k in range(inflight):
        job = s.claim(1, f"m{k}")
        assert job is not None
        if k % 2:
            s.page_confirmed(job.id, 0, 1)
        claimed.append(job.id)
    faxes = [s.begin_receive("isdn0", "+4930", 1) for _ in range(3)]
    s.receive_page(faxes[0], b"page", 1)
    queue_ino = os.stat(tmp_path / "spool" / "queue").st_ino
    syncs = {"queue": 0, "all": 0}
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        syncs["all"] += 1
        if os.fstat(fd).st_ino == queue_ino:
            syncs["queue"] += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    s.advance_term(2)
    requeued = s.recover(2)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert sorted(requeued) == sorted(claimed)
    assert syncs["queue"] == 2, f"{syncs['queue']} queue-folder fsyncs for {inflight} jobs in {BATCH}-job batches"
    assert s._inflight.ids() == []
    assert os.listdir(tmp_path / "spool" / "receiving") == []
    assert all(s.get_inbound(f).state == InboundState.PARTIAL for f in faxes)
    pending = {j.id: j for j in s.jobs(JobState.QUEUED)}
    assert set(claimed) <= set(pending)
    assert all(pending[j].pages_confirmed == (k % 2) for k, j in enumerate(claimed))
    assert s.recover(2) == []  # idempotent
    got = set()
    while (job := s.claim(2, "b")) is not None:
        got.add(job.id)
    assert set(claimed) <= got, "a re-queued job has no queue entry"


def test_concurrent_recoveries_hold_batches_without_deadlock_and_requeue_each_job_once(tmp_path: Path) -> None:
    """Two handles of the new active recover at once (each holds a batch of job locks): they take the locks in
    one global order, so neither waits for the other forever, and every job is re-queued exactly once."""
    from zetafailover.spool.recovery import BATCH

    root = tmp_path / "spool"
    old = DirectorySpool(root, node="a", clock=FakeClock())
    old.advance_term(1)
    doc = tmp_path / "d.tif"
    write_tiff(doc, [[bytes(216)]])
    old._bulk_create_queued(doc, "1", BATCH + 40)
    claimed = set()
    for _ in range(BATCH + 40):
        job = old.claim(1, "m")
        assert job is not None
        claimed.add(job.id)
    old.advance_term(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def recover() -> None:
        try:
            results.append(DirectorySpool(root, node="b", clock=FakeClock()).recover(2))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=recover) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a recovery is stuck"
    assert not errors, errors
    requeued = [job for got in results for job in got]
    assert sorted(requeued) == sorted(claimed), "each in-flight job re-queued exactly once"
    assert {j.id for j in old.jobs(JobState.QUEUED)} == claimed


def test_concurrent_submit_claim_complete_loses_no_queue_entry(tmp_path: Path) -> None:
    """Regression: a claim racing a submit (or a retry) must not drop the queue entry it is about to use."""
    s = DirectorySpool(tmp_path / "spool", node="a")
    s.advance_term(1)
    doc = small_doc(tmp_path / "d.tif", pages=1, rows=2)
    done: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            s.submit(
                doc, "1", __import__("zetafailover.spool", fromlist=["SubmitOptions"]).SubmitOptions(retry_delay_s=0)
            )
            deadline = time.monotonic() + 20
            while (job := s.claim(1, f"m{n}")) is None:
                assert time.monotonic() < deadline, "a queued job is no longer claimable"
            final = s.complete(job.id, 1, ok=(i % 3 != 0), reason="busy")
            while final.state == JobState.RETRY_WAIT:
                while (again := s.claim(1, f"m{n}")) is None:
                    assert time.monotonic() < deadline, "a retrying job is no longer claimable"
                final = s.complete(again.id, 1, ok=True)
            with lock:
                done.append(final.id)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while (job := s.claim(1, "drain")) is not None:  # retries left behind by the workers' last round
        s.complete(job.id, 1, ok=True)
    assert len(s.jobs()) == 100
    stuck = [(j.state, j.id, j.seq, os.listdir(s.root / "queue")) for j in s.jobs() if not j.terminal]
    assert not stuck, f"a job is stuck outside the queue index: {stuck}"
