"""The record log of a job (or inbound fax), the in-flight slot table, and the directory-fd helpers.

**Record log.** A job's folder holds one file, ``log``: the job's transitions, each a complete snapshot of
the job plus the transition (who, term, when, why), appended one after the other. Records are never
rewritten: the history is the log. Each record starts on a 4 KiB block boundary with a 16-byte header —
magic ``\\xffZR1``, sequence number, payload length, CRC-32 of sequence + length + payload — followed by the
JSON payload (ASCII only, so the magic's ``\\xff`` byte can never appear inside a payload: a hostile text in
a record cannot forge a header). The valid records are the longest prefix of intact records; whatever
follows (zeros, or a record torn by a crash, never acknowledged) is ignored and overwritten by the next
append.

The log is created with ``PREALLOC`` zero blocks written and fsynced, so a later append is an *overwrite*
of blocks that already exist: ``pwrite`` + ``fdatasync``, which is durable without a journal commit (the
file's size and block map do not change) — the same reason SQLite's WAL is fast. When the log is full it
grows by writing the record plus a fresh run of zero blocks and a full ``fsync``. A record never shares a
block with an acknowledged record, so a torn block write at power loss can damage only the record being
written (which was not acknowledged and fails its CRC).

**In-flight slot table** (``inflight.slots``): 64-byte slots, each empty (zeros) or holding the id of a job
that is (or may be) in flight, with a CRC. Claiming writes a slot and ``fdatasync``\\ s it *before* the claim
record; recovery reads only this table (its size follows the peak number of jobs in flight, not the queue).
Slots are written under an exclusive ``flock`` on the table; a slot never straddles a sector.

Every operation works relative to a directory file descriptor and opens with ``O_NOFOLLOW``, so a symlink
planted in the spool is never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from zetafailover._atomic import FILE_MODE
from zetafailover._flock import lock
from zetafailover.errors import ValidationError
from zetafailover.spool.jobs import validate_id

__all__ = [
    "BLOCK",
    "DIR_MODE",
    "LOG_NAME",
    "MAX_RECORD",
    "PREALLOC",
    "InflightTable",
    "RecordLog",
    "create_log",
    "create_marker",
    "decode_record",
    "encode_record",
    "latest_record",
    "link_entry",
    "open_dir",
    "read_all_records",
    "read_file_at",
    "remove_entry",
    "write_new_file",
]

DIR_MODE = 0o755
"""Spool folders: writable by the owner only."""
LOG_NAME = "log"
"""The record log's name in a job's (or inbound fax's) folder."""
BLOCK = 4096
"""Records start on block boundaries; a record never shares a block with another."""
PREALLOC = 8
"""Zero blocks written ahead when a log is created or grows (a 2-page job needs 5 records)."""
MAX_RECORD = 256 * 1024
"""Largest record payload."""
MAX_LOG = 256 * 1024 * 1024
"""Largest log read (a 500-page job with retries stays far below)."""

_MAGIC = b"\xffZR1"
_HEADER = struct.Struct("<4sIII")  # magic, seq, length, crc32(seq, length, payload)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def open_dir(path: str | os.PathLike[str], dir_fd: int | None = None) -> int:
    """Open a directory for ``*at`` calls and fsync without following a symlink (ELOOP/ENOTDIR if one)."""
    return os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=dir_fd)


# ------------------------------------------------------------------------------------------ record format


def encode_record(seq: int, body: dict[str, Any]) -> bytes:
    """Header + canonical ASCII JSON of ``body`` (no padding). ValueError if the payload is too large."""
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(payload) > MAX_RECORD:
        raise ValueError(f"record {seq} is {len(payload)} bytes; at most {MAX_RECORD}")
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<II", seq, len(payload))))
    return _HEADER.pack(_MAGIC, seq, len(payload), crc) + payload


def decode_record(data: bytes | memoryview, offset: int = 0) -> tuple[int, int, int] | None:
    """``(seq, payload offset, payload length)`` of an intact record at ``offset``, else None."""
    if offset + _HEADER.size > len(data):
        return None
    magic, seq, length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if magic != _MAGIC or length > MAX_RECORD or start + length > len(data):
        return None
    if zlib.crc32(data[start : start + length], zlib.crc32(struct.pack("<II", seq, length))) != crc:
        return None
    return seq, start, length


def _blocks(nbytes: int) -> int:
    return -(-nbytes // BLOCK) * BLOCK


def read_file_at(dir_fd: int, name: str, limit: int) -> bytes:
    """Read a regular file in ``dir_fd`` without following a symlink; ValueError if not regular or too big."""
    fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
    try:
        return _read_fd(fd, name, limit)
    finally:
        os.close(fd)


def _read_fd(fd: int, name: str, limit: int) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{name} is not a regular file")
    if st.st_size > limit:
        raise ValueError(f"{name} is larger than {limit} bytes")
    chunks: list[bytes] = []
    total, offset = 0, 0
    while True:
        chunk = os.pread(fd, max(1 << 16, st.st_size - total), offset)
        if not chunk:
            break
        total += len(chunk)
        offset += len(chunk)
        if total > limit:
            raise ValueError(f"{name} is larger than {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# ---------------------------------------------------------------------------------------------- the log


class RecordLog:
    """One item's record log, read at open; appended to only by the holder of the item's ``flock``.

    Timing: opening reads the whole log (a few blocks for a typical job). :meth:`append` blocks for one
    ``fdatasync`` (an overwrite of preallocated blocks: no journal commit) or, when the log must grow, one
    ``fsync``. Atomicity: a record is visible once complete (readers check its CRC and take the longest
    intact prefix); a record cut short by a crash is ignored and overwritten by the next append.
    """

    def __init__(self, fd: int, data: bytes) -> None:
        self.fd = fd
        self.size = len(data)
        self._grown = False
        self._data = bytearray(data)
        self.entries: list[tuple[int, int, int]] = []  # (seq, payload offset, payload length)
        offset = 0
        while (hit := decode_record(data, offset)) is not None and hit[0] == len(self.entries):
            self.entries.append(hit)
            offset = _blocks(hit[1] + hit[2])
        self.end = offset

    @classmethod
    @contextlib.contextmanager
    def open(cls, dir_fd: int, *, writable: bool = False) -> Iterator[RecordLog | None]:
        """Open the folder's log (None if it has none: a submit killed before its first record)."""
        try:
            fd = os.open(LOG_NAME, (os.O_RDWR if writable else os.O_RDONLY) | _NOFOLLOW, dir_fd=dir_fd)
        except FileNotFoundError:
            yield None
            return
        except OSError:  # a planted symlink (ELOOP) or something else that is not our log
            yield None
            return
        try:
            try:
                data = _read_fd(fd, LOG_NAME, MAX_LOG)
            except ValueError:
                yield None
                return
            yield cls(fd, data)
        finally:
            os.close(fd)

    @property
    def clean_tail(self) -> bool:
        """True if only zeros follow the intact records (nothing was left half-written)."""
        return not bytes(self._data[self.end :]).strip(b"\0")

    @classmethod
    def fresh(cls, fd: int) -> RecordLog:
        """The view of a log just made by ``create_log(…, None)``: no record yet, its zero blocks in place."""
        return cls(fd, bytes(os.fstat(fd).st_size))

    @property
    def next_seq(self) -> int:
        return len(self.entries)

    def body(self, index: int) -> dict[str, Any] | None:
        _seq, start, length = self.entries[index]
        try:
            out = json.loads(self._data[start : start + length])
        except ValueError:
            return None
        return out if isinstance(out, dict) else None

    def sync(self) -> None:
        """Make every record appended so far durable: ``fdatasync`` (an overwrite of preallocated blocks), or
        a full ``fsync`` if the log grew since the last sync."""
        if self._grown:
            os.fsync(self.fd)
            self._grown = False
        else:
            os.fdatasync(self.fd)

    def latest(self) -> dict[str, Any] | None:
        """The body of the last intact record, or None for an empty log."""
        return self.body(-1) if self.entries else None

    def bodies(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self.entries)):
            body = self.body(i)
            if body is not None:
                yield body

    def append(self, body: dict[str, Any], *, durable: bool = True) -> int:
        """Append ``body`` as record ``next_seq`` (sets ``body['seq']``); durable when it returns.

        With ``durable=False`` the record is written but not synced: the caller calls :meth:`sync` before it
        relies on it (recovery writes many logs, then syncs them one after the other).
        """
        seq = self.next_seq
        body["seq"] = seq
        data = encode_record(seq, body)
        new_end = _blocks(self.end + len(data))
        if new_end <= self.size:
            _pwrite_all(self.fd, data, self.end)
        else:  # grow: the record plus a fresh run of zero blocks, then a full fsync (size and block map change)
            grown = max(new_end + PREALLOC * BLOCK, 2 * self.size)
            _pwrite_all(self.fd, data + bytes(grown - self.end - len(data)), self.end)
            self.size = grown
            self._grown = True
        if durable:
            self.sync()
        self.entries.append((seq, self.end + _HEADER.size, len(data) - _HEADER.size))
        if len(self._data) < self.end + len(data):
            self._data.extend(bytes(self.end + len(data) - len(self._data)))
        self._data[self.end : self.end + len(data)] = data
        self.end = new_end
        return seq


def create_log(dir_fd: int, body: dict[str, Any] | None, *, prealloc: int = PREALLOC) -> int:
    """Create ``log`` in ``dir_fd`` (``O_EXCL``, never through a symlink): ``body`` as record 0 (or no record
    when None) followed by ``prealloc`` zero blocks; returns its descriptor, not fsynced — the caller makes
    it and its name durable in the order it needs (see :meth:`RecordLog.fresh`), then closes it.
    """
    data = encode_record(0, {**body, "seq": 0}) if body is not None else b""
    total = _blocks(len(data)) + prealloc * BLOCK
    fd = os.open(LOG_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE, dir_fd=dir_fd)
    try:
        _pwrite_all(fd, data + bytes(total - len(data)), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def latest_record(dir_fd: int) -> tuple[int, dict[str, Any] | None]:
    """``(seq of the last intact record or -1, its body or None)`` of the folder's log."""
    with RecordLog.open(dir_fd) as log:
        if log is None or not log.entries:
            return -1, None
        return log.next_seq - 1, log.latest()


def read_all_records(dir_fd: int) -> Iterator[dict[str, Any]]:
    """Every intact record body of the folder's log, oldest first."""
    with RecordLog.open(dir_fd) as log:
        bodies = list(log.bodies()) if log is not None else []
    yield from bodies


# ------------------------------------------------------------------------------------------ small files


def write_new_file(dir_fd: int, name: str, data: bytes, *, durable: bool = True, mode: int = FILE_MODE) -> int:
    """Create ``name`` in ``dir_fd`` (``O_EXCL``, never through a symlink) holding ``data``.

    With ``durable``, fsyncs the file (not the folder: the caller fsyncs the folder once for all the names
    it created). Returns nothing useful (0); raises :class:`FileExistsError` if ``name`` exists. A reader
    must not trust the content before the caller's own record says it is complete.
    """
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=dir_fd)
    try:
        _pwrite_all(fd, data, 0)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return 0


def create_marker(dir_fd: int, name: str) -> None:
    """Create an empty marker file (no error if it exists). The caller fsyncs ``dir_fd`` when it must be durable."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE, dir_fd=dir_fd)
    except FileExistsError:
        return
    os.close(fd)


def link_entry(item_fd: int, index_fd: int, name: str) -> None:
    """Make ``name`` in ``index_fd`` a hard link to the item's log (no error if it exists).

    An index entry needs a name, not an inode: a link costs a directory entry only, where creating an empty
    marker file allocates an inode (on some file systems far slower). Never follows a symlink. The caller
    fsyncs ``index_fd`` when the entry must be durable.
    """
    try:
        os.link(LOG_NAME, name, src_dir_fd=item_fd, dst_dir_fd=index_fd, follow_symlinks=False)
    except FileExistsError:
        return


def remove_entry(dir_fd: int, name: str) -> None:
    """Unlink ``name`` (a file or a planted symlink, never its target); no error if it is already gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


# ------------------------------------------------------------------------------------ in-flight slots

_SLOT = 64
_SLOT_MAGIC = b"\xffZI1"
_SLOTS_PER_GROWTH = BLOCK // _SLOT


class InflightTable:
    """The in-flight index: a file of 64-byte slots, each empty or naming a job that may be in flight.

    Timing: :meth:`add` blocks for the table's ``flock`` (held for microseconds) and one ``fdatasync``
    (an overwrite: no journal commit; a full ``fsync`` when the table grows). :meth:`remove` is not synced:
    a slot whose removal is lost to a crash names a job that is no longer in flight, which recovery
    recognises and clears. Atomicity: slots are changed under an exclusive ``flock``; each carries a CRC.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def create(self) -> bool:
        """Create the table (one block of empty slots, fsynced) unless it exists. True if this call made it;
        the caller then fsyncs the folder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE)
        except FileExistsError:
            return False
        try:
            _pwrite_all(fd, bytes(BLOCK), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | _NOFOLLOW)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValidationError(f"{self.path} is not a regular file; refusing to use it")
        return fd

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[tuple[int, bytes]]:
        fd = self._open()
        try:
            lock(fd, exclusive=exclusive)
            yield fd, _read_fd(fd, str(self.path), MAX_LOG)
        finally:
            os.close(fd)

    @staticmethod
    def _encode(job_id: str) -> bytes:
        head = (_SLOT_MAGIC + job_id.encode("ascii")).ljust(_SLOT - 4, b"\0")
        return head + struct.pack("<I", zlib.crc32(head))

    @staticmethod
    def _decode(slot: bytes) -> str | None:
        if len(slot) != _SLOT or not slot.startswith(_SLOT_MAGIC):
            return None
        if struct.unpack("<I", slot[-4:])[0] != zlib.crc32(slot[:-4]):
            return None
        try:
            return validate_id(slot[4:-4].rstrip(b"\0").decode("ascii"))
        except (UnicodeDecodeError, ValidationError):
            return None

    def _slots(self, data: bytes) -> Iterator[tuple[int, str | None]]:
        """Every slot (offset, id or None), or only the held ones when ``data`` is scanned for the magic."""
        for off in range(0, len(data) - _SLOT + 1, _SLOT):
            yield off, self._decode(data[off : off + _SLOT]) if data[off] == 0xFF else None

    def add(self, job_id: str) -> None:
        """Durably record ``job_id`` as possibly in flight (no new write if a slot already names it)."""
        with self._locked(exclusive=True) as (fd, data):
            free = None
            for off, held in self._slots(data):
                if held == job_id:
                    return  # written and fdatasynced earlier; nothing newer can be on disk than in the cache
                if held is None and free is None:
                    free = off
            if free is not None:
                _pwrite_all(fd, self._encode(job_id), free)
            else:
                size = len(data) - len(data) % _SLOT
                grown = _SLOT * _SLOTS_PER_GROWTH * max(1, size // BLOCK)
                _pwrite_all(fd, self._encode(job_id) + bytes(grown - _SLOT), size)
            # The slot is in the page cache, where every later reader and writer of the table sees it, so the
            # sync need not hold the flock: concurrent claims overlap their syncs instead of queueing for them.
            sync_fd = os.dup(fd)
        try:
            if free is None:
                os.fsync(sync_fd)  # the table grew: its size changed
            else:
                os.fdatasync(sync_fd)
        finally:
            os.close(sync_fd)

    def remove(self, *job_ids: str) -> None:
        """Clear every slot naming one of ``job_ids`` in one pass (not synced; see the class docstring)."""
        gone = set(job_ids)
        if not gone:
            return
        with self._locked(exclusive=True) as (fd, data):
            for off, held in self._slots(data):
                if held in gone:
                    _pwrite_all(fd, bytes(_SLOT), off)

    def ids(self) -> list[str]:
        """The ids in the table, in slot order, each once. Reads the table (proportional to its size)."""
        with self._locked(exclusive=False) as (_fd, data):
            return list(dict.fromkeys(held for _off, held in self._slots(data) if held is not None))
