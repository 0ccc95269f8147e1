"""The command terminator: a fencing agent (``ssh``, ``ipmitool``, a site script) run as an argument list.

The agent's contract is the fence agents' one: exit status 0 **only once the old active is off** (its fax
processes killed, or the machine powered off and its power status read back). Any other outcome — a non-zero
status, a timeout, a missing program — is an unconfirmed fence, and takeover then waits for the old active's
self-fence deadline.

Arguments are a list and never pass through a shell. Four placeholders are substituted inside each argument,
in a single pass (a substituted value is never searched for placeholders again, and other braces stay as they
are): ``{node}`` the old active's node name, ``{term}`` the term being taken over, ``{host}`` the host name(s)
of its recorded processes (comma-separated; empty if none were recorded), ``{pids}`` their pids
(comma-separated). The same values are also in the environment as ``ZETAFAILOVER_NODE``, ``ZETAFAILOVER_TERM``,
``ZETAFAILOVER_HOST`` and ``ZETAFAILOVER_PIDS``. Values are checked before use: a node or host name that is not
plain letters, digits, ``.``, ``_`` and ``-`` (or that starts with ``-``, which a program would read as an
option) is refused and the agent is not run.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from zetafailover.interfaces import FenceResult, FenceTarget

__all__ = ["PLACEHOLDERS", "CommandTerminator"]

PLACEHOLDERS = ("node", "term", "host", "pids")
"""The names that may appear in braces in an argument: ``{node}``, ``{term}``, ``{host}``, ``{pids}``."""

_PLACEHOLDER = re.compile(r"\{(node|term|host|pids)\}")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
_TAIL = 2048
"""Bytes kept from the end of stdout and of stderr for the evidence (about 4 KiB in all)."""
_REAP_WAIT = 5.0
"""How long to wait for the killed agent to be reaped after its group got SIGKILL."""


class CommandTerminator:
    """Fences by running an external fencing agent; confirmed only by its exit status 0.

    ``argv`` is the program and its arguments as a list (a string is refused: it would need a shell).
    ``timeout`` caps the agent's run time (seconds); the smaller of it and the ``timeout`` of each
    :meth:`terminate` call applies. ``env`` adds variables to the inherited environment (pass secrets such as
    an IPMI password this way or through a file, not in ``argv``; the evidence never repeats the arguments).

    Timing: :meth:`terminate` blocks until the agent exits or the timeout ends, then at most a few seconds more
    to kill and reap the agent's whole process group. Atomicity: as idempotent as the agent (fence agents are:
    switching off a machine that is off succeeds).
    """

    kind: str = "command"
    confirms: bool = True

    def __init__(self, argv: Sequence[str], timeout: float | None = None, env: Mapping[str, str] | None = None) -> None:
        if isinstance(argv, str | bytes):
            raise ValueError(
                f'terminator.command: must be a list of arguments such as ["ssh", "{{host}}", "…"], '
                f"not the string {argv!r}: a string would have to be split by a shell, and a shell would "
                "interpret quotes, ';', '$' and spaces in node or host names"
            )
        args = list(argv)
        if not args:
            raise ValueError("terminator.command: must name at least the program to run")
        for i, arg in enumerate(args):
            if not isinstance(arg, str):
                raise ValueError(f"terminator.command[{i}]: must be a string, not {type(arg).__name__} {arg!r}")
            if "\x00" in arg:
                raise ValueError(f"terminator.command[{i}]: must not contain NUL")
        if not args[0]:
            raise ValueError("terminator.command[0]: the program must not be empty")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or math.isnan(timeout) or timeout <= 0
        ):
            raise ValueError(f"terminator.timeout: must be a number of seconds > 0, not {timeout!r}")
        extra: dict[str, str] = {}
        for key, value in (env or {}).items():
            if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
                raise ValueError(f"terminator.env: {key!r} is not a valid environment variable name")
            if not isinstance(value, str) or "\x00" in value:
                raise ValueError(f"terminator.env.{key}: must be a string without NUL, not {value!r}")
            extra[key] = value
        self.argv: tuple[str, ...] = tuple(args)
        self.timeout: float | None = None if timeout is None else float(timeout)
        self.env: Mapping[str, str] = extra

    def terminate(self, target: FenceTarget, timeout: float) -> FenceResult:
        """Run the agent for ``target``; confirmed only if it exits with status 0 within the timeout.

        Blocks at most ``min(timeout, self.timeout)`` seconds plus the time to kill and reap the agent's
        process group. Never raises for an agent problem (it is evidence); raises ValueError for a negative
        or NaN ``timeout``.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or math.isnan(timeout) or timeout < 0:
            raise ValueError(f"timeout: must be a number of seconds ≥ 0, not {timeout!r}")
        limit = float(timeout) if self.timeout is None else min(self.timeout, float(timeout))
        program = self.argv[0]
        began = time.monotonic()

        def result(confirmed: bool, evidence: str) -> FenceResult:
            return FenceResult(
                confirmed=confirmed,
                method="command",
                evidence=evidence,
                duration_s=max(0.0, time.monotonic() - began),
            )

        try:
            values = _values(target)
        except ValueError as exc:
            return result(False, f"fencing command {program!r} not run: {exc}")
        argv = [_PLACEHOLDER.sub(lambda m: values[m[1]], arg) for arg in self.argv]
        env = dict(os.environ)
        env.update(self.env)
        env.update({f"ZETAFAILOVER_{k.upper()}": v for k, v in values.items()})

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, close_fds=True, **_group_kwargs()
                )
            except FileNotFoundError:
                return result(False, f"fencing command {program!r} not found (is it installed and on PATH?)")
            except PermissionError:
                return result(False, f"fencing command {program!r} is not executable (permission denied)")
            except OSError as exc:
                return result(False, f"fencing command {program!r} could not be started: {exc.strerror or exc}")
            try:
                status = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return result(
                    False,
                    f"fencing command {program!r} timed out after {limit:g} s; its process group was killed"
                    + _tails(out, err),
                )
            except BaseException:
                _kill_group(proc)  # interrupted: never leave a fencing agent running behind us
                raise
            took = time.monotonic() - began
            if status == 0:
                return result(True, f"fencing command {program!r} exited 0 after {took:.2f} s" + _tails(out, err))
            if status < 0:
                how = f"was killed by signal {-status} ({_signal_name(-status)})"
            else:
                how = f"exited with status {status}"
            return result(False, f"fencing command {program!r} {how} after {took:.2f} s" + _tails(out, err))


def _values(target: FenceTarget) -> dict[str, str]:
    """The placeholder values for ``target``; ValueError names a value that is unsafe to pass on."""
    if not _SAFE_NAME.match(target.node):
        raise ValueError(f"node name {target.node!r} is not a plain name (letters, digits, '.', '_', '-')")
    if isinstance(target.term, bool) or not isinstance(target.term, int) or target.term < 0:
        raise ValueError(f"term {target.term!r} is not a whole number ≥ 0")
    hosts: list[str] = []
    pids: list[str] = []
    for p in target.processes:
        if not _SAFE_NAME.match(p.host):
            raise ValueError(f"host name {p.host!r} of pid {p.pid!r} is not a plain host name")
        if isinstance(p.pid, bool) or not isinstance(p.pid, int) or p.pid <= 0:
            raise ValueError(f"pid {p.pid!r} on host {p.host!r} is not a process id")
        if p.host not in hosts:
            hosts.append(p.host)
        pids.append(str(p.pid))
    return {"node": target.node, "term": str(target.term), "host": ",".join(hosts), "pids": ",".join(pids)}


def _group_kwargs() -> dict[str, Any]:
    """Start the agent in a process group of its own, so that a timeout kills it with all its children."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the agent and every process of its group, then reap it (bounded wait)."""
    if sys.platform == "win32":
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):  # /T: the whole tree; part of Windows
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(proc.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=_REAP_WAIT,
                check=False,
            )
        proc.kill()
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the agent leads its own session and group: pgid == pid
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_REAP_WAIT)


def _tail(fh: IO[bytes]) -> str:
    fh.flush()
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - _TAIL))
    data = fh.read(_TAIL)
    text = data.decode("utf-8", errors="replace").strip()
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return ("…" + text) if size > _TAIL else text


def _tails(out: IO[bytes], err: IO[bytes]) -> str:
    parts = []
    for name, fh in (("stderr", err), ("stdout", out)):
        text = _tail(fh)
        if text:
            parts.append(f"{name}: {text}")
    return ("; " + "; ".join(parts)) if parts else ""


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return "unknown signal"
