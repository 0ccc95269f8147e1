"""The local pid terminator: SIGTERM → grace → SIGKILL, confirmed, and never aimed at a reused pid.

For each recorded :class:`~zetafailover.interfaces.ProcessIdentity` of the old active:

1. A process of another host cannot be fenced from here: the result is *unconfirmed* (the node then waits
   for the old active's self-fence deadline). A process recorded under another boot id of this host name is
   unconfirmed too unless ``reboot_confirms`` is set (see :class:`PidTerminator`).
2. Linux with pidfds (kernel ≥ 5.3): open a pidfd for the pid **first**, then check the start time in
   ``/proc/PID/stat`` against the recorded one. The pidfd pins the process it was opened for, so once the
   start time matches every later signal reaches that very process, even if it exits and its pid is
   reused meanwhile. No such pid, or another start time (the pid now belongs to an innocent process):
   the recorded process is gone → confirmed, and nothing is signalled.
3. Otherwise psutil (if installed) or, on Linux without psutil, ``/proc`` checked right before each
   ``os.kill``: here a small window remains between the check and the signal (see ``docs/fencing.md``).
4. The calling process and its ancestors are never signalled.
5. A *stopped* process (SIGSTOP, a frozen VM's guest process seen from inside) gets SIGKILL at once and is
   never woken: a SIGCONT would let it run again, and until its SIGTERM handler ran it would handle what was
   already under way (an answer to its call, a page in its buffers) as an actor that has been deposed.
   Any other process gets SIGTERM, is waited for up to ``grace``; SIGKILL to any survivor, wait up to the
   rest of the timeout. A process is confirmed gone only when it is observed to
   have exited (a zombie — exited, not yet reaped — counts: it can no longer act).
"""

from __future__ import annotations

import errno
import math
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from zetafailover import _process
from zetafailover.clock import SystemClock
from zetafailover.interfaces import Clock, FenceResult, FenceTarget, ProcessIdentity

__all__ = ["PidTerminator"]

_STEP = 0.05
"""Longest single wait (seconds) before the deadline is looked at again; a pidfd wakes the wait at once."""
_SLEEP_STEP = 0.01
"""Poll interval where there is no pidfd to wait on."""

_TERM, _KILL = "SIGTERM", "SIGKILL"

_broken: set[str] = set()
"""Mechanisms found not to work here: ``pidfd`` once ``pidfd_open`` answered ENOSYS (an old kernel, a seccomp
filter); the fallbacks are used from then on."""


def _backend() -> str:
    """Which mechanism fences here: ``pidfd``, ``psutil``, ``proc`` or ``""`` (none: cannot fence)."""
    if (
        sys.platform.startswith("linux")
        and "pidfd" not in _broken
        and hasattr(os, "pidfd_open")
        and hasattr(signal, "pidfd_send_signal")
    ):
        return "pidfd"
    if _process._psutil() is not None:
        return "psutil"
    if _process._has_proc():
        return "proc"
    return ""


# ----------------------------------------------------------------------------------------------- handles


class _Handle(Protocol):
    """A verified, live target process."""

    def send(self, sig: str) -> None:
        """Deliver ``sig`` (SIGTERM, SIGKILL). ProcessLookupError: gone; PermissionError: not allowed."""
        ...

    def exited(self) -> bool:
        """Whether the process has exited (a zombie counts). Never blocks."""
        ...

    def fileno(self) -> int | None:
        """A descriptor that polls readable when the process exits, or None (then we poll by sleeping)."""
        ...

    def state(self) -> str:
        """The process state letter for evidence, ``?`` when unknown."""
        ...

    def close(self) -> None: ...


def _signum(sig: str) -> int:
    return int({_TERM: signal.SIGTERM, _KILL: signal.SIGKILL}[sig])


class _PidfdHandle:
    """A process pinned by a pidfd: signals cannot reach any other process (Linux ≥ 5.3)."""

    def __init__(self, fd: int, pid: int) -> None:
        self._fd = fd
        self._pid = pid

    def send(self, sig: str) -> None:
        signal.pidfd_send_signal(self._fd, _signum(sig))

    def exited(self) -> bool:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(0))

    def fileno(self) -> int | None:
        return self._fd

    def state(self) -> str:
        return _process.process_state(self._pid) or "?"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _ProcHandle:
    """A process known by pid and start time only (no pidfd, no psutil): checked right before every signal.

    A window remains between the check and ``os.kill``: if the process exits and its pid is handed to a new
    process within it (microseconds, and only after the pid space wrapped around), the new one could be hit.
    """

    def __init__(self, pid: int, start_time: int) -> None:
        self._pid = pid
        self._start = start_time

    def _alive(self) -> bool:
        try:
            state, _, start = _process._read_stat(self._pid)
        except ProcessLookupError:
            return False
        return start == self._start and state not in ("Z", "X")

    def send(self, sig: str) -> None:
        if not self._alive():
            raise ProcessLookupError(self._pid)
        os.kill(self._pid, _signum(sig))

    def exited(self) -> bool:
        try:
            return not self._alive()
        except OSError:
            return False

    def fileno(self) -> int | None:
        return None

    def state(self) -> str:
        return _process.process_state(self._pid) or "?"

    def close(self) -> None:
        pass


class _PsutilHandle:
    """A process held as a ``psutil.Process``, which re-checks its create time before each signal."""

    def __init__(self, ps: Any, proc: Any) -> None:
        self._ps = ps
        self._proc = proc

    def send(self, sig: str) -> None:
        try:
            if sys.platform == "win32":
                if sig == _TERM:
                    self._proc.terminate()
                elif sig == _KILL:
                    self._proc.kill()
                return
            self._proc.send_signal(_signum(sig))
        except self._ps.NoSuchProcess:
            raise ProcessLookupError(self._proc.pid) from None
        except self._ps.AccessDenied:
            raise PermissionError(errno.EPERM, "access denied") from None

    def exited(self) -> bool:
        try:
            if not self._proc.is_running():
                return True
            return bool(self._proc.status() == self._ps.STATUS_ZOMBIE)
        except self._ps.NoSuchProcess:
            return True
        except Exception:
            return False

    def fileno(self) -> int | None:
        return None

    def state(self) -> str:
        return _process.process_state(int(self._proc.pid)) or "?"

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ entries


@dataclass(slots=True)
class _Entry:
    """One recorded process and what happened to it."""

    ident: ProcessIdentity
    label: str
    gone: bool = False
    text: str = ""
    handle: _Handle | None = None
    signalled_at: float = 0.0
    killed_at: float | None = None
    exited_at: float | None = None

    def finish(self, gone: bool, text: str) -> None:
        self.gone = gone
        self.text = f"{self.label} {text}"
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _short(boot: str) -> str:
    return boot[:8] if boot else "(unknown)"


class PidTerminator:
    """Fences processes of this host by pid, confirmed, never hitting a reused pid.

    ``grace`` is how long a process gets to exit after SIGTERM before SIGKILL; it is shortened to half the
    ``timeout`` of a call so that SIGKILL always gets its turn. ``clock`` measures the deadline (monotonic;
    defaults to the system clock). ``reboot_confirms``: a process recorded under another boot id of this
    same host name is gone if the host really rebooted — but the same evidence appears when two machines
    share a host name (cloned servers), so by default it is *not* confirmed; set this only where host names
    are known to be unique.

    Timing: :meth:`terminate` blocks at most ``timeout`` seconds (plus a few milliseconds to close
    descriptors). Atomicity: idempotent — fencing processes that are already gone is a confirmed success
    and sends nothing; each signal goes to the verified process or nowhere.
    """

    kind: str = "pid"
    confirms: bool = True

    def __init__(self, grace: float = 3.0, clock: Clock | None = None, *, reboot_confirms: bool = False) -> None:
        if isinstance(grace, bool) or not isinstance(grace, int | float) or math.isnan(grace) or grace < 0:
            raise ValueError(f"terminator.grace: must be a number of seconds ≥ 0, not {grace!r}")
        self.grace = float(grace)
        self.reboot_confirms = reboot_confirms
        self._clock: Clock = clock if clock is not None else SystemClock()

    def terminate(self, target: FenceTarget, timeout: float) -> FenceResult:
        """Fence every process of ``target``; confirmed only when each is provably gone.

        Blocks at most ``timeout`` seconds. Never raises for a process problem (it is evidence); raises
        ValueError for a negative or NaN ``timeout``.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or math.isnan(timeout) or timeout < 0:
            raise ValueError(f"timeout: must be a number of seconds ≥ 0, not {timeout!r}")
        start = self._clock.monotonic()
        if not target.processes:
            return FenceResult(
                confirmed=False,
                method="pid",
                evidence=f"node {target.node} (term {target.term}): no processes recorded, nothing to confirm",
                duration_s=0.0,
            )
        entries = [self._prepare(ident) for ident in _unique(target.processes)]
        live = [e for e in entries if e.handle is not None]
        try:
            if live:
                self._fence(live, start, start + float(timeout))
        finally:
            for e in entries:
                if e.handle is not None:
                    e.handle.close()
                    e.handle = None
        duration = max(0.0, self._clock.monotonic() - start)
        return FenceResult(
            confirmed=all(e.gone for e in entries),
            method="pid",
            evidence="; ".join(e.text for e in entries),
            duration_s=duration,
        )

    # ---------------------------------------------------------------------------------------- preparation

    def _prepare(self, ident: ProcessIdentity) -> _Entry:
        """Classify one identity; open and verify a handle when the process may be ours to fence."""
        entry = _Entry(ident=ident, label=f"pid {ident.pid} ({ident.role})")
        if isinstance(ident.pid, bool) or not isinstance(ident.pid, int) or ident.pid <= 0:
            entry.finish(False, f"is not a valid process id ({ident.pid!r}): not signalled")
            return entry
        host = _process.this_host()
        if ident.host != host:
            entry.finish(False, f"on host {ident.host!r}, not this host ({host!r}): cannot be fenced from here")
            return entry
        here = _process.boot_id()
        if ident.boot_id != here:
            if self.reboot_confirms and ident.boot_id and here:
                entry.finish(
                    True, f"recorded under an earlier boot of this host (boot id {_short(ident.boot_id)}…): gone"
                )
            else:
                entry.finish(
                    False,
                    f"recorded under boot id {_short(ident.boot_id)}… but host {host!r} is now boot id "
                    f"{_short(here)}…: the host rebooted since, or another machine has the same host name; "
                    "cannot confirm from here",
                )
            return entry
        if isinstance(ident.start_time, bool) or not isinstance(ident.start_time, int) or ident.start_time <= 0:
            entry.finish(False, "has no recorded start time: a reused pid cannot be told apart, not signalled")
            return entry
        self._open(entry)
        return entry

    def _open(self, entry: _Entry) -> None:
        backend = _backend()
        if backend == "pidfd":
            try:
                fd = os.pidfd_open(entry.ident.pid)
            except ProcessLookupError:
                entry.finish(True, "already gone")
                return
            except OSError as exc:
                if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
                    _broken.add("pidfd")  # no pidfds here: use the fallbacks for this and later calls
                    backend = _backend()
                else:
                    entry.finish(False, f"cannot open a pidfd for it ({exc.strerror or exc}): not signalled")
                    return
            else:
                entry.handle = _PidfdHandle(fd, entry.ident.pid)
                self._verify_linux(entry)
                return
        if backend == "psutil":
            self._open_psutil(entry)
        elif backend == "proc":
            entry.handle = _ProcHandle(entry.ident.pid, entry.ident.start_time)
            self._verify_linux(entry)
        else:
            entry.finish(
                False,
                "cannot be checked on this platform without psutil (pip install zetafailover[windows]): not signalled",
            )

    def _verify_linux(self, entry: _Entry) -> None:
        """With a handle open, compare the start time in /proc with the recorded one."""
        pid, want = entry.ident.pid, entry.ident.start_time
        try:
            state, _, have = _process._read_stat(pid)
        except ProcessLookupError:
            entry.finish(True, "already gone")
            return
        except OSError as exc:
            entry.finish(False, f"start time unreadable ({exc}): not signalled")
            return
        if have != want:
            entry.finish(True, f"reused by another process (start time {want} ≠ {have}): gone, not signalled")
            return
        self._check_protected(entry, zombie=state in ("Z", "X"))

    def _open_psutil(self, entry: _Entry) -> None:
        ps = _process._psutil()
        if ps is None:  # uninstalled meanwhile
            entry.finish(False, "psutil is no longer importable: not signalled")
            return
        pid, want = entry.ident.pid, entry.ident.start_time
        try:
            proc = ps.Process(pid)  # pins pid + create time: psutil refuses to signal a reused pid
            if _process._has_proc():
                have: int | None = _process._read_stat(pid)[2]
            else:
                have = round(float(proc.create_time()) * 1_000_000)
            zombie = proc.status() == ps.STATUS_ZOMBIE
        except (ps.NoSuchProcess, ProcessLookupError):
            entry.finish(True, "already gone")
            return
        except ps.AccessDenied:
            entry.finish(False, "permission denied to inspect it: not signalled")
            return
        if have != want:
            entry.finish(True, f"reused by another process (start time {want} ≠ {have}): gone, not signalled")
            return
        entry.handle = _PsutilHandle(ps, proc)
        self._check_protected(entry, zombie=zombie)

    def _check_protected(self, entry: _Entry, zombie: bool) -> None:
        """The verified process is the one recorded: refuse ourselves and our ancestors; note a zombie."""
        pid = entry.ident.pid
        if pid == os.getpid():
            entry.finish(False, "is this process itself: refused, never signalled")
        elif pid in _process.ancestors():
            entry.finish(False, "is an ancestor of this process: refused, never signalled")
        elif zombie or (entry.handle is not None and entry.handle.exited()):
            entry.finish(True, "had already exited (zombie, not yet reaped): gone, not signalled")

    # --------------------------------------------------------------------------------------------- fencing

    def _fence(self, live: list[_Entry], start: float, deadline: float) -> None:
        """SIGKILL the stopped at once; SIGTERM the others, SIGKILL them after the grace; wait until the deadline."""
        now = self._clock.monotonic()
        stopped = {id(e) for e in live if e.handle is not None and e.handle.state() in ("T", "t")}
        for e in live:
            e.signalled_at = now
            if id(e) in stopped:
                e.killed_at = now
                self._send(e, _KILL)
            else:
                self._send(e, _TERM)
        grace_end = min(start + self.grace, start + (deadline - start) / 2)
        self._wait([e for e in live if e.handle is not None], grace_end)
        for e in live:
            if e.handle is not None and e.exited_at is not None:
                how = "was stopped: SIGKILL without waking it" if id(e) in stopped else "SIGTERM"
                e.finish(True, f"{how} → exited after {e.exited_at - e.signalled_at:.2f} s")
        now = self._clock.monotonic()
        for e in live:
            if e.handle is not None and e.killed_at is None:
                e.killed_at = now
                self._send(e, _KILL)
        survivors = [e for e in live if e.handle is not None]
        self._wait(survivors, deadline)
        for e in survivors:
            assert e.handle is not None
            assert e.killed_at is not None
            how = (
                "was stopped: SIGKILL without waking it"
                if id(e) in stopped
                else f"SIGTERM ignored for {e.killed_at - e.signalled_at:.2f} s; SIGKILL"
            )
            if e.exited_at is not None:
                e.finish(True, f"{how} → exited after {e.exited_at - e.killed_at:.2f} s")
            else:
                waited = self._clock.monotonic() - e.killed_at
                e.finish(
                    False,
                    f"{how} sent but still present after {waited:.2f} s "
                    f"(state {e.handle.state()}, e.g. D: uninterruptible I/O): not confirmed",
                )

    def _send(self, e: _Entry, sig: str) -> None:
        assert e.handle is not None
        try:
            e.handle.send(sig)
        except ProcessLookupError:
            e.exited_at = e.exited_at if e.exited_at is not None else self._clock.monotonic()
            e.finish(True, f"exited before {sig} could be delivered: gone")
        except PermissionError as exc:
            e.finish(False, f"permission denied to send {sig} ({exc.strerror or exc}): not confirmed")
        except OSError as exc:
            e.finish(False, f"{sig} failed ({exc.strerror or exc}): not confirmed")

    def _wait(self, entries: list[_Entry], until: float) -> None:
        """Wait until every entry's process has exited or ``until`` (monotonic, on our clock) has come."""
        while True:
            now = self._clock.monotonic()
            pending: list[_Entry] = []
            for e in entries:
                if e.exited_at is None:
                    assert e.handle is not None
                    if e.handle.exited():
                        e.exited_at = now
                    else:
                        pending.append(e)
            if not pending or now >= until:
                return
            step = min(until - now, _STEP)
            fds = [e.handle.fileno() for e in pending if e.handle is not None]
            began = time.monotonic()
            if fds and all(fd is not None for fd in fds):
                poller = select.poll()
                for fd in fds:
                    assert fd is not None
                    poller.register(fd, select.POLLIN)
                poller.poll(max(1, math.ceil(step * 1000)))  # wakes as soon as one of them exits
            else:
                time.sleep(min(step, _SLEEP_STEP))
            waited = time.monotonic() - began
            if self._clock.monotonic() - now < waited / 2:
                self._clock.sleep(waited)  # a simulated clock: move it by the real time we waited


def _unique(processes: Sequence[ProcessIdentity]) -> list[ProcessIdentity]:
    seen: set[tuple[str, str, int, int]] = set()
    out: list[ProcessIdentity] = []
    for p in processes:
        key = (p.host, p.boot_id, p.pid, p.start_time)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
