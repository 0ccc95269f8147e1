"""The body of ``zetafailover demo``: build the world, play the story, stop, report (see the package docstring)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from zetafailover.core.timing import PROFILES
from zetafailover.demo.catalog import SCENARIOS, scenario_list
from zetafailover.demo.report import Check, DemoReport, build_report
from zetafailover.demo.scenarios import PLAYS
from zetafailover.demo.story import Narrator, Story
from zetafailover.demo.world import DEMO_TIMING, DID, REMOTE_NUMBER, DemoWorld, Traffic, TrafficRates

__all__ = ["DRAIN_LIMIT", "LOAD_SLACK", "run_demo", "takeover_bound"]

LOAD_SLACK = 1.5
"""Seconds added to the takeover bound for a loaded 2-core machine."""

DRAIN_LIMIT = 60.0
"""Longest wait, after the traffic stopped, for every outbound fax to be sent or failed."""


def takeover_bound(world: DemoWorld, slack: float = LOAD_SLACK) -> float:
    """The takeover-time audit's bound: ``timeout + heartbeat_interval + fence_timeout + hook_timeout +
    self_fence_grace + slack`` of the world's timing (6.25 s with :data:`DEMO_TIMING`)."""
    t = world.timing
    return t.timeout + t.heartbeat_interval + t.fence_timeout + t.hook_timeout + t.self_fence_grace + slack


def run_demo(
    keep: bool = False,
    profile: str | None = None,
    scenario: str = "kill",
    quick: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run one scenario; returns the exit code: 0 every audit and check held, 1 one failed, 2 bad arguments.

    ``profile`` None uses :data:`DEMO_TIMING` (profile ``fast``, 0.25 s heartbeat, 2.5 s timeout); a profile
    name uses that profile as it is. ``quick`` halves every "let the traffic run" phase. ``keep`` leaves the
    temporary folder (configs, logs, spool) for inspection; it is also kept when the run failed.
    Timing: blocks for the whole story, 40–90 s (under two minutes on a loaded 2-core machine).
    """
    out = out or sys.stdout
    if scenario not in SCENARIOS:
        print(f"zetafailover demo: error: unknown scenario {scenario!r}; known:\n{scenario_list()}", file=sys.stderr)
        return 2
    if profile is not None and profile not in PROFILES:
        print(f"zetafailover demo: error: unknown profile {profile!r}; known: {', '.join(PROFILES)}", file=sys.stderr)
        return 2
    chosen = SCENARIOS[scenario]
    folder = Path(tempfile.mkdtemp(prefix=f"zetafailover-demo-{scenario}-"))
    world = DemoWorld(
        folder,
        profile=profile or "fast",
        timing=DEMO_TIMING if profile is None else None,
        terminator=chosen.terminator,
    )
    narrator = Narrator(out)
    t = world.timing
    narrator.plain(
        f"zetafailover demo — scenario {chosen.name}: {chosen.summary}\n"
        f"folder {folder}\n"
        "fax1 (primary) and fax2 (back-up): each a Class 2.0 modem on one Y-split analog line and an E1 PRI card "
        "behind the PBX\n"
        f"timing: heartbeat every {t.heartbeat_interval:g} s, takeover after {t.timeout:g} s without one; "
        f"terminator {chosen.terminator}\n"
    )
    traffic = Traffic(world, TrafficRates())
    report: DemoReport | None = None
    try:
        first = world.start()
        narrator.say(f"fax1 and fax2 started; {first} won term 1 and is active, the PBX routes the DID to its PRI")
        traffic.start()
        story = Story(world, traffic, narrator, pace=0.5 if quick else 1.0)
        PLAYS[chosen.name](story, first)
        narrator.say("stopping the traffic; the callers finish their calls, the queue drains")
        traffic.stop()
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline and not traffic.all_sent_or_failed():
            time.sleep(0.2)
        narrator.say(f"  {story.counters()}")
        narrator.say("stopping the nodes and reading the evidence: spool, exchange logs, event and device logs")
        world.close()
        report = build_report(
            scenario,
            events={name: world.nodes.events(name) for name in sorted(world.nodes.procs)},
            device_logs=world.device_logs(),
            exchange_pages=world.exchange.pages(),
            exchange_calls=world.exchange.calls_log(),
            remote_received=list(world.remote.received) if world.remote else [],
            spool=traffic.spool,
            outbound=dict(traffic.outbound),
            inbound=list(traffic.inbound),
            faults=story.faults,
            kills=world.nemesis.kills(),
            checks=story.checks,
            bound=takeover_bound(world),
            remote_number=REMOTE_NUMBER,
            pri_number=DID,
            t0=narrator.t0,
        )
        for error in traffic.errors[:5]:
            report.checks.append(_traffic_error(error))
        narrator.plain()
        for line in report.lines():
            narrator.plain(line)
    except Exception as exc:  # the story could not go on: say why, keep the folder, exit 1
        print(f"zetafailover demo: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        world.close()  # first: a caller still in a call is released at once
        traffic.stop(finish=0.0)
        ok = report is not None and report.ok
        if keep or not ok:
            narrator.plain(f"(files kept in {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


def _traffic_error(error: str) -> Check:
    return Check("the traffic generators ran without errors", False, error)
