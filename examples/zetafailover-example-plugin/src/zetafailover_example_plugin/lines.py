"""The ``logfile`` line-switch strategy: "the lines" are whatever the last line of a shared log file says.

A real strategy tells a PBX where to route the fax numbers, or decides which of two modems on one line may
pick up. This one writes its decisions to a file that every node can read, which is enough to show the
contract:

* ``take(node, term)`` appends ``take node=N term=T``; it refuses a term older than one already taken (a
  stale node must never grab the lines back) and is idempotent for the current holder;
* ``release(node, term)`` appends ``release node=N term=T`` only if that node still holds the lines under
  that term (idempotent; a stale release is ignored);
* ``may_answer(node)`` is True only for the node that took the lines last and has not released them.

The file looks like::

    1700000002.510 take node=fax1 term=3
    1700000050.020 release node=fax1 term=3
    1700000050.400 take node=fax2 term=4
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from zetafailover.errors import LineSwitchError
from zetafailover.interfaces import Clock

__all__ = ["Holder", "LogFileLineSwitch", "read_holder"]


@dataclass(frozen=True, slots=True)
class Holder:
    """Who has the lines, according to the log."""

    node: str
    term: int


class LogFileLineSwitch:
    """Routes "the lines" by appending to a log file shared by the nodes.

    Timing: ``take`` and ``release`` take an exclusive ``flock`` on the file, read it, append one line and
    fsync (milliseconds on a local disk; on a network share, as long as its lock and fsync take).
    ``may_answer`` reads the file without locking (an append is one ``write``, so it sees a whole line or
    none). Atomicity: ``take`` is a compare-and-set under the lock: it succeeds only if no higher term has
    taken the lines; ``take`` and ``release`` are idempotent.
    """

    def __init__(self, log_path: Path, clock: Clock, name: str = "logfile") -> None:
        self.name = name
        self.log_path = log_path
        self._clock = clock
        self._lock = threading.Lock()

    def take(self, node: str, term: int) -> None:
        """Route the lines to ``node`` under ``term``. Raises :class:`LineSwitchError` for a stale term."""
        with self._locked() as fd:
            holder, highest = _scan(_read_fd(fd))
            if term < highest:
                raise LineSwitchError(
                    f"{self.log_path}: {node} may not take the lines under term {term}: term {highest} already has"
                )
            if holder == Holder(node, term):
                return
            self._write(fd, f"take node={node} term={term}")

    def release(self, node: str, term: int) -> None:
        """``node`` leaves the active role under ``term``: let go of the lines if it still holds them."""
        with self._locked() as fd:
            holder, _ = _scan(_read_fd(fd))
            if holder != Holder(node, term):
                return
            self._write(fd, f"release node={node} term={term}")

    def may_answer(self, node: str) -> bool:
        """True only for the node that took the lines last and has not released them. Never locks."""
        holder = read_holder(self.log_path)
        return holder is not None and holder.node == node

    # ------------------------------------------------------------------------------------ helpers

    def _locked(self) -> _FileLock:
        return _FileLock(self.log_path, self._lock)

    def _write(self, fd: int, event: str) -> None:
        line = f"{self._clock.wall():.3f} {event}\n"
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        except OSError as exc:
            raise LineSwitchError(f"cannot write {self.log_path}: {exc.strerror or exc}") from exc


def read_holder(log_path: Path) -> Holder | None:
    """Who holds the lines according to ``log_path`` (None: nobody, or no file yet)."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return _scan(text)[0]


class _FileLock:
    """An exclusive ``flock`` on the log file (and a thread lock, as flock is per open file)."""

    def __init__(self, path: Path, thread_lock: threading.Lock) -> None:
        self._path = path
        self._thread_lock = thread_lock
        self._fd = -1

    def __enter__(self) -> int:
        self._thread_lock.acquire()
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            if self._fd >= 0:
                os.close(self._fd)
            self._thread_lock.release()
            raise LineSwitchError(f"cannot lock {self._path}: {exc.strerror or exc}") from exc
        return self._fd

    def __exit__(self, *exc_info: object) -> None:
        try:
            os.close(self._fd)  # closing the descriptor releases the flock
        finally:
            self._fd = -1
            self._thread_lock.release()


def _read_fd(fd: int) -> str:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _scan(text: str) -> tuple[Holder | None, int]:
    """``(current holder, highest term ever taken)`` from the log text; malformed lines are skipped."""
    holder: Holder | None = None
    highest = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[1] not in ("take", "release"):
            continue
        fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
        node, term_text = fields.get("node"), fields.get("term", "")
        if not node or not term_text.isdigit():
            continue
        entry = Holder(node, int(term_text))
        if parts[1] == "take":
            holder = entry
            highest = max(highest, entry.term)
        elif holder == entry:
            holder = None
    return holder, highest
