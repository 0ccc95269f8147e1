"""Process identity: who a process is, so that a reused pid is never mistaken for it.

A pid alone is not an identity: once a process exits the kernel hands its pid to the next process that
starts. A :class:`~zetafailover.interfaces.ProcessIdentity` therefore also carries the host name, the
host's *boot id* (two boots of one host) and the process *start time*. Two processes of one boot that share
a pid never share a start time (the second can only get the pid after the first has gone, and the clock
ticks in between), so ``(host, boot_id, pid, start_time)`` names exactly one process.

Where the facts come from:

* Linux: ``/proc/sys/kernel/random/boot_id`` and field 22 of ``/proc/PID/stat`` (clock ticks since boot).
  No extra package is needed.
* Elsewhere (macOS, Windows): :mod:`psutil`, imported lazily and only there, if it is installed:
  ``psutil.boot_time()`` as text and ``Process.create_time()`` in whole microseconds. Without psutil the
  start time is unknown (``None``; a recorded identity then has ``start_time == 0``, which the pid
  terminator treats as *cannot verify* and never signals).

Timing: every function here reads a few small files (or asks psutil) and returns at once; none blocks.
None of them raises for a process that has gone: they answer ``None``.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

from zetafailover.interfaces import ProcessIdentity

__all__ = [
    "boot_id",
    "current_identity",
    "identity_of",
    "is_same_process",
    "process_start_time",
    "process_state",
    "this_host",
]

_PROC = Path("/proc")
_BOOT_ID = _PROC / "sys" / "kernel" / "random" / "boot_id"


def _has_proc() -> bool:
    """True where process facts come from ``/proc`` (Linux); elsewhere psutil is the fallback."""
    return sys.platform.startswith("linux") and (_PROC / "self" / "stat").exists()


def _psutil() -> Any | None:
    """The psutil module if it is installed, else None. Imported lazily: it is optional."""
    try:
        return importlib.import_module("psutil")
    except ImportError:
        return None


# ------------------------------------------------------------------------------------------ /proc parsing


def _parse_stat(text: str) -> tuple[str, int, int]:
    """``(state, ppid, start_time)`` from the text of ``/proc/PID/stat``.

    Field 2 is the command name in parentheses and may itself contain spaces and parentheses (a program
    may name itself ``a) R 1 (b``), so the fields after it are found after the LAST ``)``. Counting from
    there, field 3 (state) is the first, field 4 (ppid) the second and field 22 (starttime) the twentieth.
    Raises ValueError for text that is not a stat line.
    """
    close = text.rfind(")")
    if close < 0 or "(" not in text[:close]:
        raise ValueError(f"not a /proc/PID/stat line: {text[:80]!r}")
    rest = text[close + 1 :].split()
    if len(rest) < 20:
        raise ValueError(f"/proc/PID/stat line has {len(rest) + 2} fields, expected at least 22")
    return rest[0], int(rest[1]), int(rest[19])


def _read_stat(pid: int) -> tuple[str, int, int]:
    """``(state, ppid, start_time)`` of ``pid`` from ``/proc``.

    Raises ProcessLookupError when there is no such process, OSError when it cannot be read.
    """
    if pid <= 0:
        raise ProcessLookupError(f"pid {pid} is not a process id")
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise ProcessLookupError(f"no process with pid {pid}") from None
    try:
        return _parse_stat(text)
    except ValueError:
        if not text:  # a process that exits while we read may leave an empty read
            raise ProcessLookupError(f"pid {pid} went away while being read") from None
        raise OSError(f"cannot parse /proc/{pid}/stat") from None


# ------------------------------------------------------------------------------------------ public facts


def this_host() -> str:
    """This machine's host name (:func:`socket.gethostname`). Never blocks on the network."""
    return socket.gethostname()


def boot_id() -> str:
    """An id that changes at every boot of this host; ``""`` when none can be had.

    Linux: the kernel's random boot id. Elsewhere: psutil's boot time (whole seconds) as text, if psutil is
    installed. (psutil's boot time on Windows may wobble by a second; a changed boot id is never taken as
    proof that a process is gone unless the pid terminator is told to, so a wobble costs a wait, not safety.)
    """
    if sys.platform.startswith("linux"):
        try:
            return _BOOT_ID.read_text(encoding="ascii").strip()
        except OSError:
            pass
    ps = _psutil()
    if ps is not None:
        try:
            return str(int(ps.boot_time()))
        except Exception:  # psutil raises its own errors (AccessDenied…): no boot id then
            return ""
    return ""


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` as an integer, or None when there is no such process or it cannot be read.

    Linux: field 22 of ``/proc/PID/stat`` (clock ticks since boot). Elsewhere: psutil's ``create_time()`` in
    whole microseconds since the epoch, if psutil is installed (else None). Values from different
    platforms are not comparable; an identity is only ever checked on the host that recorded it.
    """
    if pid <= 0:
        return None
    if _has_proc():
        try:
            return _read_stat(pid)[2]
        except OSError:
            return None
    ps = _psutil()
    if ps is None:
        return None
    try:
        return round(float(ps.Process(pid).create_time()) * 1_000_000)
    except Exception:  # NoSuchProcess, AccessDenied, ZombieProcess…
        return None


_PSUTIL_STATES = {
    "running": "R",
    "sleeping": "S",
    "disk-sleep": "D",
    "stopped": "T",
    "tracing-stop": "t",
    "zombie": "Z",
    "dead": "X",
    "idle": "I",
    "waking": "W",
    "parked": "P",
    "locked": "L",
    "waiting": "S",
}


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` as Linux names it, or None when there is no such process.

    ``R`` running, ``S`` sleeping, ``D`` uninterruptible (disk) sleep, ``T`` stopped, ``Z`` zombie (exited,
    not yet reaped by its parent: it can no longer act), ``X`` dead. Elsewhere psutil's status is mapped to
    the same letters (``?`` for one with no Linux equivalent); without psutil the answer is None.
    """
    if pid <= 0:
        return None
    if _has_proc():
        try:
            return _read_stat(pid)[0]
        except OSError:
            return None
    ps = _psutil()
    if ps is None:
        return None
    try:
        return _PSUTIL_STATES.get(str(ps.Process(pid).status()), "?")
    except Exception:
        return None


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` (0 for the root of the tree), or None when it cannot be read."""
    if pid <= 0:
        return None
    if _has_proc():
        try:
            return _read_stat(pid)[1]
        except OSError:
            return None
    if pid == os.getpid():
        return os.getppid()
    ps = _psutil()
    if ps is None:
        return None
    try:
        return int(ps.Process(pid).ppid())
    except Exception:
        return None


def ancestors(pid: int | None = None) -> tuple[int, ...]:
    """The pids of ``pid``'s parent, grandparent… up to the root (``pid`` defaults to this process)."""
    found: list[int] = []
    current = os.getpid() if pid is None else pid
    while len(found) < 4096:  # a bound: the tree cannot be deeper, whatever a racy read says
        parent = parent_pid(current)
        if parent is None or parent <= 0 or parent in found or parent == current:
            break
        found.append(parent)
        current = parent
    return tuple(found)


def identity_of(pid: int, role: str = "node") -> ProcessIdentity | None:
    """The identity of ``pid`` on this host, or None when it has no readable start time (gone, or no psutil)."""
    start = process_start_time(pid)
    if start is None:
        return None
    return ProcessIdentity(host=this_host(), boot_id=boot_id(), pid=pid, start_time=start, role=role)


def current_identity(role: str = "node") -> ProcessIdentity:
    """The identity of the calling process, to publish in heartbeat and member records.

    ``start_time`` is 0 where it cannot be read (macOS or Windows without psutil); a terminator never
    signals a process recorded with an unknown start time.
    """
    pid = os.getpid()
    start = process_start_time(pid)
    return ProcessIdentity(host=this_host(), boot_id=boot_id(), pid=pid, start_time=start or 0, role=role)


def is_same_process(identity: ProcessIdentity) -> bool | None:
    """Whether the process ``identity`` names is still present on this host (a zombie counts as present).

    True: a process with that pid and start time exists in this boot of this host. False: provably not
    (no such pid, the pid now belongs to a process with another start time, or this host has booted since
    the identity was recorded). None: cannot tell (another host, an unknown start time, no way to read
    start times here).
    """
    if identity.host != this_host():
        return None
    here = boot_id()
    if identity.boot_id and here and identity.boot_id != here:
        return False
    if identity.pid <= 0 or identity.start_time <= 0:
        return None
    if _has_proc():
        try:
            return _read_stat(identity.pid)[2] == identity.start_time
        except ProcessLookupError:
            return False
        except OSError:
            return None
    ps = _psutil()
    if ps is None:
        return None
    start = process_start_time(identity.pid)
    if start is None:
        # Never probe with os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT and would be delivered.
        try:
            return None if bool(ps.pid_exists(identity.pid)) else False
        except Exception:
            return None
    return start == identity.start_time
