"""Crash consistency with real processes: a child works the spool and is killed with SIGKILL at a random
moment (inside submit, claim, page confirmation, completion or recovery), hundreds of times, seeded.

The child reports an operation on a pipe only after the call returned (= acknowledged). After every kill
the parent checks that every acknowledged job is present and readable with its document intact, that no
acknowledged progress was lost, and that no record file is torn. Each child starts as a new node: it
advances the term and recovers, so kills also land inside recovery. At the end everything is drained and
every acknowledged job ends in exactly one terminal state.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path

import pytest

from zetafailover.errors import StaleTermError
from zetafailover.spool import DirectorySpool, JobState, SubmitOptions
from zetafailover.spool import records as rec
from zetafailover.spool.tiff import validate_tiff_bytes, write_tiff

pytestmark = pytest.mark.realprocess

KILLS = 200
SEED = 20240607


def child(root: Path, doc: Path, seed: int, out: int) -> None:
    rng = random.Random(seed)
    spool = DirectorySpool(root, node=f"child{seed}")
    say = lambda line: os.write(out, (line + "\n").encode())  # noqa: E731
    term = spool.current_term() + 1
    spool.advance_term(term)
    spool.recover(term)
    say(f"TERM {term}")
    opts = SubmitOptions(max_attempts=2, retry_delay_s=0)
    mine: list[tuple[str, int, int]] = []  # in flight: id, next page, pages
    while True:
        r = rng.random()
        if r < 0.35 or (not mine and r < 0.6):
            say(f"ACK {spool.submit(doc, '+1 555 0100', opts)}")
        elif r < 0.6 or not mine:
            job = spool.claim(term, "m0")
            if job is not None:
                say(f"CLAIM {job.id}")
                mine.append((job.id, job.pages_confirmed, job.pages))
        else:
            i = rng.randrange(len(mine))
            job_id, page, pages = mine[i]
            if page < pages and rng.random() < 0.7:
                spool.page_confirmed(job_id, page, term)
                say(f"PAGE {job_id} {page}")
                mine[i] = (job_id, page + 1, pages)
            else:
                ok = rng.random() < 0.7
                job = spool.complete(job_id, term, ok, "" if ok else "busy")
                say(f"DONE {job_id} {job.state}")
                mine.pop(i)


def check_spool(
    root: Path, doc_bytes: bytes, acked: set[str], pages_done: dict[str, int], done: dict[str, str], full: bool
) -> None:
    """Check the jobs this child touched (every 25th kill: every job) and every folder for torn records."""
    spool = DirectorySpool(root, node="checker")
    for job_id in acked if full else (set(pages_done) | set(done) | (acked & _recent)):
        job = spool.get(job_id)  # present and readable
        assert job.document.read_bytes() == doc_bytes, f"{job_id}: document differs"
        validate_tiff_bytes(job.document.read_bytes(), str(job.document))
        assert job.pages_confirmed >= pages_done.get(job_id, 0), f"{job_id}: confirmed page lost"
        if job_id in done:
            # A terminal state is final. A retry may have been claimed again by the same child after it was
            # acknowledged (retries are due at once here), possibly killed before it could say so.
            allowed = {"retry_wait", "dialing", "sending"} if done[job_id] == "retry_wait" else {done[job_id]}
            assert str(job.state) in allowed, f"{job_id}: acknowledged {done[job_id]}, found {job.state}"
    for folder in (root / "jobs").iterdir():
        if not full and folder.name in _seen:
            continue
        _seen.add(folder.name)
        fd = rec.open_dir(folder)
        try:
            with rec.RecordLog.open(fd) as log:
                # Every intact record decodes. A SIGKILL can cut a pwrite short between pages (the kernel
                # checks for fatal signals while copying), so after the intact records there may be the
                # remains of the one record being written when the child died: it was never acknowledged,
                # readers ignore it and the next append overwrites it (test_torn_tail_is_overwritten).
                assert log is None or len(list(log.bodies())) == len(log.entries)
        finally:
            os.close(fd)
        if folder.name in acked:
            continue
        # an unacknowledged submit is either complete or invisible
        fd = rec.open_dir(folder)
        try:
            _top, body = rec.latest_record(fd)
        finally:
            os.close(fd)
        if body is not None:
            assert (folder / "document.tif").read_bytes() == doc_bytes


_recent: set[str] = set()
_seen: set[str] = set()


def test_kill_minus_nine_at_random_points(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    doc = tmp_path / "doc.tif"
    write_tiff(doc, [[bytes(100) + b"\xf0" * 16 + bytes(100)] * 4 for _ in range(3)])
    doc_bytes = doc.read_bytes()
    DirectorySpool(root, node="setup")
    rng = random.Random(SEED)
    acked: set[str] = set()
    lines_total = 0
    for it in range(KILLS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(r)
            try:
                child(root, doc, SEED + it, w)
            except BaseException:
                os._exit(3)
            os._exit(0)
        os.close(w)
        time.sleep(rng.uniform(0, 0.06))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"child exited by itself with status {status}"
        data = b""
        while select.select([r], [], [], 0)[0]:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(r)
        pages_done: dict[str, int] = {}
        done: dict[str, str] = {}
        _recent.clear()
        for line in data.decode().splitlines():
            parts = line.split()
            lines_total += 1
            if parts[0] == "ACK":
                acked.add(parts[1])
                _recent.add(parts[1])
            elif parts[0] == "PAGE":
                pages_done[parts[1]] = int(parts[2]) + 1
            elif parts[0] == "DONE":
                done[parts[1]] = parts[2]
            elif parts[0] == "CLAIM":
                done.pop(parts[1], None)  # claimed again after a retry: its acknowledged end is in the past
        _seen.difference_update(set(pages_done) | set(done) | _recent)
        check_spool(root, doc_bytes, acked, pages_done, done, full=it % 25 == 24)
    assert len(acked) > 50 and lines_total > 300, "the children did too little work to test anything"
    # Drain: a final node recovers and finishes everything; every acknowledged job ends exactly once.
    final = DirectorySpool(root, node="final")
    term = final.current_term() + 1
    final.advance_term(term)
    final.recover(term)
    while (job := final.claim(term, "m")) is not None:
        for p in range(job.pages_confirmed, job.pages):
            final.page_confirmed(job.id, p, term)
        final.complete(job.id, term, ok=True)
    states = {j.id: j.state for j in final.jobs()}
    assert acked <= set(states)
    assert all(s in (JobState.SENT, JobState.FAILED) for s in states.values())
    assert final._inflight.ids() == []
    with pytest.raises(StaleTermError):
        final.claim(term - 1, "m")


def test_torn_tail_is_overwritten(tmp_path: Path) -> None:
    """A record cut short by a kill is ignored by readers and overwritten by the next append."""
    folder = tmp_path / "item"
    folder.mkdir()
    dir_fd = rec.open_dir(folder)
    try:
        os.close(rec.create_log(dir_fd, {"state": "queued"}))
        with rec.RecordLog.open(dir_fd, writable=True) as log:
            assert log is not None and len(log.entries) == 1
            end = log.end
            torn = rec.encode_record(1, {"seq": 1, "state": "dialing", "pad": "x" * 9000})[:5000]
            os.pwrite(log.fd, torn, end)  # the first 5000 bytes of a 9 KB record, then the process died
        with rec.RecordLog.open(dir_fd, writable=True) as log:
            assert log is not None
            assert len(log.entries) == 1, "the torn record is not visible"
            assert not log.clean_tail
            log.append({"state": "sent"})
        with rec.RecordLog.open(dir_fd) as log:
            assert log is not None
            assert [b["state"] for b in log.bodies()] == ["queued", "sent"]
    finally:
        os.close(dir_fd)
