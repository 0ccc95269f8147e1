"""The steps every demo story is made of, each narrated with a timestamp and the traffic counters.

A :class:`Story` holds the running world and its traffic, prints what happens (``[  12.3 s] …`` lines) and
keeps what the report needs: the faults that moved the active role (:class:`~zetafailover.demo.report.Fault`)
and the story's own expectations (:class:`~zetafailover.demo.report.Check`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from zetafailover.demo.report import Check, Fault
from zetafailover.demo.world import DID, NODES, DemoWorld, Traffic
from zetafailover.interfaces import HeartbeatRecord

__all__ = ["Narrator", "Story"]

PROGRESS_EVERY = 3.0
"""Seconds between two progress lines while traffic runs."""


class Narrator:
    """Prints timestamped lines (seconds since it was made) to ``out``. Thread-safe."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.t0 = time.monotonic()
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self.t0:6.1f} s] {text}", file=self.out, flush=True)

    def plain(self, text: str = "") -> None:
        with self._lock:
            print(text, file=self.out, flush=True)


class Story:
    """One run of a scenario: the world, its traffic, the narration, the faults and the checks.

    ``pace`` scales every "let the traffic run" phase (1.0 normally, less for ``--quick``). Timing: each step
    blocks until what it waits for happened, bounded by a limit derived from the timing (a missed limit raises
    ``TimeoutError`` naming what did not happen, which ends the run with exit code 1).
    """

    def __init__(self, world: DemoWorld, traffic: Traffic, narrator: Narrator, pace: float = 1.0) -> None:
        self.world, self.traffic, self.narrator, self.pace = world, traffic, narrator, pace
        self.faults: list[Fault] = []
        self.checks: list[Check] = []
        self.timing = world.timing
        self.limit = 10 * self.timing.timeout + 20.0

    # ------------------------------------------------------------------------------------------ telling

    def say(self, text: str) -> None:
        self.narrator.say(text)

    def counters(self) -> str:
        c = self.traffic.counts()
        return (
            f"outbound {c['sent']}/{c['queued']} sent · inbound {c['received']} faxes received · "
            f"{c['failed_calls']} failed calls"
        )

    def run_for(self, seconds: float, what: str = "") -> None:
        """Let the traffic run for ``seconds`` × pace, printing the counters every few seconds."""
        if what:
            self.say(what)
        end = time.monotonic() + seconds * self.pace
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(PROGRESS_EVERY, left))
            self.say(f"  {self.counters()}")

    def check(self, what: str, held: bool, observed: str) -> None:
        """Record one expectation of the story and say whether it held."""
        self.checks.append(Check(what, held, observed))
        self.say(f"  check: {what}: {'yes' if held else 'NO'} ({observed})")

    def status(self) -> None:
        """Print what ``zetafailover status`` would show."""
        for n in self.world.view().nodes:
            beat = f"heartbeat {n.heartbeat_age_s:.2f} s ago" if n.heartbeat_age_s is not None else "no heartbeat seen"
            self.narrator.plain(f"           {n.name}: {n.role:<7} state={n.state:<10} term={n.term} {beat}")

    # --------------------------------------------------------------------------------------------- state

    def record(self) -> HeartbeatRecord:
        record = self.world.nodes.record()
        if record is None:
            raise RuntimeError("the shared folder holds no heartbeat record")
        return record

    @staticmethod
    def other(node: str) -> str:
        return next(n for n in NODES if n != node)

    def route(self) -> str:
        """The line the PBX routes the DID to now."""
        return ",".join(self.world.exchange.route_lines(DID)) or "-"

    def wait(self, pred: Callable[[], bool], what: str, limit: float | None = None) -> None:
        self.world.wait(pred, self.limit if limit is None else limit, what)

    # --------------------------------------------------------------------------------------------- steps

    def fault(self, what: str, victim: str, mono: float) -> Fault:
        fault = Fault(what, victim, mono)
        self.faults.append(fault)
        return fault

    def wait_takeover(self, fault: Fault, by: str, above_term: int) -> HeartbeatRecord:
        """Wait until ``by`` is ACTIVE above ``above_term``; narrate how long it took and what it did."""
        record = self.world.nodes.wait_active(self.limit, holder=by, above_term=above_term)
        became = self.world.nodes.became_active_at(by, record.term)
        took = f"{became - fault.mono:.2f} s" if became is not None else "?"
        self.say(f"{by} is ACTIVE in term {record.term}, {took} after the {fault.what}")
        events = self.world.nodes.events(by)
        fence = next((e for e in events if e.get("kind") == "fence" and e.get("term") == record.term), None)
        if fence is not None:
            confirmed = "confirmed" if fence.get("confirmed") else "not confirmed: waited for the self-fence deadline"
            self.say(f"  fence ({fence.get('method')}, {confirmed}): {str(fence.get('evidence', ''))[:140]}")
        recovered = [e for e in events if e.get("kind") == "spool_recovered" and e.get("term") == record.term]
        requeued = recovered[-1].get("requeued", []) if recovered else []
        self.say(
            f"  spool recovery re-queued {len(requeued)} interrupted fax(es) to resume at their first unconfirmed page"
        )
        failed = [e for e in events if e.get("kind") == "line_switch_failed" and e.get("term") == record.term]
        if failed:
            self.say(f"  ALARM line_switch_failed: {str(failed[-1].get('error', ''))[:160]}")
        else:
            self.say(f"  the PBX routes the DID {DID} to {self.route()}; the Y-split analog line needs no switching")
        return record

    def restart_as_standby(self, node: str) -> None:
        """Start ``node`` again (if it is not running) and wait until it publishes as a standby."""
        proc = self.world.nodes.procs.get(node)
        if proc is None or proc.poll() is not None:
            self.say(f"restarting {node}: it must come back as a standby (no automatic failback)")
            self.world.nemesis.restart(node)
        self.world.wait_standby(node, self.limit)
        self.say(f"{node} is up as a standby")

    def check_no_failback(self, holder: str, term: int) -> None:
        """Wait a few heartbeat timeouts and check that ``holder`` still holds ``term``."""
        time.sleep(2 * self.timing.timeout)
        record = self.record()
        still = record.holder == holder and record.term == term
        self.check(
            "no automatic failback",
            still,
            f"{record.holder} still active in term {record.term} {2 * self.timing.timeout:g} s after the old primary "
            "came back",
        )

    def switchover(self, to: str, why: str) -> HeartbeatRecord:
        """A planned switchover to ``to``, as ``zetafailover switchover --to TO`` does it; narrated and timed."""
        before = self.record()
        self.say(f"administrator: zetafailover switchover --to {to}  ({why})")
        action = self.world.nemesis.switchover(to=to, wait=self.limit)
        if not action.detail.get("ok"):
            raise RuntimeError(f"the switchover to {to} was refused: {action.detail.get('result')}")
        self.faults.append(Fault(f"switchover to {to}", before.holder, action.mono, planned=True, target=to))
        record = self.world.nodes.wait_active(self.limit, holder=to, above_term=before.term)
        became = self.world.nodes.became_active_at(to, record.term)
        took = f"{became - action.mono:.2f} s" if became is not None else "?"
        self.say(
            f"{to} is ACTIVE in term {record.term}, {took} after the request; the PBX routes the DID to {self.route()}"
        )
        return record
