"""Immutable, checksummed record files and the directory-fd helpers the spool is built from.

A job's folder holds one record file per transition (``r000000.json``, ``r000001.json`` …), each a complete
snapshot of the job plus the transition (who, term, when, why). A record file is written under a temporary
name and *hard-linked* to its final name only once its content is complete, so a process killed at any
point never leaves a partial record under a record name; then the file and the folder are fsynced. A
record damaged by a power loss on a file system that broke its promises fails its CRC and is ignored (the
transition it held was never acknowledged). Records are never rewritten: the history is the record list.

Every operation works relative to a directory file descriptor opened with ``O_NOFOLLOW``, so a symlink
planted in the spool is never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import zlib
from collections.abc import Iterator
from typing import Any

from zetafailover._atomic import FILE_MODE

__all__ = [
    "DIR_MODE",
    "MAX_RECORD",
    "create_marker",
    "decode_record",
    "encode_record",
    "latest_record",
    "list_records",
    "open_dir",
    "read_all_records",
    "read_file_at",
    "remove_entry",
    "write_new_file",
]

DIR_MODE = 0o755
"""Spool folders: writable by the owner only."""
MAX_RECORD = 256 * 1024
_RECORD = re.compile(r"^r([0-9]{6})\.json$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def open_dir(path: str | os.PathLike[str], dir_fd: int | None = None) -> int:
    """Open a directory for ``*at`` calls and fsync without following a symlink (ELOOP/ENOTDIR if one)."""
    return os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=dir_fd)


def encode_record(body: dict[str, Any]) -> bytes:
    """Canonical JSON with a CRC-32 of the body, so a damaged record is recognised."""
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    crc = zlib.crc32(payload.encode("ascii"))
    return (
        json.dumps({"body": body, "crc": crc}, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        + b"\n"
    )


def decode_record(data: bytes) -> dict[str, Any] | None:
    """The body of a record, or None if the bytes are not a complete, intact record."""
    try:
        outer = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(outer, dict) or not isinstance(outer.get("body"), dict) or not isinstance(outer.get("crc"), int):
        return None
    body: dict[str, Any] = outer["body"]
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if zlib.crc32(payload.encode("ascii")) != outer["crc"]:
        return None
    return body


def read_file_at(dir_fd: int, name: str, limit: int) -> bytes:
    """Read a regular file in ``dir_fd`` without following a symlink; ValueError if not regular or too big."""
    fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{name} is not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{name} is larger than {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise ValueError(f"{name} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_new_file(dir_fd: int, name: str, data: bytes, *, durable: bool = True, mode: int = FILE_MODE) -> None:
    """Create ``name`` in ``dir_fd`` with ``data``; it appears complete or not at all.

    Atomicity: the content is written under a temporary name and hard-linked to ``name``; the link fails with
    :class:`FileExistsError` if ``name`` exists (a compare-and-swap on the name). Timing: with ``durable``,
    one fsync of the file and one of the folder (on a journalling file system usually one journal commit).
    """
    tmp = f".tmp-{name}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        try:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable:
        os.fsync(dir_fd)


def create_marker(dir_fd: int, name: str) -> None:
    """Create an empty marker file (no error if it exists). The caller fsyncs ``dir_fd`` when it must be durable."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE, dir_fd=dir_fd)
    except FileExistsError:
        return
    os.close(fd)


def remove_entry(dir_fd: int, name: str) -> None:
    """Unlink ``name`` (a file or a planted symlink, never its target); no error if it is already gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def list_records(dir_fd: int) -> list[tuple[int, str]]:
    """``(seq, name)`` of every record file name in the folder, in order (content not checked)."""
    out: list[tuple[int, str]] = []
    for name in os.listdir(dir_fd):
        m = _RECORD.match(name)
        if m:
            out.append((int(m.group(1)), name))
    out.sort()
    return out


def latest_record(dir_fd: int) -> tuple[int, dict[str, Any] | None]:
    """``(highest seq name seen, body of the highest *intact* record or None)``.

    The next record is written at ``highest seq + 1``, so a damaged record's number is never reused.
    """
    recs = list_records(dir_fd)
    top = recs[-1][0] if recs else -1
    for _seq, name in reversed(recs):
        body = _read_record(dir_fd, name)
        if body is not None:
            return top, body
    return top, None


def read_all_records(dir_fd: int) -> Iterator[dict[str, Any]]:
    """Every intact record body, oldest first (damaged or planted ones are skipped)."""
    for _seq, name in list_records(dir_fd):
        body = _read_record(dir_fd, name)
        if body is not None:
            yield body


def _read_record(dir_fd: int, name: str) -> dict[str, Any] | None:
    try:
        return decode_record(read_file_at(dir_fd, name, MAX_RECORD))
    except (OSError, ValueError):
        return None
