"""The shared-folder store: bad files are "no new evidence", the lock-free term CAS (term files created
exclusively) and its rules over corrupt, missing and late-written files, permissions, real-process SIGKILL and
SIGSTOP tests, and write failures (read-only, full disk) named with their path and reason."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zetafailover._atomic import atomic_write
from zetafailover.clock import FakeClock
from zetafailover.errors import (
    CorruptRecordError,
    LostTermError,
    StoreUnavailableError,
    TermConflictError,
    ValidationError,
)
from zetafailover.interfaces import DeviceStatus, HeartbeatRecord, NodeState, ProcessIdentity, SwitchoverRequest
from zetafailover.stores import FileHeartbeatStore, open_store_url
from zetafailover.stores._codec import (
    decode_heartbeat,
    decode_member,
    decode_switchover,
    decode_term,
    encode_heartbeat,
    encode_member,
    encode_switchover,
    encode_term,
)
from zetafailover.stores.file import term_file_name
from zetafailover.testing.store_contract import heartbeat, member

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileHeartbeatStore]:
    s = FileHeartbeatStore(tmp_path / "ha", "c", lock_timeout=30)
    yield s
    s.close()


@pytest.fixture
def store_log() -> Iterator[list[logging.LogRecord]]:
    """The records logged on ``zetafailover.store`` at INFO and above (works without pytest's logging plugin)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("zetafailover.store")
    handler = Keep(logging.INFO)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def logged(records: list[logging.LogRecord], text: str) -> list[str]:
    return [r.getMessage() for r in records if text in r.getMessage()]


def plant_term(store: FileHeartbeatStore, record: HeartbeatRecord, content: bytes | None = None) -> Path:
    """Create ``terms/term-<N>.json`` by hand, as a winner that has not written its heartbeat yet would have."""
    store.terms_dir.mkdir(exist_ok=True)
    path = store.term_path(record.term)
    path.write_bytes(encode_term(record) if content is None else content)
    return path


def term_files(store: FileHeartbeatStore) -> list[str]:
    return sorted(p.name for p in store.terms_dir.iterdir()) if store.terms_dir.exists() else []


def forge(doc: dict[str, Any]) -> bytes:
    """Serialise ``doc`` with a *valid* crc32 computed by the documented rule (canonical body, sorted keys)."""
    body = {k: v for k, v in doc.items() if k != "crc32"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return json.dumps({**body, "crc32": f"{zlib.crc32(canonical):08x}"}, indent=2).encode()


def good_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_heartbeat(heartbeat("a", 3, 7)))
    doc.update(changes)
    return doc


GOOD = encode_heartbeat(heartbeat("a", 3, 7))


# ------------------------------------------------------------------------------------ reads of bad files

BAD_CONTENTS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty file"),
    ("blanks", b"  \n", "empty file"),
    ("truncated-early", GOOD[:25], "truncated JSON"),
    ("truncated-middle", GOOD[: len(GOOD) // 2], "truncated JSON"),
    ("truncated-before-brace", GOOD[: GOOD.rindex(b"}")], "truncated JSON"),
    ("crc-mismatch", json.dumps({**good_doc(), "seq": 8}).encode(), "crc mismatch"),
    ("crc-missing", json.dumps({k: v for k, v in good_doc().items() if k != "crc32"}).encode(), "crc32"),
    ("foreign", encode_heartbeat(heartbeat("a", 3, cluster="other")), "record of cluster 'other', expected 'c'"),
    ("garbage", random.Random(7).randbytes(300), "not UTF-8"),
    ("nul-bytes", b"\x00" * 64, "invalid JSON"),
    ("trailing-garbage", GOOD + b"x", "invalid JSON"),
    ("json-array", b"[1, 2, 3]", "must be a JSON object"),
    ("wrong-format", forge(good_doc(format="zetafailover-member/1")), "format 'zetafailover-member/1'"),
    ("negative-term", forge(good_doc(term=-1)), "field 'term' must be an integer ≥ 0"),
    ("float-seq", forge(good_doc(seq=1.5)), "field 'seq' must be an integer ≥ 0"),
    ("bool-term", forge(good_doc(term=True)), "field 'term' must be an integer ≥ 0"),
    ("unknown-state", forge(good_doc(state="zombie")), "known node state"),
    ("bad-holder", forge(good_doc(holder="../etc")), "field 'holder' must be a name"),
    ("missing-field", forge({k: v for k, v in good_doc().items() if k != "seq"}), "field 'seq' is missing"),
    ("unknown-field", forge(good_doc(extra=1)), "unknown field 'extra'"),
    ("bad-process", forge(good_doc(processes=[{"host": "h"}])), "processes[0]"),
    ("duplicate-key", GOOD.replace(b'"seq": 7', b'"seq": 7, "seq": 9'), "duplicate key 'seq'"),
    ("nan", GOOD.replace(b'"written_at": 1700000000.25', b'"written_at": NaN'), "NaN is not a valid value"),
    ("oversize", b" " * (64 * 1024 + 1), "larger than 65536 bytes"),
]


@pytest.mark.parametrize(
    ("content", "cause"), [(c, w) for _, c, w in BAD_CONTENTS], ids=[n for n, _, _ in BAD_CONTENTS]
)
def test_bad_heartbeat_file_is_no_new_evidence(store: FileHeartbeatStore, content: bytes, cause: str) -> None:
    store.heartbeat_path.write_bytes(content)
    read = store.read()
    assert read.record is None
    assert not read.ok
    assert cause in read.problem
    assert str(store.heartbeat_path) in read.problem


def test_truncation_at_every_offset_is_refused_by_the_codec() -> None:
    raw = encode_heartbeat(
        heartbeat("a", 3, 7, processes=(ProcessIdentity("h\u00e9", "b\\oot", 12, 34),), handover_to="b")
    )
    last_brace = raw.rindex(b"}")
    for cut in range(1, last_brace + 1):
        with pytest.raises(CorruptRecordError, match="truncated JSON"):
            decode_heartbeat(raw[:cut], "c")
    with pytest.raises(CorruptRecordError, match="empty file"):
        decode_heartbeat(b"", "c")
    assert decode_heartbeat(raw[: last_brace + 1], "c").key == (3, 7)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.33, 0.5, 0.75, 0.9, 0.99])
def test_truncated_file_reads_as_problem(store: FileHeartbeatStore, fraction: float) -> None:
    store.heartbeat_path.write_bytes(GOOD[: int(len(GOOD) * fraction)])
    read = store.read()
    assert read.record is None
    assert "truncated JSON" in read.problem


def test_every_single_byte_flip_is_refused_or_harmless() -> None:
    """A bit flip anywhere either makes the record unreadable or changes nothing a decision reads."""
    raw = bytearray(GOOD)
    original = decode_heartbeat(GOOD, "c")
    rng = random.Random(42)
    for pos in range(len(raw)):
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << rng.randrange(8)
        try:
            got = decode_heartbeat(bytes(flipped), "c")
        except CorruptRecordError:
            continue
        assert got == original, f"flip at {pos} changed the record: {got}"


def test_directory_instead_of_file(store: FileHeartbeatStore) -> None:
    store.heartbeat_path.mkdir()
    read = store.read()
    assert read.record is None
    assert "not a regular file" in read.problem


def test_symlinked_heartbeat_is_not_followed(store: FileHeartbeatStore, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(encode_heartbeat(heartbeat("a", 3, 7)))  # a perfectly valid record…
    store.heartbeat_path.symlink_to(target)
    read = store.read()
    assert read.record is None  # …that is never trusted through a link
    assert "symbolic link (not followed)" in read.problem


def test_missing_file_is_a_new_store(store: FileHeartbeatStore) -> None:
    read = store.read()
    assert read.record is None
    assert read.ok


def test_stray_temporary_files_are_ignored(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    (store.folder / ".tmp-heartbeat.json-deadbeef").write_bytes(b"{garbage")
    (store.members_dir).mkdir()
    (store.members_dir / ".tmp-b.json-0badcafe").write_bytes(b"{")
    assert store.read().record == heartbeat("a", 1)
    assert list(store.read_members()) == []


def test_timestamps_are_never_read(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    for when in (0, 4_000_000_000):
        os.utime(store.heartbeat_path, (when, when))
        assert store.read().record == heartbeat("a", 1)


def test_read_problems_are_logged_without_flooding(tmp_path: Path, store_log: list[logging.LogRecord]) -> None:
    clock = FakeClock()
    s = FileHeartbeatStore(tmp_path, "c", clock=clock)
    s.heartbeat_path.write_bytes(b"{")
    for _ in range(10):
        assert not s.read().ok
    assert len(logged(store_log, "truncated JSON")) == 1
    clock.advance(61)
    s.read()
    messages = logged(store_log, "truncated JSON")
    assert len(messages) == 2
    assert "repeated 9 more times" in messages[1]


# -------------------------------------------------------------------------------- CAS over corrupt files


def test_acquire_over_corrupt_heartbeat_without_term_file_accepts_expected(
    store: FileHeartbeatStore, store_log: list[logging.LogRecord]
) -> None:
    store.heartbeat_path.write_bytes(GOOD[:40])
    stored = store.acquire(7, heartbeat("b", 8))
    assert logged(store_log, "accepting the caller's expected term 7")
    assert store.read().record == stored
    assert term_files(store) == ["term-000000000008.json"]


def test_acquire_over_corrupt_heartbeat_uses_the_term_file(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    store.acquire(1, heartbeat("a", 2))
    store.heartbeat_path.write_bytes(b"\x00\x01 garbage")
    with pytest.raises(TermConflictError, match=r"current term is 2 \(held by 'a'\)"):
        store.acquire(0, heartbeat("b", 1))
    store.acquire(2, heartbeat("b", 3))
    assert store.read().record == heartbeat("b", 3)


def test_acquire_with_both_files_corrupt_still_knows_the_term(store: FileHeartbeatStore) -> None:
    """The term is in the term file's *name*: damaged contents cannot make a term be handed out twice."""
    store.acquire(0, heartbeat("a", 1))
    store.heartbeat_path.write_bytes(b"{")
    store.term_path(1).write_bytes(b"")
    with pytest.raises(TermConflictError, match=r"current term is 1 \(held by '\?'\), not 4"):
        store.acquire(4, heartbeat("b", 5))
    store.acquire(1, heartbeat("b", 2))
    assert store.read().record == heartbeat("b", 2)
    assert decode_term(store.term_path(2).read_bytes(), "c") == heartbeat("b", 2)


def test_acquire_uses_the_highest_term_file(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    plant_term(store, heartbeat("b", 5))  # a winner that has not written heartbeat.json (yet)
    assert store.read().record == heartbeat("b", 5)  # the won term is visible to everyone
    with pytest.raises(TermConflictError, match=r"current term is 5 \(held by 'b'\)"):
        store.acquire(1, heartbeat("c", 2))
    with pytest.raises(LostTermError, match="term 5 was won by 'b'"):
        store.renew(heartbeat("a", 1))
    store.acquire(5, heartbeat("c", 6))
    assert store.read().record == heartbeat("c", 6)


def test_term_file_without_heartbeat_shows_the_won_term(store: FileHeartbeatStore) -> None:
    plant_term(store, heartbeat("a", 1))
    assert store.read().record == heartbeat("a", 1)
    with pytest.raises(TermConflictError):
        store.acquire(0, heartbeat("b", 1))
    store.acquire(1, heartbeat("b", 2))


def test_acquire_never_takes_over_another_clusters_store(store: FileHeartbeatStore) -> None:
    foreign = encode_heartbeat(heartbeat("x", 9, cluster="other"))
    store.heartbeat_path.write_bytes(foreign)
    with pytest.raises(CorruptRecordError, match="record of cluster 'other'"):
        store.acquire(9, heartbeat("a", 10))
    assert store.heartbeat_path.read_bytes() == foreign
    assert term_files(store) == []


def test_acquire_never_takes_over_another_clusters_term_file(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    foreign = plant_term(store, heartbeat("x", 2, cluster="other"))
    with pytest.raises(CorruptRecordError, match=r"record of cluster 'other'.*never taken over"):
        store.acquire(2, heartbeat("a", 3))
    assert term_files(store) == ["term-000000000001.json", foreign.name]
    assert "record of cluster 'other'" in store.read().problem  # the foreign term is ahead: no evidence


def test_acquire_over_a_directory_fails_naming_the_path(store: FileHeartbeatStore) -> None:
    store.heartbeat_path.mkdir()
    (store.heartbeat_path / "x").write_bytes(b"")
    with pytest.raises(StoreUnavailableError, match=r"heartbeat\.json"):
        store.acquire(0, heartbeat("a", 1))


def test_renew_repairs_a_corrupt_heartbeat(store: FileHeartbeatStore, store_log: list[logging.LogRecord]) -> None:
    """The term lives in the term files, so rewriting a damaged heartbeat.json hides nothing."""
    mine = store.renew(store.renew(store.acquire(0, heartbeat("a", 1))))
    store.heartbeat_path.write_bytes(b'{"format": "zetafailover-heartbeat/1", "te')
    assert not store.read().ok
    repaired = store.renew(mine)
    assert repaired.seq == mine.seq + 1  # nothing readable to count on: the caller's seq + 1
    assert store.read().record == repaired
    assert logged(store_log, "repairing")


def test_renew_over_corrupt_heartbeat_still_sees_a_newer_term(store: FileHeartbeatStore) -> None:
    mine = store.acquire(0, heartbeat("a", 1))
    other = FileHeartbeatStore(store.folder, "c")
    other.acquire(1, heartbeat("b", 2))
    store.heartbeat_path.write_bytes(b"{")
    with pytest.raises(LostTermError, match="term 2 was won by 'b'"):
        store.renew(mine)
    assert store.heartbeat_path.read_bytes() == b"{"


def test_renew_over_corrupt_term_file(store: FileHeartbeatStore) -> None:
    """A handle that won the term knows it; any other handle cannot verify a damaged term file and refuses."""
    mine = store.acquire(0, heartbeat("a", 1))
    store.term_path(1).write_bytes(b"{")
    restarted = FileHeartbeatStore(store.folder, "c")
    with pytest.raises(CorruptRecordError, match="never renewed"):
        restarted.renew(mine)
    assert store.renew(mine).seq == 1  # verified when it won the term
    assert store.read().record == dataclasses.replace(mine, seq=1)


def test_renew_by_a_new_handle_verifies_the_term_file_once(store: FileHeartbeatStore) -> None:
    mine = store.acquire(0, heartbeat("a", 1))
    restarted = FileHeartbeatStore(store.folder, "c")
    with pytest.raises(LostTermError, match="term 1 was won by 'a'"):
        restarted.renew(heartbeat("b", 1))
    assert restarted.renew(mine).seq == 1
    store.term_path(1).write_bytes(b"{")  # verified already: the handle does not read it again
    assert restarted.renew(mine).seq == 2


def test_renew_over_foreign_record_fails(store: FileHeartbeatStore) -> None:
    mine = store.acquire(0, heartbeat("a", 1))
    store.heartbeat_path.write_bytes(encode_heartbeat(heartbeat("a", 1, cluster="other")))
    with pytest.raises(CorruptRecordError, match="cluster 'other'"):
        store.renew(mine)


def test_renew_rewrites_a_missing_heartbeat(store: FileHeartbeatStore) -> None:
    mine = store.renew(store.acquire(0, heartbeat("a", 1)))
    store.heartbeat_path.unlink()
    assert store.read().record == heartbeat("a", 1)  # the term file's record
    assert store.renew(mine).seq == 2
    assert store.read().record == dataclasses.replace(mine, seq=2)


def test_renew_after_the_term_file_vanished_is_tampering(store: FileHeartbeatStore) -> None:
    mine = store.acquire(0, heartbeat("a", 1))
    store.term_path(1).unlink()
    with pytest.raises(CorruptRecordError, match="tampered"):
        store.renew(mine)
    with pytest.raises(LostTermError, match="never won"):  # a handle that never saw the term won
        FileHeartbeatStore(store.folder, "c").renew(mine)


def test_renew_through_symlink_is_refused(store: FileHeartbeatStore, tmp_path: Path) -> None:
    mine = store.acquire(0, heartbeat("a", 1))
    target = tmp_path / "target.json"
    target.write_bytes(store.heartbeat_path.read_bytes())
    store.heartbeat_path.unlink()
    store.heartbeat_path.symlink_to(target)
    with pytest.raises(CorruptRecordError, match="symbolic link"):
        store.renew(mine)
    assert decode_heartbeat(target.read_bytes(), "c") == mine


# ---------------------------------------------------------------------------------------------- members


def test_read_members_skips_bad_entries(store: FileHeartbeatStore, tmp_path: Path) -> None:
    store.publish_member(member("fax-1"))
    store.publish_member(member("fax-2", priority=50))
    d = store.members_dir
    (d / "broken.json").write_bytes(b"{")
    (d / "foreign.json").write_bytes(encode_member(member("foreign", cluster="other")))
    (d / "-bad name.json").write_bytes(encode_member(member("fax-1")))
    (d / "notes.txt").write_text("hello")
    (d / "impostor.json").write_bytes(encode_member(member("fax-9")))
    elsewhere = tmp_path / "fax-3.json"
    elsewhere.write_bytes(encode_member(member("fax-3")))
    (d / "fax-3.json").symlink_to(elsewhere)
    (d / "subdir.json").mkdir()
    names = [m.name for m in store.read_members()]
    assert names == ["fax-1", "fax-2"]


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../x", "a" * 64, "fax 1", "x\n"])
def test_member_names_are_validated(store: FileHeartbeatStore, name: str) -> None:
    with pytest.raises(ValidationError):
        store.publish_member(member(name))
    assert not store.members_dir.exists() or list(store.members_dir.iterdir()) == []


# ------------------------------------------------------------------------------------ files and folders


def test_files_are_never_world_writable(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        s = FileHeartbeatStore(tmp_path / "new" / "ha", "c")
        s.renew(s.acquire(0, heartbeat("a", 1)))
        s.publish_member(member("a"))
        s.put_switchover(SwitchoverRequest(id="1", from_term=1, target="b", requested_at=1.0))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(s.folder).st_mode) == 0o755
    entries = [s.folder, *s.folder.rglob("*")]
    names = {p.name for p in entries}
    assert names >= {"heartbeat.json", "terms", "term-000000000001.json", "members", "a.json", "switchover.json"}
    assert not names & {".lock", "term.json"}  # the first version's lock and term record are gone
    for p in entries:
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        assert not mode & stat.S_IWOTH, f"{p} is world-writable ({mode:o})"
        assert not mode & stat.S_IWGRP, f"{p} is group-writable ({mode:o})"
    assert not [p for p in entries if p.name.startswith(".tmp-")]


def test_record_file_is_human_readable(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    doc = json.loads(store.heartbeat_path.read_text())
    assert doc["format"] == "zetafailover-heartbeat/1"
    assert doc["cluster"] == "c"
    assert doc["written_at_iso"] == "2023-11-14T22:13:20.250Z"
    assert len(doc["crc32"]) == 8


def test_from_url(tmp_path: Path) -> None:
    s = FileHeartbeatStore.from_url((tmp_path / "a b").as_uri(), "c")
    assert s.folder == tmp_path / "a b"
    assert s.folder.is_dir()
    assert FileHeartbeatStore.from_url(f"file://localhost{tmp_path}", "c").folder == tmp_path
    for bad in ("file:relative/x", "file://otherhost/x", "http://x/y", f"file://{tmp_path}?q=1"):
        with pytest.raises(ValidationError):
            FileHeartbeatStore.from_url(bad, "c")
    with pytest.raises(ValidationError, match="unknown scheme"):
        open_store_url("ftp://x", "c")


def test_bad_constructor_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cluster"):
        FileHeartbeatStore(tmp_path, "bad name")
    with pytest.raises(ValidationError, match="lock_timeout"):
        FileHeartbeatStore(tmp_path, "c", lock_timeout=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailableError, match="not a folder"):
        FileHeartbeatStore(tmp_path / "file", "c")


def test_closed_store_refuses_work(store: FileHeartbeatStore) -> None:
    store.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        store.read()


def test_lock_timeout_is_accepted_but_nothing_is_locked(tmp_path: Path) -> None:
    s = FileHeartbeatStore(tmp_path, "c", lock_timeout=0.2)
    assert s.lock_timeout == 0.2
    s.renew(s.acquire(0, heartbeat("a", 1)))
    u = open_store_url(tmp_path.as_uri(), "c", lock_timeout=5)
    u.acquire(1, heartbeat("b", 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heartbeat.json", "terms"]


def test_switchover_unreadable_is_none(store: FileHeartbeatStore) -> None:
    store.switchover_path.write_bytes(b"{")
    assert store.read_switchover() is None


# ----------------------------------------------------------------------------------------- write errors


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable even for root (chattr +i), or by mode for other users."""
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if (
            chattr is None
            or subprocess.run([chattr, "+i", str(path)], check=False, capture_output=True).returncode != 0
        ):
            pytest.skip("cannot make a folder unwritable for root here (no chattr +i)")
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)


def test_unwritable_folder_raises_store_unavailable_naming_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "ha"
    s = FileHeartbeatStore(folder, "c")
    mine = s.acquire(0, heartbeat("a", 1))
    with read_only_folder(folder):
        with pytest.raises(StoreUnavailableError) as err:
            s.renew(mine)
        assert str(folder / "heartbeat.json") in str(err.value)
        assert "EPERM" in str(err.value) or "EACCES" in str(err.value)
        with pytest.raises(StoreUnavailableError, match="members"):
            s.publish_member(member("a"))
        with pytest.raises(StoreUnavailableError, match=r"switchover\.json"):
            s.put_switchover(SwitchoverRequest(id="1", from_term=1, target="b", requested_at=1.0))
        assert s.read().record == mine  # reading still works
    assert s.renew(mine).seq == 1
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


_FULL_DISK_SCRIPT = r"""
import json, os, subprocess, sys
from pathlib import Path
from zetafailover.errors import StoreUnavailableError
from zetafailover.interfaces import SwitchoverRequest
from zetafailover.stores.file import FileHeartbeatStore
from zetafailover.testing.store_contract import heartbeat

mnt = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
s = FileHeartbeatStore(mnt / "ha", "c")
mine = s.acquire(0, heartbeat("a", 1))
out = {}
fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    pass
os.close(fd)
try:
    s.renew(mine)
    out["full"] = "no error"
except StoreUnavailableError as exc:
    out["full"] = str(exc)
out["read_when_full"] = s.read().record == mine
(mnt / "filler").unlink()
subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
try:
    s.put_switchover(SwitchoverRequest(id="1", from_term=1, target="b", requested_at=1.0))
    out["ro"] = "no error"
except StoreUnavailableError as exc:
    out["ro"] = str(exc)
out["read_when_ro"] = s.read().record == mine
print(json.dumps(out))
"""


def test_full_disk_and_read_only_mount_name_path_and_reason(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or shutil.which("mount") is None:
        pytest.skip("needs root, unshare and mount for a private tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = subprocess.run([unshare, "--mount", "--propagation", "private", "true"], check=False, capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace: {probe.stderr.decode(errors='replace')}")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [unshare, "--mount", "--propagation", "private", sys.executable, "-c", _FULL_DISK_SCRIPT, str(mnt)],
        check=False,
        capture_output=True,
        env=env,
        timeout=120,
    )
    if proc.returncode != 0 and b"mount:" in proc.stderr:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.decode(errors='replace')[-300:]}")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = json.loads(proc.stdout)
    assert "heartbeat.json" in out["full"]
    assert "ENOSPC" in out["full"]
    assert "switchover.json" in out["ro"]
    assert "EROFS" in out["ro"]
    assert out["read_when_full"] is True
    assert out["read_when_ro"] is True


# ------------------------------------------------------------------------------------------- crash test

_ZYGOTE = r"""
import os, sys
from pathlib import Path
from zetafailover.stores.file import FileHeartbeatStore

# Imports once, then forks one renewing child per "go" line: a child per kill without paying the start-up.
folder, zygote = Path(sys.argv[1]), os.getpid()
for line in sys.stdin:
    if line.strip() != "go":
        break
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        store = FileHeartbeatStore(folder, "crash", lock_timeout=30)
        record = store.read().record
        os.write(ready_w, b"r")
        for i in range(1_000_000):  # ends by SIGKILL; the bound and the orphan check are safety nets
            record = store.renew(record)
            if i % 64 == 0 and os.getppid() != zygote:
                os._exit(3)
        os._exit(4)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("sigkill" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9 else f"status {status}", flush=True)
"""


def test_sigkill_during_renew_never_leaves_a_torn_record(tmp_path: Path) -> None:
    """A real process renews in a tight loop and is SIGKILLed at random moments: the record is always whole."""
    folder = tmp_path / "ha"
    store = FileHeartbeatStore(folder, "crash", lock_timeout=30)
    store.acquire(0, heartbeat("a", 1, cluster="crash", state=NodeState.ACTIVE))
    rng = random.Random(20240501)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    zygote = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert zygote.stdin is not None
    assert zygote.stdout is not None
    last_seq = 0
    reads_while_running = 0
    child = 0
    try:
        for iteration in range(50):
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            child = int(zygote.stdout.readline())
            kill_at = time.monotonic() + rng.uniform(0.0, 0.03)
            while time.monotonic() < kill_at:  # read while the child writes: never torn either
                read = store.read()
                assert read.ok, read.problem
                reads_while_running += 1
            os.kill(child, signal.SIGKILL)
            assert zygote.stdout.readline() == "sigkill\n"
            child = 0
            read = store.read()
            assert read.ok, f"after kill {iteration}: {read.problem}"
            assert read.record is not None
            assert (read.record.term, read.record.holder) == (1, "a")
            assert read.record.seq >= last_seq  # renews are durable and never go back
            last_seq = read.record.seq
    finally:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        zygote.stdin.close()
        try:
            zygote.wait(timeout=30)
        finally:
            zygote.kill()
    assert zygote.returncode == 0
    assert last_seq > 0, "the children never renewed"
    assert reads_while_running > 0
    # The store still works after all the crashes; leftover temporary files do not disturb it.
    record = store.read().record
    assert record is not None
    assert store.renew(record).seq == last_seq + 1
    # Some kills landed mid-write (their temporaries prove it); the next acquire sweeps them away.
    leftovers = [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "no kill landed inside a write: the test did not test anything"
    store.acquire(1, heartbeat("b", 2, cluster="crash"))
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


# ------------------------------------------------------------------------------------------------ codec


def test_encoding_an_invalid_record_names_the_field() -> None:
    with pytest.raises(ValidationError, match="field 'holder'"):
        encode_heartbeat(heartbeat("bad name", 1))
    with pytest.raises(ValidationError, match="field 'term' must be an integer ≥ 0"):
        encode_heartbeat(heartbeat("a", -1))
    with pytest.raises(ValidationError, match="written time"):
        encode_heartbeat(heartbeat("a", 1, written_at=float("nan")))
    with pytest.raises(ValidationError, match=r"field 'processes\[0\]\.pid'"):
        encode_heartbeat(heartbeat("a", 1, processes=(ProcessIdentity("h", "b", 0, 1),)))
    with pytest.raises(ValidationError, match="field 'status'"):
        encode_switchover(SwitchoverRequest(id="1", from_term=1, target="b", requested_at=1.0, status="Bad!"), "c")
    with pytest.raises(ValidationError, match="timing"):
        encode_member(member("a", timing={"timeout": float("inf")}))


def test_member_and_switchover_round_trip_and_refuse_foreign() -> None:
    m = member(
        "fax-1",
        timing={"heartbeat_interval": 2.0, "timeout": 15.0},
        devices=(DeviceStatus("modem0", "modem", 1, "running"),),
        processes=(ProcessIdentity("h", "b", 7, 9, "faxgetty"),),
        healthy=False,
    )
    assert decode_member(encode_member(m), "c") == m
    with pytest.raises(CorruptRecordError, match="record of cluster 'c', expected 'x'"):
        decode_member(encode_member(m), "x")
    req = SwitchoverRequest(id="sw-1", from_term=4, target="", requested_at=5.5, status="refused", reason="nope\n")
    assert decode_switchover(encode_switchover(req, "c"), "c") == req
    with pytest.raises(CorruptRecordError, match="format 'zetafailover-switchover/1'"):
        decode_member(encode_switchover(req, "c"), "c")


def test_a_term_file_ahead_is_logged_once(tmp_path: Path, store_log: list[logging.LogRecord]) -> None:
    s = FileHeartbeatStore(tmp_path, "c", clock=FakeClock())
    s.acquire(0, heartbeat("a", 1))
    plant_term(s, heartbeat("b", 2))
    for _ in range(10):
        assert s.read().record == heartbeat("b", 2)
    assert len(store_log) == 1
    assert "term 2 was won by 'b'" in store_log[0].getMessage()


# ------------------------------------------------------------------------------ the lock-free term CAS


def test_a_term_is_won_by_creating_its_term_file(store: FileHeartbeatStore) -> None:
    won = store.acquire(0, heartbeat("a", 1, state=NodeState.ACTIVATING))
    assert term_files(store) == ["term-000000000001.json"]
    assert decode_term(store.term_path(1).read_bytes(), "c") == won
    assert json.loads(store.term_path(1).read_text())["format"] == "zetafailover-term/1"
    store.renew(won)
    assert decode_term(store.term_path(1).read_bytes(), "c") == won  # never rewritten
    assert term_file_name(7) == "term-000000000007.json"
    assert term_file_name(10**12) == "term-1000000000000.json"


def test_only_exact_term_file_names_count(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    for junk in (
        "term-9.json",
        "term-000000000009.json.bak",
        "term-0000000000009.json",  # a thirteenth digit that is a leading zero: not the name of term 9
        "term-00000000000x.json",
        "notes.txt",
        ".tmp-term-000000000009.json-0badcafe",
    ):
        (store.terms_dir / junk).write_bytes(encode_term(heartbeat("z", 9)))
    assert store.read().record == heartbeat("a", 1)
    store.acquire(1, heartbeat("b", 2))
    big = 10**12
    plant_term(store, heartbeat("x", big))  # terms beyond twelve digits keep working
    assert store.read().record == heartbeat("x", big)
    store.acquire(big, heartbeat("b", big + 1))
    assert store.read().record == heartbeat("b", big + 1)


def test_old_term_files_are_pruned(store: FileHeartbeatStore) -> None:
    for term in range(1, 41):
        store.acquire(term - 1, heartbeat("ab"[term % 2], term))
    assert term_files(store) == [term_file_name(t) for t in range(9, 41)]
    assert store.read().record == heartbeat("a", 40)
    with pytest.raises(TermConflictError, match="current term is 40"):
        store.acquire(3, heartbeat("a", 4))  # a pruned term is never won again: the current term is 40


def test_abandoned_temporaries_are_swept_by_the_next_winner(store: FileHeartbeatStore) -> None:
    store.acquire(0, heartbeat("a", 1))
    (store.folder / ".tmp-heartbeat.json-deadbeef").write_bytes(b"{")
    (store.terms_dir / ".tmp-term-000000000001.json-deadbeef").write_bytes(b"{")
    other = store.terms_dir / ".tmp-notes-deadbeef"
    other.write_bytes(b"x")
    store.acquire(1, heartbeat("b", 2))
    assert sorted(p.name for p in store.folder.iterdir()) == ["heartbeat.json", "terms"]
    assert term_files(store) == [".tmp-notes-deadbeef", "term-000000000001.json", "term-000000000002.json"]


_DIE_BEFORE_HEARTBEAT = r"""
import os, sys
from pathlib import Path
import zetafailover.stores.file as file_store
from zetafailover.testing.store_contract import heartbeat

real_atomic_write = file_store.atomic_write

def die_at_heartbeat(path, data, *args, **kwargs):
    if path.name == "heartbeat.json":
        os._exit(9)  # killed after winning the term file, before writing the heartbeat
    real_atomic_write(path, data, *args, **kwargs)

file_store.atomic_write = die_at_heartbeat
expected = int(sys.argv[2])
file_store.FileHeartbeatStore(Path(sys.argv[1]), "c").acquire(expected, heartbeat("dead", expected + 1))
os._exit(0)
"""


def test_winner_killed_before_writing_its_heartbeat_is_the_holder(store: FileHeartbeatStore) -> None:
    mine = store.renew(store.renew(store.acquire(0, heartbeat("a", 1))))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_BEFORE_HEARTBEAT, str(store.folder), "1"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr.decode(errors="replace")
    assert decode_heartbeat(store.heartbeat_path.read_bytes(), "c") == mine  # its heartbeat never came
    assert store.read().record == heartbeat("dead", 2)  # visible — and fenced — as the holder of term 2
    with pytest.raises(LostTermError, match="term 2 was won by 'dead'"):
        store.renew(mine)
    contender = FileHeartbeatStore(store.folder, "c")
    with pytest.raises(TermConflictError, match=r"current term is 2 \(held by 'dead'\)"):
        contender.acquire(1, heartbeat("c", 2))
    contender.acquire(2, heartbeat("c", 3))
    assert store.read().record == heartbeat("c", 3)


def test_paused_renew_blocks_nobody_and_its_late_write_is_ignored(
    store: FileHeartbeatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old holder pauses between its check and its write; the new holder wins meanwhile; then the old
    holder's write lands with its old term. Readers still see the new term, and the old holder's next renew
    fails."""
    old = store.renew(store.acquire(0, heartbeat("a", 1)))
    at_write, resume = threading.Event(), threading.Event()

    def pausing_atomic_write(path: Path, data: bytes, *args: Any, **kwargs: Any) -> None:
        if threading.current_thread().name == "paused-holder" and path.name == "heartbeat.json":
            at_write.set()
            assert resume.wait(60)
        atomic_write(path, data, *args, **kwargs)

    monkeypatch.setattr("zetafailover.stores.file.atomic_write", pausing_atomic_write)
    late: list[HeartbeatRecord] = []
    paused = threading.Thread(target=lambda: late.append(store.renew(old)), name="paused-holder")
    paused.start()
    try:
        assert at_write.wait(60)
        new_store = FileHeartbeatStore(store.folder, "c")
        t0 = time.monotonic()
        new = new_store.acquire(1, heartbeat("b", 2))
        new = new_store.renew(new)
        assert time.monotonic() - t0 < 20  # nothing to wait for (generous bound: a busy machine)
        assert new_store.read().record == new
    finally:
        resume.set()
        paused.join(60)
    assert late == [dataclasses.replace(old, seq=2)]  # the late write did land…
    assert decode_heartbeat(store.heartbeat_path.read_bytes(), "c").term == 1
    assert store.read().record == heartbeat("b", 2)  # …and hides nothing: the term file of term 2 wins
    with pytest.raises(LostTermError, match="term 2 was won by 'b'"):
        store.renew(late[0])
    assert new_store.renew(new).seq == 2  # the new holder's seq goes on from its own record
    assert store.read().record == dataclasses.replace(new, seq=2)


def test_stale_listing_still_cannot_win_a_term_twice(
    store: FileHeartbeatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NFS client whose cached listing of terms/ lags: the exclusive creation still refuses the term."""
    mine = store.acquire(0, heartbeat("a", 1))
    FileHeartbeatStore(store.folder, "c").acquire(1, heartbeat("b", 2))
    lagging = FileHeartbeatStore(store.folder, "c")
    monkeypatch.setattr(lagging, "_list_terms", lambda: [1])
    store.heartbeat_path.write_bytes(encode_heartbeat(mine))  # …and an old heartbeat.json (a late write)
    with pytest.raises(TermConflictError, match=r"term 2 was won by another node \('b'\) just now"):
        lagging.acquire(1, heartbeat("c", 2))
    monkeypatch.setattr(store, "_list_terms", lambda: [1])
    store.heartbeat_path.write_bytes(encode_heartbeat(heartbeat("b", 2, seq=3)))
    with pytest.raises(LostTermError, match=r"store holds term 2 \(held by 'b'\)"):
        store.renew(mine)  # the newer heartbeat.json gives it away even when the listing lags


def _race(handles: list[FileHeartbeatStore], term: int) -> tuple[list[str], list[BaseException]]:
    barrier = threading.Barrier(len(handles))
    winners: list[str] = []
    unexpected: list[BaseException] = []

    def contend(i: int) -> None:
        barrier.wait()
        try:
            handles[i].acquire(term - 1, heartbeat(f"n{i}", term))
        except TermConflictError:
            pass
        except BaseException as exc:
            unexpected.append(exc)
        else:
            winners.append(f"n{i}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return winners, unexpected


def test_without_hard_links_o_excl_creates_the_term_file(
    store: FileHeartbeatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def no_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(str(dst))
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    won = store.acquire(0, heartbeat("a", 1))
    assert calls == [str(store.term_path(1))]
    assert decode_term(store.term_path(1).read_bytes(), "c") == won
    assert term_files(store) == ["term-000000000001.json"]  # no temporary left
    assert store.renew(won).seq == 1
    handles = [FileHeartbeatStore(store.folder, "c") for _ in range(8)]
    for term in (2, 3):
        winners, unexpected = _race(handles, term)
        assert unexpected == []
        assert len(winners) == 1, winners
        assert store.read().record == heartbeat(winners[0], term)


def test_without_hard_links_a_failed_write_gives_the_term_back(
    store: FileHeartbeatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.acquire(0, heartbeat("a", 1))
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOTSUP, "no links")))
    real_write = os.write
    writes: list[int] = []

    def fill_up(fd: int, data: Any) -> int:
        writes.append(fd)
        if len(writes) == 2:  # the first write fills the temporary, the second the term file itself
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", fill_up)
    with pytest.raises(StoreUnavailableError, match=r"term-000000000002\.json: No space left on device \(ENOSPC\)"):
        store.acquire(1, heartbeat("b", 2))
    monkeypatch.setattr(os, "write", real_write)
    assert term_files(store) == ["term-000000000001.json"]  # neither a half-written term file nor a temporary
    assert store.read().record == heartbeat("a", 1)
    store.acquire(1, heartbeat("c", 2))


def test_a_half_written_term_file_is_no_new_evidence(store: FileHeartbeatStore) -> None:
    """Without hard links, a reader can catch a term file between its creation and its content."""
    mine = store.acquire(0, heartbeat("a", 1))
    full = encode_term(heartbeat("b", 2))
    path = plant_term(store, heartbeat("b", 2), content=full[: len(full) // 3])
    read = store.read()
    assert read.record is None
    assert "term 2 is won but its record is unreadable" in read.problem
    assert "truncated JSON" in read.problem
    with pytest.raises(LostTermError, match="term 2 was won by another node"):
        store.renew(mine)
    with pytest.raises(TermConflictError, match=r"current term is 2 \(held by '\?'\)"):
        store.acquire(1, heartbeat("c", 2))
    path.write_bytes(full)  # the writer finished
    assert store.read().record == heartbeat("b", 2)


def test_link_reporting_eexist_for_our_own_link_wins(
    store: FileHeartbeatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS: the server made the link but the reply was lost; the retransmission fails with EEXIST."""
    real_link = os.link

    def link_then_lose_the_reply(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        real_link(src, dst, *args, **kwargs)
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", link_then_lose_the_reply)
    assert store.acquire(0, heartbeat("a", 1)) == heartbeat("a", 1)
    monkeypatch.setattr(os, "link", real_link)
    assert store.read().record == heartbeat("a", 1)
    assert term_files(store) == ["term-000000000001.json"]


def test_listing_failure_falls_back_to_the_heartbeat(
    store: FileHeartbeatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = store.acquire(0, heartbeat("a", 1))

    def broken() -> list[int]:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store, "_list_terms", broken)
    assert store.read().record == mine
    with pytest.raises(StoreUnavailableError, match=r"cannot list .*terms: Input/output error \(EIO\)"):
        store.acquire(1, heartbeat("b", 2))
    with pytest.raises(StoreUnavailableError, match="EIO"):
        store.renew(mine)


# ------------------------------------------------------------------ SIGSTOP: a paused holder blocks nobody

_PAUSED_HOLDER_ZYGOTE = r"""
import mmap, os, sys
from pathlib import Path
from zetafailover.errors import LostTermError, StoreUnavailableError
from zetafailover.stores.file import FileHeartbeatStore
from zetafailover.testing.store_contract import heartbeat

# Imports once, then forks one holder per "go" line. The holder wins the next term and renews in a tight
# loop, counting the renews it started and finished in a shared file so that the test sees where it stopped.
folder, counters, zygote = Path(sys.argv[1]), sys.argv[2], os.getpid()
for line in sys.stdin:
    if line.strip() != "go":
        break
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        store = FileHeartbeatStore(folder, "pause")
        current = store.read().record
        expected = current.term if current is not None else 0
        record = store.acquire(expected, heartbeat("p", expected + 1, cluster="pause"))
        fd = os.open(counters, os.O_RDWR)
        shared = mmap.mmap(fd, 16)
        shared[0:16] = bytes(16)
        started = finished = 0
        os.write(ready_w, b"r")
        for i in range(1_000_000):  # ends by SIGKILL or LostTermError; the bound and orphan check are nets
            started += 1
            shared[0:8] = started.to_bytes(8, "little")
            try:
                record = store.renew(record)
            except LostTermError:
                os._exit(7)
            except StoreUnavailableError:  # its temporary was swept while it was stopped: retry, like a node
                pass
            finished += 1
            shared[8:16] = finished.to_bytes(8, "little")
            if i % 64 == 0 and os.getppid() != zygote:
                os._exit(3)
        os._exit(4)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9:
        print("sigkill", flush=True)
    else:
        print(f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"status {status}", flush=True)
"""


def _wait_stopped(pid: int, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        if stat_line.rpartition(")")[2].split()[0] in ("T", "t"):
            return
        time.sleep(0.0005)
    raise AssertionError(f"process {pid} did not stop within {limit} s")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see that a process stopped")
def test_sigstopped_holder_never_blocks_a_takeover(tmp_path: Path) -> None:
    """The regression of design note 0002: a holder stopped at random moments — mostly inside a renew — must
    never keep another node from winning the next term; the stopped holder is then killed or resumed (and must
    then lose its term), and no record is ever torn."""
    folder = tmp_path / "ha"
    counters = tmp_path / "counters"
    counters.write_bytes(bytes(16))
    store = FileHeartbeatStore(folder, "pause")
    rng = random.Random(20240917)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    zygote = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_HOLDER_ZYGOTE, str(folder), str(counters)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert zygote.stdin is not None
    assert zygote.stdout is not None
    child = 0
    stopped_inside_renew = 0
    slowest = 0.0
    iterations = 40
    try:
        for iteration in range(iterations):
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            child = int(zygote.stdout.readline())
            stop_at = time.monotonic() + rng.uniform(0.0, 0.02)
            while time.monotonic() < stop_at:  # read while the holder renews: never torn
                read = store.read()
                assert read.ok, read.problem
            os.kill(child, signal.SIGSTOP)
            _wait_stopped(child)
            raw = counters.read_bytes()
            started, finished = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
            stopped_inside_renew += started != finished
            read = store.read()
            assert read.ok, f"iteration {iteration}: {read.problem}"
            assert read.record is not None
            assert read.record.holder == "p"
            term = read.record.term
            t0 = time.monotonic()
            store.acquire(term, heartbeat("b", term + 1, cluster="pause"))  # while the holder is stopped
            slowest = max(slowest, time.monotonic() - t0)
            if iteration % 2 == 0:
                os.kill(child, signal.SIGKILL)
                assert zygote.stdout.readline() == "sigkill\n"
            else:  # resumed, its renew in flight may land once; the next one must see the lost term
                os.kill(child, signal.SIGCONT)
                assert zygote.stdout.readline() == "exit 7\n"
            child = 0
            read = store.read()
            assert read.ok, f"iteration {iteration}: {read.problem}"
            assert read.record is not None
            assert (read.record.term, read.record.holder) == (term + 1, "b")
    finally:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        zygote.stdin.close()
        try:
            zygote.wait(timeout=30)
        finally:
            zygote.kill()
    assert zygote.returncode == 0
    assert slowest < 1.0, f"an acquire while the holder was stopped took {slowest:.3f} s"
    assert stopped_inside_renew >= iterations // 4, f"only {stopped_inside_renew} stops landed inside a renew"
    record = store.read().record
    assert record is not None
    assert record.term == 2 * iterations


def test_symlinked_terms_folder_is_not_followed(store: FileHeartbeatStore, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / term_file_name(5)).write_bytes(encode_term(heartbeat("x", 5)))
    store.terms_dir.symlink_to(elsewhere)
    assert store.read().record is None  # the planted term 5 is never trusted through a link
    with pytest.raises(StoreUnavailableError, match=r"cannot list .*terms: .*\((ELOOP|ENOTDIR)\)"):
        store.acquire(0, heartbeat("a", 1))
    assert sorted(p.name for p in elsewhere.iterdir()) == [term_file_name(5)]
