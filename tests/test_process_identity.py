"""Process identity: host, boot id, start time (parsed right even for odd command names), state."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from zetafailover import _process
from zetafailover._process import (
    boot_id,
    current_identity,
    identity_of,
    is_same_process,
    process_start_time,
    process_state,
    this_host,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SLEEPER = "import sys, time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def spawn(procs: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    procs.append(p)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == b"ready"
    return p


def _uptime_ticks() -> int:
    seconds = float(Path("/proc/uptime").read_text().split()[0])
    return int(seconds * os.sysconf("SC_CLK_TCK")) + 2


def test_current_identity_is_this_process() -> None:
    me = current_identity(role="faxd")
    assert me.pid == os.getpid()
    assert me.host == socket.gethostname() == this_host()
    assert me.role == "faxd"
    assert me.boot_id == boot_id()
    if sys.platform.startswith("linux"):
        assert me.start_time > 0
        assert me.start_time == process_start_time(os.getpid())
        assert is_same_process(me) is True
    assert current_identity() == replace(me, role="node")


@linux_only
def test_boot_id_is_the_kernels_and_stable() -> None:
    first = boot_id()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", first)
    assert first == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert boot_id() == first


@linux_only
def test_child_identity_then_gone(children: list[subprocess.Popen[bytes]]) -> None:
    me = current_identity()
    child = spawn(children, [sys.executable, "-c", SLEEPER])
    ident = identity_of(child.pid, role="modem")
    assert ident is not None
    assert ident.pid == child.pid
    assert ident.role == "modem"
    assert ident.host == me.host
    assert ident.boot_id == me.boot_id
    assert me.start_time <= ident.start_time <= _uptime_ticks()  # started after us, before now
    assert process_state(child.pid) in {"S", "R"}
    assert is_same_process(ident) is True
    assert _process.parent_pid(child.pid) == os.getpid()
    assert os.getpid() in _process.ancestors(child.pid)

    child.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while process_state(child.pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_state(child.pid) == "T"

    child.kill()
    deadline = time.monotonic() + 10
    while process_state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_state(child.pid) == "Z"  # exited, not yet reaped
    assert is_same_process(ident) is True  # a zombie is still that process (the terminator counts it as gone)
    child.wait()
    assert identity_of(child.pid) is None or identity_of(child.pid) != ident
    assert is_same_process(ident) is False
    assert process_state(child.pid) is None or process_start_time(child.pid) != ident.start_time


@linux_only
def test_start_time_parsed_after_the_last_parenthesis(tmp_path: Path, children: list[subprocess.Popen[bytes]]) -> None:
    # The kernel's command name is the executable's file name (at most 15 bytes): make it hostile, so that
    # splitting the stat line at the first ')' or on spaces would pick the wrong fields.
    odd = tmp_path / "a) R 1 (b"
    odd.symlink_to(os.path.realpath(sys.executable))
    child = spawn(children, [str(odd), "-c", SLEEPER])
    assert Path(f"/proc/{child.pid}/comm").read_text().rstrip("\n") == "a) R 1 (b"
    stat = Path(f"/proc/{child.pid}/stat").read_text()
    assert ") R 1 (b)" in stat  # the trap is really in the line
    start = process_start_time(child.pid)
    assert start is not None
    assert current_identity().start_time <= start <= _uptime_ticks()
    assert process_state(child.pid) in {"S", "R"}
    assert _process.parent_pid(child.pid) == os.getpid()
    ident = identity_of(child.pid)
    assert ident is not None
    assert ident.start_time == start


def test_parse_stat_handles_spaces_and_parentheses() -> None:
    tail = " ".join(str(n) for n in range(5, 53))  # fields 5… (pgrp onwards), values = their field numbers
    line = f"4242 (x) (y) S 3 z) T 77 {tail}\n"
    # field 2 is "(x) (y) S 3 z)": the real state is T, ppid 77, starttime is field 22
    state, ppid, start = _process._parse_stat(line)
    assert (state, ppid, start) == ("T", 77, 22)
    with pytest.raises(ValueError):
        _process._parse_stat("")
    with pytest.raises(ValueError):
        _process._parse_stat("12 (short) S 1 2")


def test_other_host_cannot_be_told_and_other_boot_is_gone() -> None:
    me = current_identity()
    assert is_same_process(replace(me, host=me.host + "-elsewhere")) is None
    if sys.platform.startswith("linux"):
        assert is_same_process(replace(me, boot_id="00000000-0000-0000-0000-000000000000")) is False
        assert is_same_process(replace(me, start_time=me.start_time + 1)) is False
    assert is_same_process(replace(me, start_time=0)) is None
    assert is_same_process(replace(me, pid=-1)) is None


def test_nonsense_pids_have_no_facts() -> None:
    for pid in (0, -1, -os.getpid()):
        assert process_start_time(pid) is None
        assert process_state(pid) is None
        assert identity_of(pid) is None
