"""The demo's stories (``zetafailover demo --scenario NAME``): what fails, and what must happen then.

Each story starts from the same world (:mod:`zetafailover.demo.world`) with fax traffic flowing both ways on
the primary, ``fax1``; breaks something; shows the back-up taking over; brings the old primary back as a
standby (no automatic failback); and hands the work back with a planned switchover, as an administrator
would before maintenance on the back-up. The report and the audits follow (:mod:`zetafailover.demo.report`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from zetafailover.demo.story import Story
from zetafailover.demo.world import ANALOG_NUMBER, DID, REMOTE_NUMBER

__all__ = ["PLAYS", "play_kill", "play_pause", "play_pbx_failure", "play_share_outage"]


def _steady(s: Story, first: str) -> None:
    s.run_for(
        6.0,
        f"{first} is active: outbound faxes go from the shared spool to the remote machine ({REMOTE_NUMBER}), "
        f"callers fax the PRI number {DID} and the analog line {ANALOG_NUMBER}",
    )
    s.status()


def _back_to(s: Story, first: str, second: str, term: int) -> None:
    """The common ending: the old primary runs as a standby, no failback, then a switchover back to it."""
    s.restart_as_standby(first)
    s.check_no_failback(second, term)
    s.status()
    s.run_for(3.0, f"{second} carries the traffic; {first} watches its heartbeat")
    s.switchover(first, f"planned maintenance on {second}")
    s.run_for(4.0, f"{first} carries the traffic again; {second} is the standby")
    route = s.route()
    s.check("the PBX routes the DID to the active node's PRI", route == f"pri-{first}", f"{DID} → {route}")


def play_kill(s: Story, first: str) -> None:
    """SIGKILL of the primary mid-traffic, takeover, restart as standby, switchover back."""
    _steady(s, first)
    second = s.other(first)
    before = s.record()
    pid = s.world.nodes.procs[first].pid
    s.say(f"SIGKILL {first} (pid {pid}): the primary crashes with faxes in flight both ways")
    action = s.world.nemesis.kill(first)
    fault = s.fault(f"SIGKILL of {first}", first, action.mono)
    record = s.wait_takeover(fault, second, before.term)
    s.run_for(5.0, f"{second} carries the traffic alone")
    _back_to(s, first, second, record.term)


def play_pause(s: Story, first: str) -> None:
    """SIGSTOP of the primary longer than the timeout; it wakes up fenced and stands down by itself."""
    _steady(s, first)
    second = s.other(first)
    before = s.record()
    pid = s.world.nodes.procs[first].pid
    s.say(
        f"SIGSTOP {first} (pid {pid}): the server freezes, as a hung VM does. This story's terminator is 'none' "
        f"(a frozen host cannot be reached), so {second} must wait out {first}'s self-fence deadline"
    )
    action = s.world.nemesis.pause(first)
    fault = s.fault(f"SIGSTOP of {first}", first, action.mono)
    record = s.wait_takeover(fault, second, before.term)
    hold = action.mono + s.timing.timeout + 3.0 - time.monotonic()
    if hold > 0:
        s.run_for(hold / s.pace, f"{first} stays frozen a little longer; {second} carries the traffic")
    frozen = time.monotonic() - action.mono
    s.say(
        f"SIGCONT {first} after {frozen:.1f} s frozen: it wakes up still believing it is active in term {before.term}"
    )
    resumed = s.world.nemesis.resume(first)

    def woke() -> list[dict[str, object]]:
        return [
            e
            for e in s.world.nodes.events(first)
            if e.get("kind") in ("self_fenced", "stood_down") and float(e.get("mono", 0.0)) >= resumed.mono
        ]

    s.wait(lambda: bool(woke()), f"{first} to notice it was fenced")
    event = woke()[0]
    after = float(str(event["mono"])) - resumed.mono
    s.say(f"  {first}: {event['kind']} {after:.2f} s after SIGCONT: {event.get('reason', '')}")
    proc = s.world.nodes.procs[first]
    s.world.wait_standby(first, s.limit)
    s.check(
        f"{first} found itself fenced and came back as a standby by itself",
        proc.poll() is None and proc.pid == pid,
        f"same process (pid {pid}) {'running' if proc.poll() is None else 'exited'}, {event['kind']}",
    )
    _back_to(s, first, second, record.term)


def play_share_outage(s: Story, first: str) -> None:
    """The shared folder becomes unreadable for the primary only: it fences itself, the back-up takes over."""
    _steady(s, first)
    second = s.other(first)
    before = s.record()
    s.say(
        f"the shared folder becomes unreadable for {first} (the fault plugin's faulty+file store: every heartbeat "
        f"operation of {first} fails with 'permission denied'); {second} still reads it"
    )
    action = s.world.nemesis.store_fault("unreadable", node=first)[0]
    fault = s.fault(f"share outage for {first}", first, action.mono)
    record = s.wait_takeover(fault, second, before.term)
    fenced = [
        e
        for e in s.world.nodes.events(first)
        if e.get("kind") == "self_fenced" and float(e.get("mono", 0.0)) >= action.mono
    ]
    won = [e for e in s.world.nodes.events(second) if e.get("kind") == "term_won" and e.get("term") == record.term]
    if fenced and won:
        gap = float(won[0]["mono"]) - float(fenced[0]["mono"])
        s.check(
            f"{first} took itself off line before {second} won term {record.term}",
            gap > 0,
            f"self-fenced {float(fenced[0]['mono']) - action.mono:.2f} s after the outage began, "
            f"{gap:.2f} s before the new term was won",
        )
    else:
        s.check(f"{first} took itself off line before {second} won term {record.term}", False, "no self_fenced event")
    s.run_for(4.0, f"{second} carries the traffic; the share is still broken for {first}")
    s.say(f"the share is repaired for {first}")
    s.world.nemesis.heal_store(first)
    _back_to(s, first, second, record.term)


def play_pbx_failure(s: Story, first: str) -> None:
    """The PBX refuses the re-route; the takeover happens anyway, an alarm is raised, inbound waits for the fix."""
    _steady(s, first)
    second = s.other(first)
    before = s.record()
    s.say("the PBX fails: its admin API answers HTTP 503 to every request (an exchange admin fault)")
    s.world.exchange_server.faults.add(status=503, count=1_000_000, scope="admin")
    s.say(f"SIGKILL {first} (pid {s.world.nodes.procs[first].pid}): the primary crashes while the PBX is down")
    action = s.world.nemesis.kill(first)
    fault = s.fault(f"SIGKILL of {first}", first, action.mono)
    record = s.wait_takeover(fault, second, before.term)
    alarms = [
        e
        for e in s.world.nodes.events(second)
        if e.get("kind") == "line_switch_failed" and e.get("term") == record.term
    ]
    s.check(
        "an alarm says the PBX did not re-route", bool(alarms), f"{len(alarms)} line_switch_failed event(s) on {second}"
    )
    start = time.monotonic()
    s.run_for(6.0, f"the PBX still routes {DID} to the dead {first}'s PRI: those calls fail; {second} keeps retrying")
    s.say("the PBX is repaired (admin faults cleared)")
    s.world.exchange_server.faults.clear()
    healed = time.monotonic()
    s.wait(lambda: s.route() == f"pri-{second}", f"the PBX re-routed to {second}")
    status = [r for r in s.world.pbx_status(second) if r.get("ok") and r.get("term") == record.term]
    attempts = [r for r in s.world.pbx_status(second) if r.get("term") == record.term]
    s.say(
        f"  {second}'s retry re-routed {DID} to {s.route()} {time.monotonic() - healed:.2f} s after the repair "
        f"(attempt {status[0]['attempt'] if status else '?'}; {len(attempts) - len(status)} failed attempts before)"
    )
    calls = s.world.exchange.calls_log()
    during = [c for c in calls if c.get("called") == DID and start <= float(c.get("started", 0.0)) <= healed]
    answered = [c for c in during if c.get("answered_label")]
    s.check(
        f"calls to {DID} failed while the PBX was down",
        bool(during) and not answered,
        f"{len(during)} call(s), {len(answered)} answered",
    )
    analog = [
        c
        for c in calls
        if c.get("called") == ANALOG_NUMBER
        and start <= float(c.get("started", 0.0)) <= healed
        and c.get("answered_label")
    ]
    pages_out = [
        p
        for p in s.world.exchange.pages()
        if p.get("called") == REMOTE_NUMBER
        and p.get("from_label") == second
        and start <= float(p.get("at", 0.0)) <= healed
    ]
    s.check(
        "outbound faxes went on while the PBX was down",
        bool(pages_out),
        f"{len(pages_out)} page(s) sent by {second}; the analog line answered {len(analog)} call(s) meanwhile",
    )
    _back_to(s, first, second, record.term)


PLAYS: dict[str, Callable[[Story, str], None]] = {
    "kill": play_kill,
    "pause": play_pause,
    "share-outage": play_share_outage,
    "pbx-failure": play_pbx_failure,
}
"""The story of every scenario of :data:`zetafailover.demo.catalog.SCENARIOS`, by name."""
