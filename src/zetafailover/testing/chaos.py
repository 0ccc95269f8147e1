"""The randomized chaos run: real node processes, steady fax load both ways, a seeded random mix of faults, audits.

Run it as ``nox -s chaos -- --runs N --seed S`` or ``python -m zetafailover.testing.chaos --runs N --seed S``.
Run ``K`` of seed ``S`` draws its faults from ``random.Random(S + K)``, so one failing run is replayed alone
with ``--runs 1 --seed S --start-run K`` (the report prints that command).

Each run:

1. starts two (``--nodes 3``: three) ``zetafailover run`` processes together
   (:class:`~zetafailover.testing.nemesis.FaultableNodes`, a fast test timing, :data:`CHAOS_TIMING`) in one of
   two worlds (``--world``):

   * ``exchange`` (the default): a simulated exchange (:class:`~zetafailover.testing.exchange.ExchangeServer`)
     in the runner's process; each node has a T1 PRI card (``driver = "isdn"``, 23 B-channels) on its own line,
     and the ``pbx`` line strategy re-routes the fax number :data:`DID` to the active's line through the
     exchange's admin API; a remote fax machine on a trunk (:data:`REMOTE`) receives the outbound faxes;
   * ``loopback``: one two-channel loopback device per node, no exchange, no inbound load;

2. starts a feeder thread that submits a two-page fax to the shared spool every ``1/rate`` seconds and, in the
   exchange world, a caller that dials :data:`DID` every ``1/inbound_rate`` seconds from a trunk of its own
   and sends a two-page fax whose pages are unique to that call (each call on its own thread);
3. for each fault of its plan: waits for a steady cluster (every node process running, an active node
   renewing its heartbeat, every standby alive), injects the fault with the
   :class:`~zetafailover.testing.nemesis.Nemesis`, then heals everything;
4. stops the load, waits until every submitted job is terminal and every call and reception has ended (the
   drain), and runs every audit of :mod:`zetafailover.testing.audits` over the logs the run left behind —
   in the exchange world also over the exchange's page log: no page carried by a node that did not hold the
   newest term, every inbound page the caller saw confirmed stored in the spool, no reception left open.

The plan is a pure function of ``(seed, run)`` (:func:`make_plan`); what the cluster does under it is not
(real processes, real time), which is why the audits use generous time bounds (:func:`takeover_bound`).

The code is in three modules: the plan (:mod:`zetafailover.testing.chaos_plan`: the fault kinds,
:class:`FaultStep`, :class:`RunPlan`, :func:`make_plan`), the worlds and their load
(:mod:`zetafailover.testing.chaos_world`), and this one, the runner: it executes a plan, audits the run, reports
and replays, and is the command line. Every name of ``__all__`` is importable from here.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from zetafailover.admin import observe_cluster
from zetafailover.clock import SystemClock
from zetafailover.core.timing import Timing, timing_from_profile
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import InboundState
from zetafailover.spool.render import text_document
from zetafailover.testing import audits
from zetafailover.testing.chaos_plan import CHAOS_TIMING, FAULT_KINDS, PRIORITIES, FaultStep, RunPlan, make_plan
from zetafailover.testing.chaos_plan import STORE_FAULT_MODES as STORE_FAULT_MODES  # noqa: PLC0414 - re-exported
from zetafailover.testing.chaos_world import DID, PAGE_SECONDS, REMOTE, WORLDS, _Callers, _ExchangeWorld, _Feeder
from zetafailover.testing.exchange import SendResult
from zetafailover.testing.nemesis import FaultableNodes, Nemesis

__all__ = [
    "CHAOS_TIMING",
    "DID",
    "FAULT_KINDS",
    "INVARIANTS",
    "REMOTE",
    "WORLDS",
    "FaultStep",
    "RunPlan",
    "RunResult",
    "execute_run",
    "main",
    "make_plan",
    "replay_command",
    "run_chaos",
    "summary_table",
    "takeover_bound",
]

LOAD_SLACK = 1.5
"""Seconds added to the takeover bound for a loaded 2-core machine (scheduling, process start-up, fsyncs)."""

SETTLE_LIMIT = 30.0
"""Longest wait for a steady cluster between faults; longer is a liveness failure."""

EXCHANGE_SLACK = 0.25
"""Exchange world: seconds by which a card's action (device log) or a page (the exchange's page log) may follow
a higher term's win and still count as the old holder's. A card logs ``connected``, ``page`` or ``answered``
when the exchange's answer arrives — a round trip through the runner's busy process after the node's guard
allowed the action — and the exchange logs a page when its confirmation arrives. An old active that the new
one resumes (SIGCONT) or kills while it waits finishes in these milliseconds (seen in release runs: 3–5 ms);
anything later than this is a violation."""

INVARIANTS: tuple[str, ...] = ("liveness", "single_actor", "jobs_terminal", "duplicates", "inbound", "takeover_time")
"""What each run checks: the run completed (an active node after every heal, no node crashed), then the audits.
``inbound`` is checked only in the exchange world (a loopback run shows ``n/a`` there)."""

Log = Callable[[str], None]


def takeover_bound(timing: dict[str, float] | None = None, slack: float = LOAD_SLACK) -> float:
    """The takeover-time audit's bound: ``timeout + heartbeat_interval + fence_timeout + hook_timeout +
    self_fence_grace + slack``.

    ``timeout`` of silence is what the standby waits for (up to one ``heartbeat_interval`` later it notices),
    ``fence_timeout`` is the longest the terminator may take, ``hook_timeout`` covers a takeover hook,
    ``self_fence_grace`` the extra wait past ``timeout`` when fencing cannot be confirmed (as the demo's bound),
    and ``slack`` (default :data:`LOAD_SLACK`) a loaded machine. With :data:`CHAOS_TIMING`: 6.25 s.
    """
    t = {**CHAOS_TIMING, **(timing or {})}
    grace = t.get("self_fence_grace", 0.0)
    return t["timeout"] + t["heartbeat_interval"] + t["fence_timeout"] + t["hook_timeout"] + grace + slack


# ---------------------------------------------------------------------------------------------- results


@dataclass(slots=True)
class RunResult:
    """What one run did and which invariants held (``violations[name]`` empty: it held)."""

    plan: RunPlan
    folder: str
    tried: list[str] = field(default_factory=list)
    """The fault kinds actually injected, in order (a run that failed early tried fewer than planned)."""
    violations: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in INVARIANTS})
    jobs: int = 0
    sent: int = 0
    failed: int = 0
    terms: int = 0
    switchovers: dict[str, int] = field(default_factory=lambda: {"ok": 0, "refused": 0})
    resent_pages: int = 0
    """Pages sent more than once (each excused by a death, or a ``duplicates`` violation)."""
    takeovers: list[float] = field(default_factory=list)
    """Seconds from each kill or long pause of the active to another node's transition to ACTIVE."""
    seconds: float = 0.0
    world: str = "exchange"
    calls: int = 0
    """Inbound calls the caller placed."""
    confirmed: int = 0
    """Inbound calls with every page confirmed to the caller (MCF)."""
    pages_confirmed: int = 0
    """Inbound pages confirmed to the caller, over all calls (each one must be in the spool)."""
    stored: int = 0
    """Inbound faxes in the spool in state ``received`` (complete)."""
    partial: int = 0
    """Inbound faxes in the spool in state ``partial`` (the call ended early: a fault, a stopped device)."""

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not any(self.violations.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.plan.seed,
            "run": self.plan.run,
            "ok": self.ok,
            "plan": [asdict(f) | {"describe": f.describe()} for f in self.plan.faults],
            "nodes": list(self.plan.nodes),
            "tried": self.tried,
            "violations": self.violations,
            "jobs": self.jobs,
            "sent": self.sent,
            "failed": self.failed,
            "terms": self.terms,
            "switchovers": self.switchovers,
            "resent_pages": self.resent_pages,
            "takeovers": [round(t, 3) for t in self.takeovers],
            "seconds": round(self.seconds, 2),
            "folder": self.folder,
            "world": self.world,
            "inbound": {
                "calls": self.calls,
                "confirmed": self.confirmed,
                "pages_confirmed": self.pages_confirmed,
                "stored": self.stored,
                "partial": self.partial,
            },
        }


# --------------------------------------------------------------------------------------------------- run


class _Run:
    """One run's processes, nemesis and evidence. Not reusable."""

    def __init__(self, plan: RunPlan, folder: Path, log: Log, *, rate: float, world: str, inbound_rate: float) -> None:
        if world not in WORLDS:
            raise ValueError(f"world {world!r} is not one of {', '.join(WORLDS)}")
        if rate <= 0 or inbound_rate <= 0:
            raise ValueError(f"rate and inbound_rate must be above 0, not {rate!r} and {inbound_rate!r}")
        self.plan, self.folder, self.log = plan, folder, log
        self.world: _ExchangeWorld | None = _ExchangeWorld(plan.nodes) if world == "exchange" else None
        try:
            if self.world is None:
                self.nodes = FaultableNodes(
                    folder,
                    cluster="chaos",
                    profile="fast",
                    timing=CHAOS_TIMING,
                    device_options={"page_seconds": PAGE_SECONDS},
                )
            else:
                self.nodes = FaultableNodes(
                    folder,
                    cluster="chaos",
                    profile="fast",
                    timing=CHAOS_TIMING,
                    devices=0,
                    node_extra={name: self.world.node_extra(name) for name in plan.nodes},
                )
            self.callers = (
                _Callers(self.world.server.addresses.endpoints, 1.0 / inbound_rate) if self.world is not None else None
            )
        except BaseException:
            if self.world is not None:
                self.world.close()
            raise
        self.nemesis = Nemesis(self.nodes)
        self.timing: Timing = timing_from_profile("fast", dict(CHAOS_TIMING))
        self.spool = DirectorySpool(folder / "shared" / "spool", node="chaos-feeder")
        document = folder / "two-pages.tif"
        text_document(document, [["chaos page 1"], ["chaos page 2"]])
        self.feeder = _Feeder(self.spool, document, 1.0 / rate)
        self.timed: list[tuple[str, float]] = []
        """``(node, mono)`` of every fault that must end in a takeover: kills and long pauses of the active."""
        self.threads: list[threading.Thread] = []
        self.crashed: list[str] = []

    # ------------------------------------------------------------------------------------ steady state

    def check_exits(self) -> None:
        for name, proc in self.nodes.procs.items():
            code = proc.poll()
            if code not in (None, 0, -signal.SIGKILL, -signal.SIGTERM) and f"{name}:{proc.pid}" not in self.crashed:
                self.crashed.append(f"{name}:{proc.pid}")
                raise RuntimeError(f"{name} (pid {proc.pid}) exited with code {code}; see {self.folder / name}.log")

    def settle(self) -> str:
        """Restart dead nodes, then wait for a steady cluster; returns the active node's name."""
        deadline = time.monotonic() + SETTLE_LIMIT
        seen = ""
        while time.monotonic() < deadline:
            self.check_exits()
            for name, proc in sorted(self.nodes.procs.items()):
                if proc.poll() is not None:  # killed, or fenced by the new active (also while we wait here)
                    self.log(f"    {name} is down (exit {proc.returncode}): restarting it")
                    self.nemesis.restart(name)
            view = observe_cluster(self.nodes.store, "chaos", self.timing, SystemClock(), window=0.75)
            if any(proc.poll() is not None for proc in self.nodes.procs.values()):
                continue  # a node died while we watched (fenced by a takeover): its member record is not proof
            alive = {n.name for n in view.nodes if n.alive and n.healthy}
            seen = f"holder {view.holder or '-'} {view.holder_state or '-'}, alive {sorted(alive)}"
            if view.holder_alive and view.holder_state == "active" and alive >= set(self.plan.nodes):
                return view.holder
        raise RuntimeError(f"no steady cluster within {SETTLE_LIMIT:g} s after a heal ({seen})")

    def standby(self, active: str, pick: int) -> str:
        others = sorted(n for n in self.plan.nodes if n != active)
        return others[pick % len(others)]

    # -------------------------------------------------------------------------------------------- faults

    def inject(self, step: FaultStep, active: str) -> None:
        n = self.nemesis
        target = active if step.role == "active" else self.standby(active, step.pick)
        if step.kind == "kill_active":
            self.timed.append((target, n.kill(target).mono))
            time.sleep(step.seconds)
            n.restart(target)
        elif step.kind.startswith("pause_"):
            if step.kind == "pause_active_long":
                n.pause(target)  # not blocking: its time is what the takeover is measured from
                self.timed.append((target, n.actions("pause")[-1].mono))
                time.sleep(step.seconds)
                n.resume(target)
            else:
                n.pause(target, step.seconds)
        elif step.kind in ("store_one", "store_all"):
            n.store_fault(step.mode, node=target if step.kind == "store_one" else None, delay=step.value)
            time.sleep(step.seconds)
            n.heal_store()
        elif step.kind == "spool_one":
            n.spool_fault(step.mode, node=target, delay=step.value)
            time.sleep(step.seconds)
            n.heal_spool()
        elif step.kind == "folder_one":
            n.folder_fault(step.mode, node=target, delay=step.value)
            time.sleep(step.seconds)
            n.heal_folder()
        elif step.kind == "kill_worker":
            n.kill_worker(target)
            time.sleep(step.seconds)
        elif step.kind == "wall_step":
            n.step_wall(target, step.value)
            time.sleep(step.seconds)
            n.step_wall(target, -step.value)
        elif step.kind == "switchover":
            self.switchover(target if step.role == "standby" else None, step.mode)
        elif step.kind == "switchover_race":
            racer = threading.Thread(target=self.switchover, args=(None, "admin"), name="chaos-switchover")
            self.threads.append(racer)
            racer.start()
            time.sleep(step.seconds)
            if step.mode == "kill":
                self.timed.append((active, n.kill(active).mono))
            else:
                n.pause(active)
                self.timed.append((active, n.actions("pause")[-1].mono))
                time.sleep(self.timing.timeout + 1.0)
                n.resume(active)
            racer.join(timeout=60)
        elif step.kind == "restart_all":
            for name in self.plan.nodes:
                n.kill(name)
            n.start_together({name: PRIORITIES[name] for name in self.plan.nodes})
        else:  # pragma: no cover - make_plan refuses unknown kinds
            raise ValueError(f"unknown fault kind {step.kind!r}")

    def switchover(self, to: str | None, via: str) -> None:
        done = self.nemesis.switchover(to=to, via=via, wait=20.0)
        self.log(f"    switchover to {to or 'best standby'} via {via}: {done.detail['result']}")

    # --------------------------------------------------------------------------------------------- drain

    def start_load(self) -> None:
        self.feeder.start()
        if self.callers is not None:
            self.callers.start()

    def stop_load(self) -> None:
        self.feeder.stop()
        if self.callers is not None:
            self.callers.stop()

    def drain(self, limit: float) -> None:
        """Wait (at most ``limit`` s) until every job is terminal and no inbound fax is still ``receiving``."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(self.spool.get(j).terminal for j in self.feeder.ids) and not self.spool.received(
                InboundState.RECEIVING
            ):
                return
            time.sleep(0.1)

    def close(self) -> None:
        self.stop_load()
        self.nemesis.heal()
        for thread in self.threads:
            thread.join(timeout=60)
        try:
            self.nodes.close()
        finally:
            if self.callers is not None:
                self.callers.close()
            if self.world is not None:
                self.world.close()


def execute_run(
    plan: RunPlan,
    folder: Path,
    *,
    bound: float | None = None,
    rate: float = 2.0,
    run_seconds: float = 40.0,
    drain_limit: float = 60.0,
    log: Log | None = None,
    world: str = "exchange",
    inbound_rate: float = 1.0,
) -> RunResult:
    """Run ``plan`` on fresh node processes in ``folder`` and audit it.

    ``world`` is ``exchange`` (ISDN cards behind a simulated exchange, ``inbound_rate`` calls a second to the
    fax number besides the ``rate`` outbound jobs a second) or ``loopback`` (outbound load only).
    Timing: blocks for the run, normally 15–40 s: faults are no longer started once ``run_seconds`` have
    passed (those left are not tried), each wait for a steady cluster is bounded by :data:`SETTLE_LIMIT` and
    the drain by ``drain_limit``. Every node process (and the exchange) is stopped before this returns, also
    when the run failed (an exception inside the run is recorded as a ``liveness`` violation, not raised).
    Raises ``ValueError`` for an unknown world or a rate that is not above 0.
    """
    say: Log = log or (lambda _line: None)
    bound = takeover_bound() if bound is None else bound
    folder.mkdir(parents=True, exist_ok=True)
    result = RunResult(plan, str(folder), world=world)
    started = time.monotonic()
    run = _Run(plan, folder, say, rate=rate, world=world, inbound_rate=inbound_rate)
    try:
        try:
            run.nemesis.start_together({name: PRIORITIES[name] for name in plan.nodes})
            run.settle()
            run.start_load()
            for step in plan.faults:
                if time.monotonic() - started > run_seconds:
                    say(f"  run time {run_seconds:g} s used up; {step.describe()} and the rest not tried")
                    break
                active = run.settle()
                say(f"  [{time.monotonic() - started:5.1f} s] {step.describe()} (active {active})")
                result.tried.append(step.kind)
                try:
                    run.inject(step, active)
                finally:
                    run.nemesis.heal()
            run.settle()
        except Exception as exc:  # any failure of the run is a finding to report with its seed
            result.violations["liveness"].append(f"{type(exc).__name__}: {str(exc)[:2000]}")
        finally:
            run.stop_load()
        run.drain(drain_limit)
        result.violations["liveness"].extend(f"feeder: {e}" for e in run.feeder.errors[:5])
        try:
            _audit(run, result, bound)
        except Exception as exc:  # the evidence could not be read: report it, never lose the run's seed
            result.violations["liveness"].append(f"auditing failed: {type(exc).__name__}: {exc}")
    finally:
        run.close()
        result.seconds = time.monotonic() - started
    return result


def _audit(run: _Run, result: RunResult, bound: float) -> None:
    events = audits.collect_events(run.nodes)
    devices = audits.collect_device_logs(run.nodes)
    kills = run.nemesis.kills()
    v = result.violations
    # exchange world: a card's log entry is written when its action completes (the far end's CONNECT, an MCF),
    # a round trip after the node's guard allowed it; see EXCHANGE_SLACK
    slack = EXCHANGE_SLACK if run.world is not None else 0.0
    v["single_actor"] += audits.audit_single_actor(events, devices, slack=slack)
    v["jobs_terminal"] += audits.audit_jobs_terminal(run.spool, accepted=run.feeder.ids)
    v["duplicates"] += audits.audit_duplicates(devices, planned=False, deaths=audits.deaths_from(events, kills))
    v["takeover_time"] += audits.audit_takeover_time(events, run.timed, bound)
    if run.world is not None and run.callers is not None:
        exchange = run.world.server.exchange
        page_log = exchange.pages()
        calls = run.callers.results
        received = run.spool.received()
        _keep_evidence(run.folder, exchange.calls_log(), page_log, calls)
        # the exchange's page log, an oracle outside the nodes: every page to or from a node's card was carried
        # while that node held the newest term (within EXCHANGE_SLACK); messages shared with the device-log
        # check above (a term won twice) are reported once
        actors = audits.audit_single_actor(events, {}, exchange_pages=page_log, slack=EXCHANGE_SLACK)
        v["single_actor"] = list(dict.fromkeys([*v["single_actor"], *actors]))
        inbound = audits.audit_inbound(calls, received)
        inbound += audits.audit_inbound(page_log, received, nodes=run.plan.nodes)
        inbound += audits.audit_inbound_closed(received)
        v["inbound"] += list(dict.fromkeys(inbound))
        result.calls = run.callers.placed
        result.confirmed = sum(1 for c in calls if c.ok)
        result.pages_confirmed = sum(len(c.confirmed) for c in calls)
        result.stored = sum(1 for f in received if f.state == InboundState.RECEIVED)
        result.partial = sum(1 for f in received if f.state == InboundState.PARTIAL)
    jobs = [run.spool.get(j) for j in run.feeder.ids]
    result.jobs = len(jobs)
    result.sent = sum(1 for j in jobs if j.state == "sent")
    result.failed = sum(1 for j in jobs if j.state == "failed")
    result.terms = len({e.get("term") for log in events.values() for e in log if e.get("kind") == "term_won"})
    for action in run.nemesis.actions("switchover"):
        result.switchovers["ok" if action.detail.get("ok") else "refused"] += 1
    result.takeovers = _takeover_times(events, run.timed)
    pages = Counter((e.get("job"), e.get("page")) for log in devices.values() for e in log if e.get("event") == "page")
    result.resent_pages = sum(1 for n in pages.values() if n > 1)


def _keep_evidence(
    folder: Path, calls_log: Sequence[dict[str, Any]], page_log: Sequence[dict[str, Any]], calls: Sequence[SendResult]
) -> None:
    """Write the exchange's logs and the caller's results (pages as SHA-256) into the run's folder, so that a
    failed run can be examined after the exchange is gone: ``exchange-calls.jsonl``, ``exchange-pages.jsonl``,
    ``caller.jsonl``. Evidence, not state: no fsync."""

    def lines(rows: Iterator[dict[str, Any]]) -> str:
        return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)

    (folder / "exchange-calls.jsonl").write_text(lines(iter(calls_log)), encoding="utf-8")
    (folder / "exchange-pages.jsonl").write_text(lines(iter(page_log)), encoding="utf-8")
    caller = (
        {
            "call": c.call,
            "cause": c.cause,
            "connected": c.connected,
            "answered_by": c.answered_by,
            "confirmed": list(c.confirmed),
            "sha256": [hashlib.sha256(p).hexdigest() for p in c.pages],
        }
        for c in calls
    )
    (folder / "caller.jsonl").write_text(lines(caller), encoding="utf-8")


def _takeover_times(events: dict[str, list[dict[str, Any]]], timed: Sequence[tuple[str, float]]) -> list[float]:
    """For the report: seconds from each timed fault to the next transition of another node to ACTIVE."""
    times = []
    for victim, at in timed:
        later = [
            float(e["mono"])
            for node, log in events.items()
            if node != victim
            for e in log
            if e.get("kind") == "transition" and e.get("to_state") == "active" and float(e.get("mono", 0)) > at
        ]
        if later:
            times.append(min(later) - at)
    return times


# --------------------------------------------------------------------------------------------- reporting


@dataclass(frozen=True, slots=True)
class Options:
    """The command-line options that shape a run (those that differ from the defaults go into a replay)."""

    faults: int = 4
    nodes: int = 2
    only: tuple[str, ...] = ()
    rate: float = 2.0
    run_seconds: float = 40.0
    takeover_bound: float | None = None
    world: str = "exchange"
    inbound_rate: float = 1.0


def replay_command(seed: int, run: int, options: Options | None = None, *, nox: bool = True) -> str:
    """The exact command that replays run ``run`` of seed ``seed`` alone (with the non-default options)."""
    o = options or Options()
    d = Options()
    args = ["--runs", "1", "--seed", str(seed), "--start-run", str(run)]
    if o.faults != d.faults:
        args += ["--faults", str(o.faults)]
    if o.nodes != d.nodes:
        args += ["--nodes", str(o.nodes)]
    if o.only:
        args += ["--only", ",".join(o.only)]
    if o.rate != d.rate:
        args += ["--rate", f"{o.rate:g}"]
    if o.run_seconds != d.run_seconds:
        args += ["--run-seconds", f"{o.run_seconds:g}"]
    if o.takeover_bound is not None:
        args += ["--takeover-bound", f"{o.takeover_bound:g}"]
    if o.world != d.world:
        args += ["--world", o.world]
    if o.inbound_rate != d.inbound_rate and o.world == "exchange":
        args += ["--inbound-rate", f"{o.inbound_rate:g}"]
    head = "nox -s chaos --" if nox else "python -m zetafailover.testing.chaos"
    return " ".join([head, *args])


INBOUND_COUNTERS: tuple[str, ...] = ("calls", "confirmed", "stored", "partial")
"""The summary table's inbound columns: calls placed, calls confirmed to the caller (every page), faxes stored
complete, faxes stored partial — summed over the exchange-world runs of the row."""


def summary_table(results: Sequence[RunResult]) -> str:
    """Faults tried × invariants held: per fault kind, how often it was injected, in how many runs, and in how
    many of those runs each invariant held (``held/runs``; ``inbound`` over the exchange-world runs only, ``n/a``
    when there were none), then the inbound counters (:data:`INBOUND_COUNTERS`); a last row for all runs."""
    header = ["fault", "tried", "runs", *INVARIANTS, *INBOUND_COUNTERS]
    rows: list[list[str]] = []

    def held(name: str, subset: Sequence[RunResult]) -> str:
        if name == "inbound":
            subset = [r for r in subset if r.world == "exchange"]
            if not subset:
                return "n/a"
        return f"{sum(1 for r in subset if not r.violations[name])}/{len(subset)}"

    def row(label: str, tried: int, subset: Sequence[RunResult]) -> list[str]:
        cells = [held(i, subset) for i in INVARIANTS]
        counts = [str(sum(int(getattr(r, c)) for r in subset)) for c in INBOUND_COUNTERS]
        return [label, str(tried), str(len(subset)), *cells, *counts]

    for kind in FAULT_KINDS:
        subset = [r for r in results if kind in r.tried]
        if subset:
            rows.append(row(kind, sum(r.tried.count(kind) for r in results), subset))
    rows.append(row("all runs", sum(len(r.tried) for r in results), list(results)))
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [
        " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _seconds(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "] s" if values else "none timed"


def report(results: Sequence[RunResult], options: Options, out: TextIO) -> int:
    """Print the table, one line per run and, for each failed run, its violations and replay command.

    Returns the exit code: 0 when every invariant held in every run, else 1.
    """
    bound = options.takeover_bound if options.takeover_bound is not None else takeover_bound()
    print(summary_table(results), file=out)
    how = " (timeout + heartbeat_interval + fence + hook + self-fence grace + load slack)"
    print(f"\ntakeover_time bound {bound:g} s" + ("" if options.takeover_bound is not None else how), file=out)
    for r in results:
        status = "ok" if r.ok else "FAILED"
        print(
            f"run {r.plan.run} (seed {r.plan.seed}): {status}, {len(r.tried)} faults, {r.jobs} jobs "
            f"({r.sent} sent, {r.failed} failed), {r.resent_pages} pages resent, {r.terms} terms, "
            f"switchovers {r.switchovers['ok']} ok / {r.switchovers['refused']} refused, "
            f"takeovers {_seconds(r.takeovers)}, {r.seconds:.1f} s",
            file=out,
        )
        if r.world == "exchange":
            print(
                f"  inbound: {r.calls} calls placed, {r.confirmed} confirmed to the caller "
                f"({r.pages_confirmed} pages), {r.stored} stored complete, {r.partial} partial",
                file=out,
            )
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\nrun {r.plan.run} of seed {r.plan.seed} FAILED ({r.folder}):", file=out)
        for name in INVARIANTS:
            for line in r.violations[name][:10]:
                print(f"  {name}: {line}", file=out)
            if len(r.violations[name]) > 10:
                print(f"  {name}: … {len(r.violations[name]) - 10} more", file=out)
        print(f"  plan: {'; '.join(f.describe() for f in r.plan.faults)}", file=out)
        print(f"  replay: {replay_command(r.plan.seed, r.plan.run, options)}", file=out)
        print(f"      or: {replay_command(r.plan.seed, r.plan.run, options, nox=False)}", file=out)
    return 1 if failed else 0


def run_chaos(
    runs: int,
    seed: int,
    *,
    start_run: int = 0,
    options: Options | None = None,
    workdir: Path | None = None,
    keep: bool = False,
    log: Log | None = None,
) -> list[RunResult]:
    """Runs ``start_run … start_run + runs - 1`` of ``seed``, one after the other, each in its own folder.

    A run's folder (``workdir/seed-S-run-K``) is deleted when every invariant held, unless ``keep``; a failed
    run's folder is kept for its logs. Blocks for every run (see :func:`execute_run`).
    """
    o = options or Options()
    say: Log = log or (lambda _line: None)
    base = workdir or Path(tempfile.mkdtemp(prefix="zetafailover-chaos-"))
    results = []
    for k in range(start_run, start_run + runs):
        plan = make_plan(seed, k, faults=o.faults, nodes=o.nodes, kinds=o.only or FAULT_KINDS)
        folder = base / f"seed-{seed}-run-{k}"
        say(f"run {k} of seed {seed}: {'; '.join(f.describe() for f in plan.faults)}")
        result = execute_run(
            plan,
            folder,
            bound=o.takeover_bound,
            rate=o.rate,
            run_seconds=o.run_seconds,
            log=say,
            world=o.world,
            inbound_rate=o.inbound_rate,
        )
        say(f"run {k}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.1f} s")
        results.append(result)
        if result.ok and not keep:
            shutil.rmtree(folder, ignore_errors=True)
    if workdir is None and not keep and all(r.ok for r in results):
        shutil.rmtree(base, ignore_errors=True)
    return results


# -------------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m zetafailover.testing.chaos",
        description="Randomized fault runs on real node processes under fax load, each audited.",
    )
    p.add_argument("--runs", type=int, default=3, help="how many runs (default 3)")
    p.add_argument("--seed", type=int, default=None, help="the seed (default: a random one, printed)")
    p.add_argument("--start-run", type=int, default=0, help="the first run's number (to replay one run)")
    p.add_argument("--faults", type=int, default=4, help="faults per run (default 4)")
    p.add_argument("--nodes", type=int, choices=(2, 3), default=2, help="node processes per run (default 2)")
    p.add_argument("--only", default="", help=f"comma-separated fault kinds to draw from ({', '.join(FAULT_KINDS)})")
    p.add_argument("--rate", type=float, default=2.0, help="outbound faxes submitted per second (default 2)")
    p.add_argument(
        "--world",
        choices=WORLDS,
        default="exchange",
        help="exchange: ISDN cards behind the simulated exchange, load both ways (default); loopback: outbound only",
    )
    p.add_argument(
        "--inbound-rate", type=float, default=1.0, help="inbound calls per second in the exchange world (default 1)"
    )
    p.add_argument("--run-seconds", type=float, default=40.0, help="no new fault after this many seconds of a run")
    p.add_argument(
        "--takeover-bound", type=float, default=None, help=f"takeover-time audit bound (default {takeover_bound():g} s)"
    )
    p.add_argument("--workdir", type=Path, default=None, help="where the runs' folders go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep every run's folder, not only the failed ones'")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The command line; returns the exit code (1 when any invariant failed in any run, 2 for bad arguments)."""
    out = out or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    only = tuple(k.strip() for k in args.only.split(",") if k.strip())
    if bad := [k for k in only if k not in FAULT_KINDS]:
        parser.error(f"--only: unknown fault kind(s) {', '.join(bad)}; known: {', '.join(FAULT_KINDS)}")
    if args.runs < 1 or args.faults < 1 or args.start_run < 0 or args.rate <= 0 or args.inbound_rate <= 0:
        parser.error("--runs and --faults must be ≥ 1, --start-run ≥ 0, --rate and --inbound-rate > 0")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    options = Options(
        args.faults, args.nodes, only, args.rate, args.run_seconds, args.takeover_bound, args.world, args.inbound_rate
    )

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    say(f"chaos: seed {seed}, runs {args.start_run}..{args.start_run + args.runs - 1}, world {args.world}")
    results = run_chaos(
        args.runs, seed, start_run=args.start_run, options=options, workdir=args.workdir, keep=args.keep, log=say
    )
    if args.json:
        failed = [r for r in results if not r.ok]
        print(
            json.dumps(
                {
                    "seed": seed,
                    "ok": not failed,
                    "runs": [r.as_dict() for r in results],
                    "replay": [replay_command(r.plan.seed, r.plan.run, options) for r in failed],
                },
                indent=2,
            ),
            file=out,
        )
        return 1 if failed else 0
    return report(results, options, out)


@contextlib.contextmanager
def _interrupt_is_exit() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        print("chaos: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    with _interrupt_is_exit():
        sys.exit(main())
