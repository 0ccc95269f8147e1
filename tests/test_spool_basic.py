"""DirectorySpool: lifecycle, retries, cancel, history, inbound, permissions and hostile input."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from zetafailover.clock import FakeClock
from zetafailover.errors import StaleTermError, ValidationError
from zetafailover.spool import DirectorySpool, InboundState, JobState, JobStateError, SubmitOptions, UnknownJobError
from zetafailover.spool.tiff import write_tiff


def small_doc(path: Path, pages: int = 3, rows: int = 8) -> Path:
    row = bytes(100) + b"\xff" * 16 + bytes(100)
    write_tiff(path, [[row] * rows for _ in range(pages)])
    return path


def tree(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "symlink->" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif name not in ("term.lock", "term.gate"):
                out[rel] = p.read_bytes()
    return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def spool(tmp_path: Path, clock: FakeClock) -> DirectorySpool:
    s = DirectorySpool(tmp_path / "spool", node="alpha", clock=clock)
    s.advance_term(1)
    return s


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    return small_doc(tmp_path / "doc.tif")


def test_submit_claim_pages_sent_and_history(spool: DirectorySpool, doc: Path) -> None:
    job_id = spool.submit(doc, "+49 (30) 1234-5678")
    job = spool.get(job_id)
    assert job.state == JobState.QUEUED and job.number == "+493012345678" and job.pages == 3
    assert job.document.read_bytes() == doc.read_bytes()
    claimed = spool.claim(1, "modem0")
    assert claimed is not None and claimed.id == job_id and claimed.state == JobState.DIALING
    assert spool.claim(1, "modem1") is None  # claimed by exactly one
    spool.page_confirmed(job_id, 0, 1)
    spool.page_confirmed(job_id, 0, 1)  # idempotent
    job = spool.page_confirmed(job_id, 1, 1)
    assert job.state == JobState.SENDING and job.pages_confirmed == 2
    job = spool.complete(job_id, 1, ok=True)
    assert job.state == JobState.SENT and job.terminal
    assert spool.complete(job_id, 1, ok=True).state == JobState.SENT  # idempotent
    states = [h.state for h in spool.history(job_id)]
    assert states == ["queued", "dialing", "sending", "sending", "sent"]
    assert all(h.node == "alpha" for h in spool.history(job_id))
    assert spool.jobs(JobState.SENT)[0].id == job_id and spool.jobs("queued") == []


def test_page_out_of_order_is_refused(spool: DirectorySpool, doc: Path) -> None:
    job_id = spool.submit(doc, "123")
    spool.claim(1, "m")
    with pytest.raises(JobStateError, match="before page 0"):
        spool.page_confirmed(job_id, 1, 1)
    with pytest.raises(ValidationError, match="not a page"):
        spool.page_confirmed(job_id, 3, 1)
    assert spool.get(job_id).pages_confirmed == 0


def test_retry_with_backoff_then_failed(spool: DirectorySpool, doc: Path, clock: FakeClock) -> None:
    job_id = spool.submit(doc, "123", SubmitOptions(max_attempts=3, retry_delay_s=60, backoff=2))
    spool.claim(1, "m")
    job = spool.complete(job_id, 1, ok=False, reason="busy")
    assert job.state == JobState.RETRY_WAIT and job.failures == 1
    assert job.next_try_at == pytest.approx(clock.wall() + 60)
    assert spool.claim(1, "m") is None  # not due yet
    assert spool.pending_count() == 0
    clock.advance(61)
    assert spool.pending_count() == 1
    assert spool.claim(1, "m") is not None
    job = spool.complete(job_id, 1, ok=False, reason="no answer")
    assert job.next_try_at == pytest.approx(clock.wall() + 120)
    clock.advance(121)
    spool.claim(1, "m")
    job = spool.complete(job_id, 1, ok=False, reason="no carrier")
    assert job.state == JobState.FAILED and "no carrier" in job.reason and job.attempts == 3
    assert spool.claim(1, "m") is None


def test_not_retryable_fails_at_once(spool: DirectorySpool, doc: Path) -> None:
    job_id = spool.submit(doc, "123")
    spool.claim(1, "m")
    job = spool.complete(job_id, 1, ok=False, reason="remote cannot receive", retryable=False)
    assert job.state == JobState.FAILED and job.failures == 1


def test_cancel_queued_and_in_flight(spool: DirectorySpool, doc: Path) -> None:
    a = spool.submit(doc, "1")
    b = spool.submit(doc, "2")  # (a is cancelled, so order does not matter here)
    assert spool.cancel(a).state == JobState.CANCELLED
    claimed = spool.claim(1, "m")
    assert claimed is not None and claimed.id == b  # the cancelled job is never claimed
    spool.cancel(b)
    assert spool.page_confirmed(b, 0, 1).state == JobState.CANCELLED  # ignored
    assert spool.complete(b, 1, ok=True).state == JobState.CANCELLED
    assert spool.cancel(b).state == JobState.CANCELLED
    c = spool.submit(doc, "3")
    spool.claim(1, "m")
    spool.complete(c, 1, ok=True)
    with pytest.raises(JobStateError, match="already sent"):
        spool.cancel(c)
    assert spool._inflight.ids() == []  # the in-flight index is empty again


def test_complete_requires_in_flight(spool: DirectorySpool, doc: Path) -> None:
    job_id = spool.submit(doc, "1")
    with pytest.raises(JobStateError, match="not in flight"):
        spool.complete(job_id, 1, ok=True)


def test_inbound_streaming_and_partial(spool: DirectorySpool) -> None:
    fax = spool.begin_receive("modem0", "+1555", 1)
    assert spool.get_inbound(fax).state == InboundState.RECEIVING
    assert spool.receive_page(fax, b"page one", 1) == 1
    assert spool.receive_page(fax, b"page two", 1) == 2
    got = spool.finish_receive(fax, complete=False, term=1, reason="caller hung up")
    assert got.state == InboundState.PARTIAL and got.pages == 2
    assert [p.read_bytes() for p in got.page_files] == [b"page one", b"page two"]
    with pytest.raises(JobStateError):
        spool.receive_page(fax, b"late", 1)
    whole = spool.fax_received("modem1", "+1666", [b"a", b"b", b"c"], True, 1)
    assert spool.get_inbound(whole).state == InboundState.RECEIVED
    assert {f.id for f in spool.received()} == {fax, whole}
    assert [h.state for h in spool.history(whole)] == ["receiving"] * 4 + ["received"]


def test_permissions_no_world_write(spool: DirectorySpool, doc: Path) -> None:
    old = os.umask(0)
    try:
        job_id = spool.submit(doc, "1")
        spool.fax_received("m", "c", [b"x"], True, 1)
    finally:
        os.umask(old)
    for dirpath, dirnames, filenames in os.walk(spool.root):
        for name in dirnames + filenames:
            mode = os.lstat(Path(dirpath) / name).st_mode
            assert not mode & stat.S_IWOTH, f"{dirpath}/{name} is world-writable"
            assert not mode & stat.S_IWGRP, f"{dirpath}/{name} is group-writable"
    assert spool.get(job_id)


@pytest.mark.parametrize(
    "bad", ["../etc", "J20250101T120000-0123456789/..", "", "J2025", "j20250101T120000-0123456789", "a/b", "\x00"]
)
def test_bad_job_ids_are_refused_before_any_path(spool: DirectorySpool, bad: str) -> None:
    before = tree(spool.root)
    for call in (
        lambda: spool.get(bad),
        lambda: spool.cancel(bad),
        lambda: spool.history(bad),
        lambda: spool.complete(bad, 1, ok=True),
        lambda: spool.page_confirmed(bad, 0, 1),
    ):
        with pytest.raises(ValidationError, match="not valid"):
            call()
    assert tree(spool.root) == before


def test_unknown_job(spool: DirectorySpool) -> None:
    with pytest.raises(UnknownJobError, match="no such job"):
        spool.get("J20250101T120000-0123456789")


def test_planted_symlinks_are_not_followed(spool: DirectorySpool, doc: Path, tmp_path: Path) -> None:
    # A job folder replaced by a symlink to a folder that looks like a valid job.
    real = spool.submit(doc, "1")
    outside = tmp_path / "outside"
    os.rename(spool.root / "jobs" / real, outside)
    os.symlink(outside, spool.root / "jobs" / real)
    snapshot = tree(outside)
    with pytest.raises(ValidationError, match="planted symlink"):
        spool.get(real)
    with pytest.raises(ValidationError, match="planted symlink"):
        spool.cancel(real)
    assert spool.claim(1, "m") is None  # the queue entry is dropped, the target untouched
    assert tree(outside) == snapshot
    assert spool.jobs() == []
    # A record log that is a symlink is ignored (never read through, never written through).
    other = spool.submit(doc, "2")
    folder = spool.root / "jobs" / other
    secret = tmp_path / "secret.json"
    secret.write_bytes((folder / "log").read_bytes())
    (folder / "log").unlink()
    os.symlink(secret, folder / "log")
    with pytest.raises(UnknownJobError, match="no intact record"):
        spool.get(other)
    with pytest.raises(UnknownJobError, match="no intact record"):
        spool.cancel(other)
    assert secret.read_bytes() == (folder / "log").read_bytes()  # unchanged
    # The term file replaced by a symlink is refused, not followed.
    (spool.root / "term").unlink()
    os.symlink(secret, spool.root / "term")
    with pytest.raises(Exception, match="symlink"):
        spool.claim(1, "m")
    # A symlinked document is never handed to a device.
    (folder / "document.tif").unlink()
    os.symlink(doc, folder / "document.tif")
    with pytest.raises(ValidationError, match="not a regular file"):
        spool.document_path(other)


def test_bad_documents_write_nothing(spool: DirectorySpool, tmp_path: Path) -> None:
    before = tree(spool.root)
    not_tiff = tmp_path / "a.pdf"
    not_tiff.write_bytes(b"%PDF-1.4 hello")
    good = small_doc(tmp_path / "good.tif")
    truncated = tmp_path / "trunc.tif"
    truncated.write_bytes(good.read_bytes()[:-40])
    for path, pattern in ((not_tiff, "not a TIFF"), (truncated, "truncated"), (tmp_path / "missing.tif", "cannot")):
        with pytest.raises(ValidationError, match=pattern) as err:
            spool.submit(path, "123")
        assert str(path) in str(err.value)
    with pytest.raises(ValidationError, match="';'"):
        spool.submit(good, "123;ATH")
    assert tree(spool.root) == before


def test_too_many_pages_is_refused(tmp_path: Path) -> None:
    s = DirectorySpool(tmp_path / "s", node="n", max_pages=4)
    before = tree(s.root)
    with pytest.raises(ValidationError, match="more than 4 pages"):
        s.submit(small_doc(tmp_path / "d.tif", pages=5, rows=2), "1")
    assert tree(s.root) == before


def test_advance_term_rules(spool: DirectorySpool, doc: Path) -> None:
    spool.advance_term(1)  # idempotent
    spool.advance_term(3)
    assert spool.current_term() == 3
    with pytest.raises(StaleTermError):
        spool.advance_term(2)
    with pytest.raises(ValidationError):
        spool.advance_term(-1)
    spool.submit(doc, "1")
    with pytest.raises(StaleTermError):
        spool.claim(2, "m")
    assert spool.claim(3, "m") is not None


def test_wall_clock_skew_never_strands_a_job(tmp_path: Path) -> None:
    """Wall-clock steps change nothing: a node whose clock is an hour behind claims a job submitted on a correct
    clock at once, and a retry scheduled by a clock a day ahead does not wait that day."""
    right, behind, ahead = FakeClock(), FakeClock(), FakeClock()
    behind.step_wall(-3600.0)
    ahead.step_wall(86400.0)
    root = tmp_path / "spool"
    submitter = DirectorySpool(root, node="clerk", clock=right)
    slow = DirectorySpool(root, node="b", clock=behind)
    fast = DirectorySpool(root, node="a", clock=ahead)
    fast.advance_term(1)
    job_id = submitter.submit(small_doc(tmp_path / "d.tif", pages=1, rows=2), "5550100")
    assert slow.pending_count() == 1
    job = fast.claim(1, "m0")
    assert job is not None and job.id == job_id
    fast.complete(job_id, 1, ok=False, reason="busy")  # retry due in 300 s on a clock a day ahead
    slow.advance_term(2)
    assert slow.recover(2) == []
    again = slow.claim(2, "m0")
    assert again is not None and again.id == job_id, "the retry is not left waiting for the skew"


def test_claim_skips_a_job_another_transition_holds(spool: DirectorySpool, doc: Path) -> None:
    """A claimer never queues behind another transition's job lock: it takes the next due job at once, and
    the held job is claimed once its holder is done."""
    first = spool.submit(doc, "5550001")
    second = spool.submit(doc, "5550002")
    held = os.open(spool.root / "jobs" / first, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a concurrent claim (or a cancel) of ``first`` would
        job = spool.claim(1, "m0")
        assert job is not None and job.id == second
        assert spool.claim(1, "m1") is None  # ``first`` is busy, nothing else is due: no wait, no error
    finally:
        os.close(held)
    job = spool.claim(1, "m1")
    assert job is not None and job.id == first
