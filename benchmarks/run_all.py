"""Run every benchmark and write one JSON report and a Markdown table into the docs.

    python benchmarks/run_all.py                    # the full set, about ten minutes on 2 cores
    python benchmarks/run_all.py --quick            # fewer samples, no modem benchmark: a few minutes
    python benchmarks/run_all.py --only takeover    # one benchmark, or a group; merged into the existing report
    python benchmarks/run_all.py --list             # what would run, and what would be skipped and why
    python benchmarks/run_all.py --render-only      # rewrite results.md from report.json (after editing this file)

Each benchmark is a script in ``benchmarks/`` that prints one JSON object; the runner starts it as a subprocess
(an argument list, never a shell) with the same interpreter, one at a time so they do not compete for the
machine, and collects: ``docs/benchmarks/report.json`` (machine, date, git commit, every result with its
command and duration, and the raw takeover samples, which ``docs/hooks/charts.py`` draws at build time) and
``docs/benchmarks/results.md`` (the tables). A benchmark whose program is missing (etcd, iaxmodem, efax) is
skipped with the reason; one that fails is recorded with the end of its output, and the runner goes on and
exits 1 at the end. With ``--only`` the other entries of an existing report are kept, each with the date and
commit it was measured at.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zetafailover._atomic import atomic_write

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
DEFAULT_OUT = ROOT / "docs" / "benchmarks"
REPORT_NAME = "report.json"
RESULTS_NAME = "results.md"
CHART_NAME = "takeover-times.svg"
"""Drawn by ``docs/hooks/charts.py`` into the built site next to ``results.md``."""
REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One benchmark run: ``benchmarks/SCRIPT`` with ``args`` (``quick_args`` under ``--quick``).

    ``needs`` are programs that must be installed (``etcd`` is looked up the way the tests look it up);
    ``full_only`` benchmarks are skipped under ``--quick``; ``timeout`` is the longest the runner waits.
    """

    name: str
    group: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    timeout: float
    needs: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    full_only: bool = False

    def command(self, quick: bool) -> list[str]:
        """The argument list, with the script relative to the repository (the report shows it this way)."""
        return ["python", f"benchmarks/{self.script}", *(self.quick_args if quick else self.args)]


def _takeover(store: str, profile: str, trials: int, quick_trials: int, timeout: float) -> Benchmark:
    base = ("--store", store, "--profile", profile, "--json")
    return Benchmark(
        name=f"takeover-{store}-{profile}",
        group="takeover",
        script="takeover.py",
        args=(*base, "--trials", str(trials)),
        quick_args=(*base, "--trials", str(quick_trials)),
        timeout=timeout,
        needs=("etcd",) if store == "etcd" else (),
        apt=("etcd-server",) if store == "etcd" else (),
    )


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "heartbeat_cpu",
        "heartbeat_cpu",
        "heartbeat_cpu.py",
        ("--seconds", "20", "--json"),
        ("--seconds", "5", "--json"),
        timeout=180,
    ),
    _takeover("file", "lab", 30, 8, timeout=600),
    _takeover("file", "fast", 10, 3, timeout=900),
    _takeover("etcd", "fast", 10, 3, timeout=900),
    Benchmark(
        "spool",
        "spool",
        "spool.py",
        ("--jobs", "400", "--recovery-queued", "100000", "--recovery-inflight", "100", "--json"),
        ("--jobs", "100", "--recovery-queued", "5000", "--recovery-inflight", "20", "--json"),
        timeout=1200,
    ),
    Benchmark(
        "channels",
        "channels",
        "channels.py",
        ("--channels", "120", "--runs", "8", "--json"),
        ("--channels", "30", "--runs", "2", "--json"),
        timeout=1200,
    ),
    Benchmark(
        "modem",
        "modem",
        "modem.py",
        ("--json",),
        ("--json",),
        timeout=900,
        needs=("iaxmodem", "efax"),
        apt=("iaxmodem", "efax"),
        full_only=True,
    ),
)
"""Every benchmark, in the order they run (the cheapest and most noise-sensitive first)."""


# ------------------------------------------------------------------------------------------------ planning


def select(only: Sequence[str], benchmarks: Sequence[Benchmark] = BENCHMARKS) -> list[Benchmark]:
    """The benchmarks named (by name or group) in ``only``, in run order; all of them when ``only`` is empty.

    Raises ``ValueError`` naming an unknown name and the known ones.
    """
    if not only:
        return list(benchmarks)
    known = {b.name for b in benchmarks} | {b.group for b in benchmarks}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ValueError(f"--only {', '.join(unknown)}: unknown; known: {', '.join(sorted(known))}")
    return [b for b in benchmarks if b.name in only or b.group in only]


def _has_program(name: str) -> bool:
    if name == "etcd":
        from zetafailover.testing.etcd import etcd_binary  # noqa: PLC0415 - only needed for the etcd check

        return etcd_binary() is not None
    return shutil.which(name) is not None


def skip_reason(
    bench: Benchmark,
    quick: bool,
    *,
    has_program: Callable[[str], bool] = _has_program,
    bench_dir: Path = BENCH_DIR,
) -> str | None:
    """Why ``bench`` cannot or should not run now (None: it runs)."""
    if not (bench_dir / bench.script).is_file():
        return f"benchmarks/{bench.script} does not exist (yet)"
    missing = [p for p in bench.needs if not has_program(p)]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install {' '.join(bench.apt)})"
    if quick and bench.full_only:
        return "skipped by --quick (it takes minutes); run without --quick"
    return None


# ------------------------------------------------------------------------------------------------- running


def parse_output(stdout: str) -> dict[str, Any]:
    """The JSON object a benchmark printed: the last stdout line that parses as a JSON object.

    Raises ``ValueError`` (with the end of the output) when there is none.
    """
    for raw in reversed(stdout.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    if stdout.strip().startswith("{"):
        value = json.loads(stdout)  # an indented object over several lines
        if isinstance(value, dict):
            return value
    raise ValueError(f"no JSON object in the output: {stdout[-500:]!r}")


@dataclass(slots=True)
class Outcome:
    """What one benchmark run left: ``status`` is ``ok``, ``failed`` or ``skipped``."""

    status: str
    command: list[str]
    measured_at: str
    seconds: float = 0.0
    result: dict[str, Any] | None = None
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "command": self.command,
            "measured_at": self.measured_at,
            "seconds": round(self.seconds, 1),
        }
        if self.result is not None:
            out["result"] = self.result
        if self.reason:
            out["reason"] = self.reason
        out.update(self.extra)
        return out


def run_one(bench: Benchmark, quick: bool, *, root: Path = ROOT, python: str = sys.executable) -> Outcome:
    """Run ``bench`` as a subprocess and parse its JSON.

    Blocks until it exits or ``bench.timeout`` passes (then it is killed and the outcome is ``failed``).
    """
    command = bench.command(quick)
    started = time.monotonic()
    now = _now()
    try:
        proc = subprocess.run(
            [python, *command[1:]],
            capture_output=True,
            text=True,
            timeout=bench.timeout,
            cwd=root,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-2000:]
        text = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return Outcome(
            "failed", command, now, time.monotonic() - started, reason=f"timed out after {exc.timeout:g} s; {text}"
        )
    took = time.monotonic() - started
    if proc.returncode != 0:
        return Outcome(
            "failed",
            command,
            now,
            took,
            reason=f"exit status {proc.returncode}: {last_error(proc.stderr)}",
            extra={"stderr_tail": proc.stderr[-3000:]},
        )
    try:
        result = parse_output(proc.stdout)
    except (ValueError, json.JSONDecodeError) as exc:
        return Outcome("failed", command, now, took, reason=str(exc))
    return Outcome("ok", command, now, took, result=result)


def last_error(stderr: str) -> str:
    """The exception line of a Python traceback in ``stderr`` (else its last non-empty line), for the report."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if "Traceback (most recent call last):" in stderr:
        start = stderr.rindex("Traceback (most recent call last):")
        tail = [line for line in stderr[start:].splitlines()[1:] if line and not line.startswith(" ")]
        if tail:
            return tail[0][:1000]
    return lines[-1][:1000] if lines else "(no output on stderr)"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------- the report


def git_info(root: Path = ROOT) -> dict[str, Any]:
    """The commit checked out in ``root`` and whether the work tree has changes (None when git is missing)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=root, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, kernel, Python and the load average when the run started."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernel": platform.release(),
    }
    for name, key, path in (("cpu_model", "model name", "/proc/cpuinfo"), ("memory", "MemTotal", "/proc/meminfo")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    value = line.split(":", 1)[1].strip()
                    if value.endswith(" kB") and value[:-3].isdigit():
                        value = f"{int(value[:-3]) / 1024**2:.1f} GiB"
                    info[name] = value
                    break
        except OSError:
            pass
    if hasattr(os, "getloadavg"):
        info["loadavg_at_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


def takeover_series(entries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The raw takeover samples of every successful takeover benchmark, with what a chart needs to draw them."""
    series = []
    for name, entry in entries.items():
        result = entry.get("result")
        if entry.get("status") != "ok" or not isinstance(result, dict) or result.get("benchmark") != "takeover":
            continue
        timeout = float(result["timeout"])
        series.append(
            {
                "name": name,
                "store": result.get("store", "file"),
                "profile": result["profile"],
                "heartbeat_interval": float(result["heartbeat_interval"]),
                "timeout": timeout,
                "target_p99_s": round(timeout + float(result.get("overhead_target_s", 0.0)), 4),
                "samples_s": [float(s) for s in result.get("samples_s", [])],
            }
        )
    return series


def build_report(
    outcomes: Mapping[str, Outcome],
    *,
    quick: bool,
    previous: Mapping[str, Any] | None = None,
    git: Mapping[str, Any] | None = None,
    machine: Mapping[str, Any] | None = None,
    order: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The report: this run's ``outcomes`` over the entries of ``previous`` (a partial run keeps the rest).

    Every entry carries its own ``measured_at`` and ``commit``; the top level describes the latest run.
    """
    commit = dict(git or {}).get("commit")
    entries: dict[str, dict[str, Any]] = dict((previous or {}).get("benchmarks", {}))
    for name, outcome in outcomes.items():
        entries[name] = {**outcome.as_json(), "commit": commit, "quick": quick}
    names = list(order) if order is not None else [b.name for b in BENCHMARKS]
    ordered = [n for n in names if n in entries] + sorted(n for n in entries if n not in names)
    benchmarks = {name: entries[name] for name in dict.fromkeys(ordered)}
    return {
        "version": REPORT_VERSION,
        "generated_at": _now(),
        "quick": quick,
        "git": dict(git or {}),
        "machine": dict(machine or {}),
        "benchmarks": benchmarks,
        "takeover_samples": takeover_series(benchmarks),
    }


# ------------------------------------------------------------------------------------------------ Markdown


def _s(value: Any, unit: str = " s", digits: int = 3) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}{unit}"
    return "–"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✔" if ok else " ✘")


def _takeover_rows(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = []
    for entry in entries.values():
        r = entry.get("result") or {}
        if entry.get("status") != "ok" or r.get("benchmark") != "takeover":
            continue
        timeout, hb = r.get("timeout"), r.get("heartbeat_interval")
        target = (
            timeout + r["overhead_target_s"] if isinstance(timeout, int | float) and "overhead_target_s" in r else None
        )
        p99 = r.get("p99_s")
        ok = p99 <= target if isinstance(p99, int | float) and target is not None else None
        rows.append(
            f"| {r.get('store', 'file')} | `{r.get('profile')}` | {hb:g} s / {timeout:g} s | {r.get('trials')} "
            f"| {_s(r.get('p50_s'))} | {_s(p99)} | {_s(r.get('max_s'))} | ≤ {_s(target)}{_mark(ok)} "
            f"| {_s(r.get('verdict_to_active_p99_s'))} |"
        )
    return rows


def _heartbeat_rows(result: Mapping[str, Any]) -> list[str]:
    roles = result.get("roles", {})
    labels = {"active": "active (renews)", "standby": "standby (reads)", "idle": "idle interpreter (baseline)"}
    rows = []
    for role, label in labels.items():
        r = roles.get(role)
        if not isinstance(r, dict):
            continue
        rows.append(
            f"| {label} | {_s(r.get('cpu_percent'), ' %', 2)} | {_s(r.get('user_percent'), ' %', 2)} / "
            f"{_s(r.get('system_percent'), ' %', 2)} | {_s(r.get('read_syscalls_per_s'), '', 0)} / "
            f"{_s(r.get('write_syscalls_per_s'), '', 0)} | {_s(r.get('write_kib_per_s'), '', 0)} "
            f"| {_s(r.get('ctx_switches_per_s'), '', 0)} |"
        )
    return rows


_FS_COSTS = ("mkdir_us", "create_file_us", "overwrite_fdatasync_us", "link_dir_fsync_us")


def _spool_rows(r: Mapping[str, Any]) -> list[str]:
    rows = [
        f"| directory spool, {r.get('workers', '?')} workers | {_s(r.get('directory_jobs_per_s'), ' jobs/s', 1)} |",
        f"| SQLite (WAL, synchronous=FULL), same transitions | {_s(r.get('sqlite_jobs_per_s'), ' jobs/s', 1)} |",
        f"| ratio directory / SQLite | {_s(r.get('ratio'), '', 3)} |",
    ]
    single = r.get("single_worker")
    if isinstance(single, dict):
        rows.append(
            f"| one worker: directory / SQLite | {_s(single.get('directory_jobs_per_s'), '', 1)} / "
            f"{_s(single.get('sqlite_jobs_per_s'), ' jobs/s', 1)} |"
        )
    procs = r.get("processes")
    if isinstance(procs, dict):
        rows.append(
            f"| {r.get('workers', '?')} processes instead of threads: directory / SQLite (ratio) "
            f"| {_s(procs.get('directory_jobs_per_s'), '', 1)} / {_s(procs.get('sqlite_jobs_per_s'), ' jobs/s', 1)} "
            f"({_s(procs.get('ratio'), '', 3)}) |"
        )
    latency = r.get("latency")
    if isinstance(latency, dict):
        for step in ("submit", "claim", "complete"):
            d, q = latency.get("directory", {}).get(step, {}), latency.get("sqlite", {}).get(step, {})
            if not d and not q:
                continue
            rows.append(
                f"| {step} latency p50 / p99: directory · SQLite | {_s(d.get('p50_ms'), '', 2)} / "
                f"{_s(d.get('p99_ms'), ' ms', 2)} · {_s(q.get('p50_ms'), '', 2)} / {_s(q.get('p99_ms'), ' ms', 2)} |"
            )
    if "term_lock_us" in r:
        rows.append(f"| term lock round (fencing cost) | {_s(r.get('term_lock_us'), ' µs', 1)} |")
    costs = r.get("file_system_us")
    if isinstance(costs, dict):
        rows.append(
            f"| file system: mkdir · new file · 4 KiB overwrite + fdatasync · link + folder fsync "
            f"| {' · '.join(_s(costs.get(k), ' µs', 0) for k in _FS_COSTS)} |"
        )
    recovery = r.get("recovery")
    if isinstance(recovery, dict):
        rows.append(
            f"| recovery after takeover, {recovery.get('queued')} queued + {recovery.get('inflight')} in flight "
            f"| {_s(recovery.get('recovery_ms'), ' ms', 1)} |"
        )
    return rows


def _channels_rows(r: Mapping[str, Any]) -> list[str]:
    rows = []
    tp = r.get("throughput")
    if isinstance(tp, dict):
        rows.append(
            f"| throughput, {r.get('channels')} channels | {_s(tp.get('pages_per_s'), ' pages/s', 1)} "
            f"(peak {tp.get('peak', '–')} calls) |"
        )
    to = r.get("takeover")
    if isinstance(to, dict):
        ratios, meets = to.get("ratio_busy_idle", {}), to.get("meets_target", {})
        for key in ("active", "probe_answered"):
            idle = (to.get("idle") or {}).get(key, {})
            busy = (to.get("busy") or {}).get(key, {})
            rows.append(
                f"| takeover to {key.replace('_', ' ')}, idle → busy (medians, `{to.get('profile')}`) "
                f"| {_s(idle.get('median_s'))} → {_s(busy.get('median_s'))}, ratio {_s(ratios.get(key), '', 2)}"
                f"{_mark(meets.get(key))} (target ≤ {to.get('target_ratio', '–')}) |"
            )
    return rows


def _scalar_rows(r: Mapping[str, Any]) -> list[str]:
    return [f"| {key} | {value} |" for key, value in r.items() if isinstance(value, str | int | float | bool)]


def results_markdown(report: Mapping[str, Any], chart: str = CHART_NAME) -> str:
    """The Markdown page for ``report`` (``docs/benchmarks/results.md``): one table per benchmark."""
    entries: Mapping[str, Mapping[str, Any]] = report.get("benchmarks", {})
    git, machine = report.get("git", {}), report.get("machine", {})
    commit = f"`{(git.get('commit') or 'unknown')[:12]}`" + (" (with local changes)" if git.get("dirty") else "")
    out = [
        "# Benchmark results",
        "",
        "<!-- Generated by benchmarks/run_all.py: edit that script, not this file. -->",
        "",
        f"Latest run {report.get('generated_at', '?')} at commit {commit}"
        + (", **quick mode** (fewer samples)" if report.get("quick") else "")
        + f". Machine: {machine.get('cpus', '?')} cores ({machine.get('cpu_model', 'unknown CPU')}), "
        f"{machine.get('memory', '? memory')}, {machine.get('platform', '?')}, Python {machine.get('python', '?')}, "
        f"load average {machine.get('loadavg_at_start', '?')} at the start. Raw figures: [report.json](report.json). "
        "How each benchmark works: [benchmarks](../benchmarks.md).",
        "",
    ]
    rows = _takeover_rows(entries)
    if rows:
        out += [
            "## Takeover after SIGKILL of the active",
            "",
            f"![Takeover time after SIGKILL, per profile and store]({chart})",
            "",
            "| store | profile | heartbeat / timeout | trials | p50 | p99 | max | target p99 "
            "| DEAD verdict → ACTIVE (p99) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    hb = entries.get("heartbeat_cpu", {})
    if hb.get("status") == "ok":
        r = hb["result"]
        out += [
            "## Heartbeat CPU cost",
            "",
            f"Two nodes, `{r.get('profile')}` timing (heartbeat every {r.get('heartbeat_interval')} s, standby polling "
            f"every {r.get('poll_interval')} s), no devices, measured for {r.get('seconds')} s: "
            f"{r.get('renews_per_s')} renews/s, {_s(r.get('active_cpu_ms_per_renew'), ' ms', 2)} of CPU per renew. "
            "Percent of one core; system calls are the read and write families counted by `/proc/PID/io`.",
            "",
            "| process | CPU | user / system | read / write syscalls per s | written KiB/s | context switches/s |",
            "|---|---|---|---|---|---|",
            *_heartbeat_rows(r),
            "",
        ]
    for name, title, render in (
        ("spool", "Spool throughput against SQLite, and recovery", _spool_rows),
        ("channels", "Channels", _channels_rows),
    ):
        entry = entries.get(name, {})
        if entry.get("status") == "ok":
            out += [f"## {title}", "", "| measure | value |", "|---|---|", *render(entry["result"]), ""]
    known = {"heartbeat_cpu", "spool", "channels"}
    for name, entry in entries.items():
        result = entry.get("result")
        if entry.get("status") != "ok" or name in known or name.startswith("takeover-") or not isinstance(result, dict):
            continue
        out += [f"## {name}", "", "| field | value |", "|---|---|", *_scalar_rows(result), ""]
    out += [
        "## Runs",
        "",
        "| benchmark | status | measured | commit | duration | command |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in entries.items():
        status = entry.get("status", "?")
        if entry.get("reason"):
            status += ": " + " ".join(str(entry["reason"]).split())[:160].replace("|", "\\|")
        command = " ".join(entry.get("command", []))
        out.append(
            f"| {name} | {status} | {entry.get('measured_at', '?')} | `{str(entry.get('commit') or '?')[:12]}` "
            f"| {_s(entry.get('seconds'), ' s', 0)} "
            f"| `{command}` |"
        )
    return "\n".join(out) + "\n"


def write_outputs(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``results.md`` into ``out_dir`` atomically (fsynced); returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path, results_path = out_dir / REPORT_NAME, out_dir / RESULTS_NAME
    atomic_write(report_path, (json.dumps(report, indent=1, ensure_ascii=False) + "\n").encode())
    atomic_write(results_path, results_markdown(report).encode())
    return report_path, results_path


def load_previous(out_dir: Path) -> dict[str, Any] | None:
    """The existing report in ``out_dir``, or None when there is none (an unreadable one is an error)."""
    path = out_dir / REPORT_NAME
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); remove it or run without --only") from exc
    if not isinstance(value, dict) or not isinstance(value.get("benchmarks"), dict):
        raise ValueError(f"{path}: not a benchmark report (no 'benchmarks' object)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples, no modem benchmark")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="a benchmark or group (repeatable)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where report.json and results.md go")
    parser.add_argument("--list", action="store_true", help="show what would run and what would be skipped")
    parser.add_argument("--render-only", action="store_true", help="rewrite results.md from report.json, run nothing")
    args = parser.parse_args(argv)
    if args.render_only:
        try:
            existing = load_previous(args.out_dir)
        except ValueError as exc:
            parser.error(str(exc))
        if existing is None:
            parser.error(f"--render-only: {args.out_dir / REPORT_NAME} does not exist")
        atomic_write(args.out_dir / RESULTS_NAME, results_markdown(existing).encode())
        return 0
    try:
        chosen = select(args.only, BENCHMARKS)
        previous = load_previous(args.out_dir) if args.only else None
    except ValueError as exc:
        parser.error(str(exc))
    outcomes: dict[str, Outcome] = {}
    for index, bench in enumerate(chosen, 1):
        reason = skip_reason(bench, args.quick, bench_dir=BENCH_DIR)
        prefix = f"[{index}/{len(chosen)}] {bench.name}"
        if args.list:
            print(f"{prefix}: {' '.join(bench.command(args.quick))}" + (f"  (skipped: {reason})" if reason else ""))
            continue
        if reason:
            print(f"{prefix}: skipped: {reason}", file=sys.stderr, flush=True)
            outcomes[bench.name] = Outcome("skipped", bench.command(args.quick), _now(), reason=reason)
            continue
        print(f"{prefix}: {' '.join(bench.command(args.quick))}", file=sys.stderr, flush=True)
        outcome = run_one(bench, args.quick, root=ROOT)
        outcomes[bench.name] = outcome
        print(f"{prefix}: {outcome.status} in {outcome.seconds:.1f} s {outcome.reason[:300]}", file=sys.stderr)
    if args.list:
        return 0
    order = [b.name for b in BENCHMARKS]
    report = build_report(
        outcomes, quick=args.quick, previous=previous, git=git_info(ROOT), machine=machine_info(), order=order
    )
    report_path, results_path = write_outputs(report, args.out_dir)
    print(f"wrote {report_path} and {results_path}", file=sys.stderr)
    return 1 if any(o.status == "failed" for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
