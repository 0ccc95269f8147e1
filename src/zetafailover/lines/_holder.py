"""Who holds the lines, under which term: kept in memory and, optionally, in a file every node can read.

The file (JSON ``{"node", "term", "released", "at"}``) is changed under an exclusive ``flock`` on a lock file
beside it and replaced atomically, so ``take`` is a compare-and-set on the term across processes and hosts
sharing the folder: a request stamped with a lower term than the file holds is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zetafailover._atomic import atomic_write, read_regular_file
from zetafailover._flock import lock
from zetafailover.errors import LineSwitchError

__all__ = ["Holder", "HolderRecord"]


@dataclass(frozen=True, slots=True)
class HolderRecord:
    node: str
    term: int
    released: bool = False


class Holder:
    """The holder of the lines. Timing: each call is one small locked read (and write); never a network call
    unless ``path`` is on a network share. Atomicity: :meth:`take` and :meth:`release` are compare-and-set on
    the term (under the file lock when there is a file); both are idempotent."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._record: HolderRecord | None = None

    def take(self, node: str, term: int, what: str) -> tuple[HolderRecord | None, bool]:
        """Record ``node`` as holder under ``term``; returns (previous holder, changed). Refuses a lower term."""
        with self._locked():
            current = self._read()
            if current is not None and term < current.term:
                raise LineSwitchError(
                    f"{what}: refusing {node!r} under term {term}: {current.node!r} took the lines under the "
                    f"higher term {current.term}"
                )
            new = HolderRecord(node, term)
            if current == new:
                return current, False
            self._write(new)
            return current, True

    def release(self, node: str, term: int) -> bool:
        """Mark the lines released if ``node`` still holds them under ``term``; True when it did."""
        with self._locked():
            current = self._read()
            if current != HolderRecord(node, term):
                return False
            self._write(HolderRecord(node, term, released=True))
            return True

    def current(self) -> HolderRecord | None:
        """The holder now (from the file when there is one; a file that cannot be read counts as unknown)."""
        if self.path is None:
            return self._record
        try:
            return self._read()
        except LineSwitchError:
            return None

    def _read(self) -> HolderRecord | None:
        if self.path is None:
            return self._record
        try:
            raw = read_regular_file(self.path, limit=4096)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LineSwitchError(f"cannot read the line holder file {self.path}: {exc}") from None
        try:
            value = json.loads(raw)
            return HolderRecord(str(value["node"]), int(value["term"]), bool(value.get("released", False)))
        except (ValueError, KeyError, TypeError) as exc:
            raise LineSwitchError(f"the line holder file {self.path} is damaged: {exc}") from None

    def _write(self, record: HolderRecord) -> None:
        self._record = record
        if self.path is not None:
            body = {"node": record.node, "term": record.term, "released": record.released}
            atomic_write(self.path, json.dumps(body).encode())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self.path is None:
                yield
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                lock(fd)
                yield
            finally:
                os.close(fd)
