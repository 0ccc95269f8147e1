"""CPU cost of the heartbeat: two real ``zetafailover run`` processes (active + standby) at a 0.1 s interval.

    python benchmarks/heartbeat_cpu.py --seconds 20 --json
    python benchmarks/heartbeat_cpu.py --profile fast --seconds 20 --json

Two nodes share a temporary folder (the file store) with the ``lab`` timing (heartbeat every 0.1 s, the
standby reading the store every 0.05 s) and no devices, so what is measured is the failover machinery alone:
the active's renew (a term check and an fsynced atomic replace of ``heartbeat.json``) and member record, the
standby's reads and its own member record. Once a node is active and the standby has watched it for a while,
the benchmark reads each process's CPU time from ``/proc/PID/stat`` (user + system, every thread) at the start
and the end of a window of ``--seconds``, and reports CPU % of one core per role. From the same files it reports
what is cheap to get: read- and write-family system calls per second (``/proc/PID/io`` ``syscr``/``syscw``),
bytes written to storage, context switches per second, and the active's renews per second (the heartbeat
``seq``), hence CPU milliseconds per heartbeat.

The baseline in the same run is an idle interpreter that has imported the same package and sleeps: the floor
any Python process pays. Linux only (``/proc``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zetafailover.core.timing import PROFILES
from zetafailover.testing.processes import NodeProcesses

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One reading of a process's counters from ``/proc`` (all cumulative since the process started)."""

    mono: float
    cpu_user_s: float
    cpu_system_s: float
    read_syscalls: int
    write_syscalls: int
    write_bytes: int
    ctx_switches: int
    threads: int


def sample(pid: int) -> ProcSample:
    """Read ``/proc/PID/stat``, ``io`` and ``status``. Returns at once; raises ``OSError`` if ``pid`` is gone."""
    mono = time.monotonic()
    stat = (PROC / str(pid) / "stat").read_text()
    # Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    io = _keyed((PROC / str(pid) / "io").read_text())
    status = _keyed((PROC / str(pid) / "status").read_text())
    return ProcSample(
        mono=mono,
        cpu_user_s=int(fields[11]) / ticks,
        cpu_system_s=int(fields[12]) / ticks,
        read_syscalls=int(io["syscr"]),
        write_syscalls=int(io["syscw"]),
        write_bytes=int(io["write_bytes"]),
        ctx_switches=int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"]),
        threads=int(status["Threads"]),
    )


def _keyed(text: str) -> dict[str, str]:
    """``key: value`` lines as a dict (the format of ``/proc/PID/io`` and ``/proc/PID/status``)."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip().split()[0] if value.strip() else "" for key, value in pairs}


def rates(first: ProcSample, last: ProcSample) -> dict[str, float]:
    """Per-second rates and CPU % (of one core) between two samples of one process."""
    span = last.mono - first.mono
    if span <= 0:
        raise ValueError(f"samples must be in time order, got a span of {span} s")
    user = last.cpu_user_s - first.cpu_user_s
    system = last.cpu_system_s - first.cpu_system_s
    return {
        "cpu_percent": round((user + system) / span * 100, 3),
        "user_percent": round(user / span * 100, 3),
        "system_percent": round(system / span * 100, 3),
        "cpu_s": round(user + system, 3),
        "read_syscalls_per_s": round((last.read_syscalls - first.read_syscalls) / span, 1),
        "write_syscalls_per_s": round((last.write_syscalls - first.write_syscalls) / span, 1),
        "write_kib_per_s": round((last.write_bytes - first.write_bytes) / span / 1024, 1),
        "ctx_switches_per_s": round((last.ctx_switches - first.ctx_switches) / span, 1),
        "threads": float(last.threads),
    }


def _baseline(seconds: float) -> subprocess.Popen[bytes]:
    """An idle interpreter that imports what ``zetafailover run`` imports, then sleeps."""
    code = f"import zetafailover.cli, zetafailover.assemble, time; print('ready', flush=True); time.sleep({seconds})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()  # imported: its start-up cost is not measured
    return proc


def run(profile: str, seconds: float, warmup: float, devices: int = 0) -> dict[str, Any]:
    """Measure for ``seconds`` after ``warmup`` seconds of a steady pair; see the module docstring."""
    timing = PROFILES[profile]
    with tempfile.TemporaryDirectory(prefix="zf-hbcpu-") as tmp:
        nodes = NodeProcesses(Path(tmp), cluster="hbcpu", profile=profile, devices=devices)
        baseline = _baseline(warmup + seconds + 30)
        try:
            nodes.start("fax1", 200)
            nodes.start("fax2", 100)
            record = nodes.wait_active(20 * timing.timeout + 30)
            time.sleep(max(warmup, 4 * timing.heartbeat_interval))
            active = record.holder
            standby = "fax2" if active == "fax1" else "fax1"
            pids = {"active": nodes.procs[active].pid, "standby": nodes.procs[standby].pid, "idle": baseline.pid}
            before = nodes.record()
            first = {role: sample(pid) for role, pid in pids.items()}
            time.sleep(seconds)
            last = {role: sample(pid) for role, pid in pids.items()}
            after = nodes.record()
        finally:
            baseline.kill()
            baseline.wait()
            nodes.close()
    if before is None or after is None or (before.term, before.holder) != (after.term, after.holder):
        raise RuntimeError(f"the active changed during the window ({before} → {after}): measurement discarded")
    span = last["active"].mono - first["active"].mono
    renews_per_s = (after.seq - before.seq) / span
    roles = {role: rates(first[role], last[role]) for role in pids}
    active_cpu = roles["active"]["cpu_s"]
    return {
        "benchmark": "heartbeat_cpu",
        "profile": profile,
        "heartbeat_interval": timing.heartbeat_interval,
        "timeout": timing.timeout,
        "poll_interval": timing.poll_interval,
        "devices": devices,
        "seconds": round(span, 2),
        "renews_per_s": round(renews_per_s, 2),
        "active_cpu_ms_per_renew": round(active_cpu / max(after.seq - before.seq, 1) * 1000, 3),
        "cores": os.cpu_count(),
        "clock_ticks_per_s": os.sysconf("SC_CLK_TCK"),
        "roles": roles,
        "above_idle_percent": {
            role: round(roles[role]["cpu_percent"] - roles["idle"]["cpu_percent"], 3) for role in ("active", "standby")
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--profile", default="lab", choices=sorted(PROFILES), help="node timing (default lab)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured window")
    parser.add_argument("--warmup", type=float, default=2.0, help="steady seconds before the window")
    parser.add_argument("--devices", type=int, default=0, help="loopback devices per node (default 0)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.warmup < 0 or args.devices < 0:
        parser.error("--seconds must be at least 1, --warmup and --devices at least 0")
    if not (PROC / "self" / "io").exists():
        parser.error("needs Linux /proc (/proc/self/io is missing)")
    result = run(args.profile, args.seconds, args.warmup, args.devices)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
