"""``zetafailover demo``: the failover story with two real node processes on one shared folder.

It starts two ``zetafailover run`` processes (loopback devices, the ``pid`` terminator) in a temporary
folder, queues a few faxes on the shared spool, shows which node is active and sending, kills the active with
SIGKILL in the middle of the transmissions, shows the other taking over, resuming the interrupted faxes at
their first unconfirmed page and sending them all, restarts the killed server (it comes back as a standby: no
automatic failback), switches back by hand as an administrator would for maintenance, and prints a summary.
It finishes by itself in well under a minute.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from zetafailover.admin import observe_cluster, request_switchover
from zetafailover.clock import SystemClock
from zetafailover.core.timing import PROFILES
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import JobState
from zetafailover.spool.render import text_document
from zetafailover.testing.processes import NodeProcesses

__all__ = ["run_demo"]


class _Narrator:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.2f} s] {text}", flush=True)


def _pages_sent(nodes: NodeProcesses, name: str) -> int:
    return sum(1 for e in nodes.device_log(name) if e["event"] == "page")


def _show_status(nodes: NodeProcesses, profile: str) -> None:
    timing = PROFILES[profile]
    view = observe_cluster(nodes.store, nodes.cluster, timing, SystemClock(), 2.5 * timing.heartbeat_interval)
    for n in view.nodes:
        beat = f"heartbeat {n.heartbeat_age_s:.2f} s ago" if n.heartbeat_age_s is not None else "no heartbeat"
        print(f"           {n.name}: {n.role:<7} state={n.state:<9} term={n.term} {beat}", flush=True)


FAXES, PAGES = 6, 4


def _queue_faxes(folder: Path) -> tuple[DirectorySpool, list[str]]:
    spool = DirectorySpool(folder / "shared" / "spool", node="demo-admin")
    document = folder / "letter.tif"
    text_document(document, [["zetafailover demo", f"page {i + 1} of {PAGES}"] for i in range(PAGES)])
    return spool, [spool.submit(document, f"555 01{i:02d}") for i in range(FAXES)]


def _count(spool: DirectorySpool, ids: list[str], state: JobState) -> int:
    return sum(1 for job_id in ids if spool.get(job_id).state == state)


def run_demo(keep: bool = False, profile: str = "lab") -> int:
    """Run the demo; returns the exit code. ``keep`` leaves the temporary folder for inspection."""
    if profile not in PROFILES:
        print(f"zetafailover: error: unknown profile {profile!r}; known: {', '.join(PROFILES)}", file=sys.stderr)
        return 2
    t = PROFILES[profile]
    folder = Path(tempfile.mkdtemp(prefix="zetafailover-demo-"))
    nodes = NodeProcesses(folder, cluster="demo", profile=profile, device_options={"page_seconds": 0.15})
    out = _Narrator()
    print(
        f"zetafailover demo in {folder}\nprofile {profile}: heartbeat every {t.heartbeat_interval:g} s, "
        f"takeover after {t.timeout:g} s without one\n",
        flush=True,
    )
    ok = False
    try:
        for name, priority in (("fax1", 200), ("fax2", 100)):
            proc = nodes.start(name, priority)
            out.say(f"started {name} (priority {priority}, pid {proc.pid})")
        first = nodes.wait_active(10 * t.timeout + 20)
        out.say(f"{first.holder} is active in term {first.term}; the other one watches its heartbeat")
        spool, ids = _queue_faxes(folder)
        out.say(f"queued {FAXES} faxes of {PAGES} pages each on the shared spool; {first.holder} starts sending")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _pages_sent(nodes, first.holder) < 3:
            time.sleep(0.02)
        _show_status(nodes, profile)

        other = "fax2" if first.holder == "fax1" else "fax1"
        out.say(f"SIGKILL {first.holder} (pid {nodes.procs[first.holder].pid}): the primary crashes")
        killed_at = nodes.signal(first.holder, signal.SIGKILL)
        second = nodes.wait_active(5 * t.timeout + 10, holder=other, above_term=first.term)
        active_at = nodes.became_active_at(other, second.term) or time.monotonic()
        takeover = active_at - killed_at
        fence = nodes.events(other, "fence")[-1]
        out.say(
            f"{other} took over in term {second.term}, {takeover:.2f} s after the kill; fenced by "
            f"{fence['method']}: {fence['evidence']}"
        )
        recovered = nodes.events(other, "spool_recovered")
        requeued = recovered[-1]["requeued"] if recovered else []
        out.say(f"{other} re-queued {len(requeued)} interrupted fax(es) to resume at their first unconfirmed page")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _count(spool, ids, JobState.SENT) < FAXES:
            time.sleep(0.1)
        sent = _count(spool, ids, JobState.SENT)
        pages = Counter(
            (e["job"], e["page"]) for name in ("fax1", "fax2") for e in nodes.device_log(name) if e["event"] == "page"
        )
        twice = sum(1 for n in pages.values() if n > 1)
        out.say(
            f"faxes sent: {sent} of {FAXES}, none lost; pages sent twice: {twice}"
            if sent == FAXES
            else f"faxes sent: {sent} of {FAXES}"
        )

        out.say(f"restarting {first.holder}: it must come back as a standby (no automatic failback)")
        nodes.start(first.holder, 200)
        time.sleep(4 * t.heartbeat_interval + 1.0)
        record = nodes.record()
        still = record is not None and record.holder == other and record.term == second.term
        out.say(f"{other} is still active in term {second.term}: {'yes' if still else 'NO'}")
        _show_status(nodes, profile)

        out.say(f"administrator: zetafailover switchover --to {first.holder}  (planned maintenance on {other})")
        switch_at = time.monotonic()
        done = request_switchover(nodes.store, "demo", t, SystemClock(), target=first.holder, wait=30 + t.timeout)
        switchover = time.monotonic() - switch_at
        final = nodes.record()
        assert final is not None
        out.say(f"switchover {done.id}: {final.holder} is active in term {final.term} after {switchover:.2f} s")
        _show_status(nodes, profile)
        ok = still and final.holder == first.holder and sent == FAXES
        print(
            "\nsummary\n"
            f"  automatic takeover after SIGKILL: {takeover:.2f} s ({first.holder} → {other}, term {first.term} → "
            f"{second.term})\n"
            f"  faxes:                            {FAXES} queued, {sent} sent, {FAXES - sent} lost, "
            f"{len(requeued)} resumed after the takeover, {twice} page(s) sent twice\n"
            f"  failback after restart:           {'none (correct)' if still else 'HAPPENED (wrong)'}\n"
            f"  manual switchover back:           {switchover:.2f} s ({other} → {final.holder}, term {final.term})\n"
            f"  result:                           {'OK' if ok else 'FAILED'}",
            flush=True,
        )
    except Exception as exc:
        print(f"zetafailover demo: error: {exc}", file=sys.stderr)
    finally:
        nodes.close()
        if keep or not ok:
            print(f"(files kept in {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1
