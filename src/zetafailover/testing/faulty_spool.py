"""A :class:`~zetafailover.spool.directory.DirectorySpool` whose shared folder can fail on command, and a way to
make the fax worker that uses it die mid-job.

:class:`ControlledSpool` is the spool half of the nemesis's "shared folder" faults. Like
:class:`~zetafailover.testing.fault_plugin.ControlledStore`, it re-reads a small JSON *control file* before
every operation, so the faults switch on and off while a real node runs::

    {"spool": {"mode": "read_only"}, "worker": {"kill": "5f1c…"}}

Spool modes (``spool.mode``):

* ``ok`` — no fault (also: no control file, or no ``spool`` key);
* ``unreadable`` — every operation raises :class:`PermissionError` (``EACCES``), as a folder whose permissions
  were taken away, or an NFS export that refuses this host;
* ``read_only`` — reads work; every write raises ``OSError(EROFS)``, as a share remounted read-only;
* ``full`` — reads work; every write raises ``OSError(ENOSPC)``. A real full disk may still let an append into
  a preallocated log block through; the wrapper fails every write, the harsher case;
* ``slow`` — every operation first sleeps ``spool.delay`` seconds (real time), as an overloaded file server.

*Reads* are :meth:`~DirectorySpool.current_term`, :meth:`~DirectorySpool.get`, :meth:`~DirectorySpool.history`,
:meth:`~DirectorySpool.jobs`, :meth:`~DirectorySpool.pending_count`, :meth:`~DirectorySpool.document_path`,
:meth:`~DirectorySpool.received` and :meth:`~DirectorySpool.get_inbound`; every other public operation is a
write. An injected failure happens *before* the real operation, so the spool is left exactly as it was (a
write torn half-way is what the spool's own crash tests cover). Nested calls (``fax_received`` calls
``begin_receive``…) are checked once, at the outermost call.

``worker.kill`` is a token: each time it changes, the next :meth:`page_confirmed` — which a dispatcher worker
calls on its own thread in the middle of a transmission — raises :class:`WorkerKilled` *before* recording the
page. :class:`WorkerKilled` derives from :class:`BaseException`, so no ``except Exception`` handler stops it:
the worker thread dies with a job in flight, as it would from a bug in a driver or the interpreter. The token in
force when the spool is created counts as already used (a restarted node does not die again from an old
request).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from zetafailover.interfaces import Clock
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import HistoryEntry, Inbound, InboundState, Job, JobState, SubmitOptions
from zetafailover.spool.tiff import DEFAULT_MAX_PAGES
from zetafailover.testing.control_file import ControlFile, parse_mode_section

__all__ = [
    "SPOOL_MODES",
    "ControlledSpool",
    "SpoolFaults",
    "WorkerKilled",
    "parse_spool_control",
]

SPOOL_MODES = ("ok", "unreadable", "read_only", "full", "slow")
"""The spool fault modes a control file may name."""

_ERRNO = {"unreadable": errno.EACCES, "read_only": errno.EROFS, "full": errno.ENOSPC}

_log = logging.getLogger("zetafailover.testing.faulty_spool")
_R = TypeVar("_R")


class WorkerKilled(BaseException):
    """Raised in a dispatcher worker thread by a ``worker.kill`` request: the worker dies mid-job.

    A :class:`BaseException` on purpose: it passes every ``except Exception`` on its way out of the thread.
    """


@dataclass(frozen=True, slots=True)
class SpoolFaults:
    """The spool part of a control file: ``mode`` (one of :data:`SPOOL_MODES`), ``delay`` (s), ``kill`` token."""

    mode: str = "ok"
    delay: float = 0.0
    kill: str = ""


def parse_spool_control(data: Mapping[str, Any], source: str = "<control>") -> SpoolFaults:
    """Check the ``spool`` and ``worker`` keys of a control file's content.

    Raises :class:`ValueError` naming ``source``, the key and the bad value. Never blocks.
    """
    mode, delay = parse_mode_section(data, "spool", SPOOL_MODES, source)
    worker = data.get("worker", {})
    if not isinstance(worker, Mapping):
        raise ValueError(f"{source}: 'worker' must be a table, not {worker!r}")
    kill = worker.get("kill", "")
    if not isinstance(kill, str) or len(kill) > 64:
        raise ValueError(f"{source}: worker.kill {kill!r} must be a token string of at most 64 characters")
    return SpoolFaults(mode, delay, kill)


class ControlledSpool(DirectorySpool):
    """A :class:`DirectorySpool` on ``root`` whose faults come from the control file ``control``.

    Timing: each public operation first reads the control file (one small local read; a missing file means no
    fault), then fails at once, sleeps ``delay`` seconds first (``slow``), or simply runs. Atomicity: exactly the
    inner spool's; an injected failure happens before the real operation and leaves the folder untouched. A
    control file that cannot be parsed is logged and the faults in force stay as they were. Thread-safe.
    """

    def __init__(
        self, root: Path, *, node: str, control: Path, clock: Clock | None = None, max_pages: int = DEFAULT_MAX_PAGES
    ) -> None:
        self.control = Path(control)
        self._faults_lock = threading.Lock()
        self._faults = SpoolFaults()
        self._control = ControlFile(self.control, parse_spool_control)
        self._kill_seen = ""
        self._depth = threading.local()
        self.killed = 0
        """How many workers this spool has killed."""
        self.refresh()
        self._kill_seen = self._faults.kill  # a request older than this spool is not for it
        super().__init__(root, node=node, clock=clock, max_pages=max_pages)

    def __repr__(self) -> str:
        return f"ControlledSpool({str(self.root)!r}, control={str(self.control)!r})"

    @property
    def faults(self) -> SpoolFaults:
        """The faults in force (as of the last operation or :meth:`refresh`)."""
        return self._faults

    def refresh(self) -> None:
        """Re-read the control file and apply it if it changed. Never raises for a bad or missing file."""
        wanted = self._control.changed()
        if wanted is None:
            return
        with self._faults_lock:
            if wanted == self._faults:
                return
            self._faults = wanted
        _log.warning("fault control %s: spool mode %s, delay %g s", self.control, wanted.mode, wanted.delay)

    def _take_kill(self) -> bool:
        """True once for every new ``worker.kill`` token."""
        with self._faults_lock:
            token = self._faults.kill
            if token == self._kill_seen:
                return False
            self._kill_seen = token
            if not token:
                return False  # the request was withdrawn (healed) before it was used
            self.killed += 1
            return True

    def _guarded(self, op: str, write: bool, fn: Callable[[], _R]) -> _R:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self.refresh()
            faults = self._faults
            if faults.mode == "slow":
                time.sleep(faults.delay)
            elif faults.mode == "unreadable" or (write and faults.mode in _ERRNO):
                code = _ERRNO[faults.mode]
                raise OSError(code, f"{os.strerror(code)} (injected by {self.control.name} on {op})", str(self.root))
        self._depth.n = depth + 1
        try:
            return fn()
        finally:
            self._depth.n = depth

    # ---------------------------------------------------------------------------------------------- reads

    def current_term(self) -> int:
        return self._guarded("current_term", False, super().current_term)

    def get(self, job_id: str) -> Job:
        return self._guarded("get", False, lambda: super(ControlledSpool, self).get(job_id))

    def history(self, job_id: str) -> list[HistoryEntry]:
        return self._guarded("history", False, lambda: super(ControlledSpool, self).history(job_id))

    def jobs(self, state: JobState | str | None = None) -> list[Job]:
        return self._guarded("jobs", False, lambda: super(ControlledSpool, self).jobs(state))

    def pending_count(self) -> int:
        return self._guarded("pending_count", False, super().pending_count)

    def document_path(self, job_id: str) -> Path:
        return self._guarded("document_path", False, lambda: super(ControlledSpool, self).document_path(job_id))

    def received(self, state: InboundState | str | None = None) -> list[Inbound]:
        return self._guarded("received", False, lambda: super(ControlledSpool, self).received(state))

    def get_inbound(self, inbound_id: str) -> Inbound:
        return self._guarded("get_inbound", False, lambda: super(ControlledSpool, self).get_inbound(inbound_id))

    # --------------------------------------------------------------------------------------------- writes

    def advance_term(self, term: int) -> None:
        self._guarded("advance_term", True, lambda: super(ControlledSpool, self).advance_term(term))

    def submit(self, document: Path, number: str, options: SubmitOptions | None = None) -> str:
        return self._guarded("submit", True, lambda: super(ControlledSpool, self).submit(document, number, options))

    def claim(self, term: int, device: str) -> Job | None:
        return self._guarded("claim", True, lambda: super(ControlledSpool, self).claim(term, device))

    def page_confirmed(self, job_id: str, page_index: int, term: int) -> Job:
        """Record a confirmed page, unless a fault applies; a new ``worker.kill`` token kills the calling thread."""
        self.refresh()
        if self._take_kill():
            _log.warning(
                "worker.kill: killing %s before it records page %d of %s",
                threading.current_thread().name,
                page_index,
                job_id,
            )
            raise WorkerKilled(f"injected: the worker died before recording page {page_index} of {job_id}")
        return self._guarded(
            "page_confirmed", True, lambda: super(ControlledSpool, self).page_confirmed(job_id, page_index, term)
        )

    def complete(self, job_id: str, term: int, ok: bool, reason: str = "", retryable: bool = True) -> Job:
        return self._guarded(
            "complete", True, lambda: super(ControlledSpool, self).complete(job_id, term, ok, reason, retryable)
        )

    def cancel(self, job_id: str, why: str = "cancelled by user") -> Job:
        return self._guarded("cancel", True, lambda: super(ControlledSpool, self).cancel(job_id, why))

    def begin_receive(self, device: str, caller: str, term: int) -> str:
        return self._guarded(
            "begin_receive", True, lambda: super(ControlledSpool, self).begin_receive(device, caller, term)
        )

    def receive_page(self, inbound_id: str, page_bytes: bytes, term: int) -> int:
        return self._guarded(
            "receive_page", True, lambda: super(ControlledSpool, self).receive_page(inbound_id, page_bytes, term)
        )

    def finish_receive(self, inbound_id: str, complete: bool, term: int, reason: str = "") -> Inbound:
        return self._guarded(
            "finish_receive",
            True,
            lambda: super(ControlledSpool, self).finish_receive(inbound_id, complete, term, reason),
        )

    def fax_received(self, device: str, caller: str, pages: Sequence[bytes], complete: bool, term: int) -> str:
        return self._guarded(
            "fax_received",
            True,
            lambda: super(ControlledSpool, self).fax_received(device, caller, pages, complete, term),
        )

    def recover(self, term: int) -> list[str]:
        return self._guarded("recover", True, lambda: super(ControlledSpool, self).recover(term))
