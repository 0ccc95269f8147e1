"""Throughput of N simulated ISDN channels on one node, and node takeover time with every channel busy vs idle.

    python benchmarks/channels.py --channels 120 --json

*Pages per second*: one node's ISDN device (E1 spans) sends N/2 outbound jobs through the spool's dispatcher
while N/2 remote callers send to its DID (``peak``: the most calls up on the card at once); pages counted are
those confirmed.

*Takeover*: two real ``zetafailover run`` processes, each with an ISDN card of N/30 E1 spans, attached to one
simulated exchange running in its own process (the PBX). The ``pbx`` line strategy re-routes the DID to the new
active's spans through the exchange's admin API (an HTTP webhook with read-back). The active is SIGKILLed
either *idle* (no call up) or *busy* (N calls up on its card: N/2 inbound faxes from remote callers on a trunk
and N/2 outbound jobs from the shared spool, every one of them moving a page every ``--page-seconds``). Two end
points are timed from the SIGKILL, on the machine's monotonic clock (the same clock in every process):

* ``active`` — the survivor's transition to ACTIVE in its event log (term won, old active fenced, card on
  line, DID re-routed and read back, spool recovered and the in-flight jobs re-queued);
* ``probe`` — the first call to the DID that the survivor answers (CONNECT) and whose page it stores (MCF):
  a probe machine on its own trunk dials the DID every 20 ms from the moment of the kill.

Idle and busy runs alternate on one pair of nodes (the killed node is restarted as the standby) after one
discarded warm-up takeover, so drifting load on the machine hits both alike; each kill comes right after a
heartbeat write of the active, so its phase in the heartbeat cycle is the same in every run. Node timing:
``lab`` (0.1 s / 1 s) by default, ``--profile bench`` (0.25 s / 2.5 s) for a machine too loaded for it.
Prints min/median/max of each case and end point, and the ratio busy/idle of the medians (the issue's target:
at most 1.1). ``verdict_to_active`` (the survivor's DEAD verdict → ACTIVE) is reported too: the part of the
takeover that is our code rather than the heartbeat timeout; ``samples`` holds every run with its phases.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from zetafailover.core.timing import PROFILES
from zetafailover.devices.isdn import IsdnCard, IsdnDevice, SpanType, split_document
from zetafailover.interfaces import HeartbeatRecord
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.dispatcher import Dispatcher
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.testing.exchange import (
    CallCleared,
    CallLeg,
    ExchangeProcess,
    ExchangeServer,
    ExchangeUnavailable,
    RemoteFaxMachine,
)
from zetafailover.testing.processes import NodeProcesses

DID = "5550100"
REMOTE = "5550199"
CALLERS = "5550123"
PROBE = "5550177"
TOKEN = "bench-t0ken"  # noqa: S105 - the bearer token of the benchmark's own throw-away exchange
TARGET_RATIO = 1.1
TIMING = {"heartbeat_interval": 0.25, "timeout": 2.5, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}
"""``--profile bench``: the ``fast`` profile with the timing of the PRI failover tests (0.25 s / 2.5 s), for a
machine too loaded for ``lab``. The default is ``lab`` (0.1 s / 1 s): the shorter the timeout, the larger the
share of the takeover that the busy state can change, so the ratio busy/idle says more."""
NODES = (("fax1", 200), ("fax2", 100))


# ------------------------------------------------------------------------------------------ throughput


def _plan(spans: int, channels: int) -> dict[str, Any]:
    lines: list[dict[str, Any]] = [{"name": f"a-e1-{i}", "kind": "e1"} for i in range(spans)]
    lines += [
        {"name": "remote", "kind": "trunk", "channels": channels, "number": REMOTE},
        {"name": "callers", "kind": "trunk", "channels": channels, "number": CALLERS},
    ]
    return {"lines": lines, "routes": [{"number": DID, "lines": [f"a-e1-{i}" for i in range(spans)]}]}


def throughput(channels: int, folder: Path) -> dict[str, float]:
    """Pages per second through one node's card with every channel busy (in-process device and spool)."""
    spans = _spans(channels)
    with ExchangeServer(_plan(spans, channels)) as xs:
        spool = DirectorySpool(folder / "spool", node="a")
        spool.advance_term(1)
        card = IsdnCard("card", [(SpanType.E1, f"a-e1-{i}") for i in range(spans)], xs.addresses.endpoints, label="a")
        device = IsdnDevice("isdn0", "a", card)
        device.open(spool)
        device.start(1)
        remote = RemoteFaxMachine(xs.addresses.endpoints, "remote")
        callers = RemoteFaxMachine(xs.addresses.endpoints, "callers")
        doc = folder / "doc.tif"
        text_document(doc, [[f"page {i + 1}"] for i in range(4)])
        pages = split_document(doc.read_bytes())
        half = channels // 2
        jobs = [spool.submit(doc, REMOTE, SubmitOptions(retry_delay_s=0.2, max_attempts=10)) for _ in range(half)]
        dispatcher = Dispatcher(spool, [device], "a", device._clock, poll_s=0.05)
        t0 = time.monotonic()
        senders = [threading.Thread(target=callers.send, args=(DID, pages)) for _ in range(channels - half)]
        for t in senders:
            t.start()
        dispatcher.start(1)
        for t in senders:
            t.join()
        while not all(spool.get(j).state == "sent" for j in jobs):
            time.sleep(0.02)
        took = time.monotonic() - t0
        dispatcher.stop()
        confirmed = len(xs.exchange.pages())
        peak = sum(e["peak_calls"] for e in xs.exchange.snapshot()["endpoints"] if e["label"] == "a")
        device.close()
        remote.close()
        callers.close()
    return {"pages": confirmed, "seconds": round(took, 3), "pages_per_s": round(confirmed / took, 1), "peak": peak}


# ------------------------------------------------------------------------------- node-level takeover


def _spans(channels: int) -> int:
    return max(1, math.ceil(channels / 30))


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _section(title: str, **keys: Any) -> str:
    return f"\n[{title}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())


class _Nodes(NodeProcesses):
    """Node processes whose only device and line strategy are the config text given per node (no loopback)."""

    def __init__(self, folder: Path, extras: dict[str, str], **kw: Any) -> None:
        super().__init__(folder, devices=0, **kw)
        self.extras = extras
        self.started_at: dict[str, float] = {}

    def start(self, name: str, priority: int, extra: str | None = None) -> subprocess.Popen[bytes]:
        self.started_at[name] = time.monotonic()
        return super().start(name, priority, self.extras[name] if extra is None else extra)


class _Admin:
    """The exchange's admin API (the oracle): lines, endpoints and live calls."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the exchange's loopback http URL
            f"{self.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http
            return json.loads(response.read())

    def route(self) -> list[str]:
        return list(self.get(f"/routes/{DID}")["effective"])

    def attached(self, label: str) -> int:
        return sum(1 for e in self.get("/state")["endpoints"] if e["label"] == label)

    def flowing(self, label: str) -> tuple[int, int]:
        """(calls up on ``label``'s card, of which have carried a page)."""
        state = self.get("/state")
        eps = {e["id"] for e in state["endpoints"] if e["label"] == label}
        mine = [c for c in state["calls"] if c["state"] == "active" and (c["caller"] in eps or c["answered_by"] in eps)]
        return len(mine), sum(1 for c in mine if c["pages"] >= 1)


def _wait(pred: Callable[[], bool], limit: float, what: str, nodes: NodeProcesses) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {limit:g} s waiting for {what}\n{nodes.logs()}")


class _BusyLoad:
    """Fill the active's card: inbound faxes from the callers trunk and outbound jobs, pages every ``pace`` s."""

    def __init__(self, xs: ExchangeProcess, spool: DirectorySpool, doc: Path, page: bytes, pace: float) -> None:
        self.xs = xs
        self.spool = spool
        self.doc = doc
        self.page = page
        self.pace = pace
        self.stop = threading.Event()
        self.callers = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
        self.remote = RemoteFaxMachine(xs.addresses.endpoints, "remote", label="remote")
        self.jobs: list[str] = []
        self.threads: list[threading.Thread] = []
        self.answered_by: set[str] = set()

    def start(self, inbound: int, outbound: int) -> None:
        options = SubmitOptions(retry_delay_s=0.5, max_attempts=10)
        self.jobs = [self.spool.submit(self.doc, REMOTE, options) for _ in range(outbound)]
        self.threads = [threading.Thread(target=self._caller, daemon=True) for _ in range(inbound)]
        for t in self.threads:
            t.start()

    def _caller(self) -> None:
        """One remote fax machine sending a long fax: a page every ``pace`` s until the call is cleared."""
        try:
            leg = self.callers.endpoint.dial(DID)
            event = leg.wait_for("connected", 30)
            self.answered_by.add(str(event.get("by", "")))
            index = 0
            while not self.stop.is_set():
                leg.send_page(index, self.page, last=False)
                leg.wait_for("confirmed", 30, index=index)
                index += 1
                if self.stop.wait(self.pace):
                    break
            leg.hangup()
        except (CallCleared, ExchangeUnavailable):
            return  # the node died under the call: the exchange cleared it

    def finish(self) -> None:
        """Cancel the jobs (the survivor resumed them) and clear every call still up."""
        self.stop.set()
        for job in self.jobs:
            if self.spool.get(job).state not in ("sent", "failed", "cancelled"):
                self.spool.cancel(job, "benchmark run over")
        self.remote.close()  # clears the survivor's resumed transmissions
        self.callers.close()
        for t in self.threads:
            t.join(10)


def _probe(machine: RemoteFaxMachine, page: bytes, survivor: str, limit: float) -> tuple[float, float, int]:
    """Dial the DID every 20 ms until ``survivor`` answers and stores a page: (answered, stored, attempts)."""
    deadline = time.monotonic() + limit
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            leg: CallLeg = machine.endpoint.dial(DID)
            event = leg.wait_for("connected", 10)
            answered = time.monotonic()
            if event.get("by") != survivor:
                leg.hangup()
                raise RuntimeError(f"the probe call was answered by {event.get('by')!r}, not {survivor}")
            leg.send_page(0, page, last=True)
            leg.wait_for("confirmed", 10, index=0)
            stored = time.monotonic()
            leg.hangup()
            return answered, stored, attempts
        except CallCleared:
            time.sleep(0.02)  # no circuit / refused: the DID does not reach a node that answers yet
    raise TimeoutError(f"no probe call answered by {survivor} within {limit:g} s")


def _node_extra(name: str, xs: ExchangeProcess, spans: int, page_seconds: float) -> str:
    url = f"{xs.addresses.admin}/routes/{DID}"
    device = _section(
        "[device]",
        driver="isdn",
        name="pri0",
        exchange=xs.addresses.endpoints,
        card="e1",
        lines=[f"{name}-e1-{i}" for i in range(spans)],
        page_seconds=page_seconds,
    )
    line = _section(
        "line",
        strategy="pbx",
        transport="webhook",
        url=url,
        method="PUT",
        token=TOKEN,
        body={"lines": [f"{{target}}-{i}" for i in range(spans)], "term": "{term}", "set_by": "{node}"},
        verify_url=url,
        state="shared/lines.json",
        targets={n: f"{n}-e1" for n, _ in NODES},
        retry_interval=0.2,
        timeout=1.0,
    )
    return device + line


def _routed_to(admin: _Admin, lines: list[str]) -> bool:
    return admin.route() == lines


def _standby_ready(admin: _Admin, nodes: _Nodes, name: str, holder: str, spans: int) -> bool:
    """``name``'s card is attached and its last verdict on ``holder`` (since it started) is ALIVE."""
    peers = [e for e in nodes.events(name, "peer") if float(e["mono"]) >= nodes.started_at[name]]
    alive = bool(peers) and peers[-1].get("liveness") == "alive" and peers[-1].get("holder") == holder
    return alive and admin.attached(name) == spans


def _all_busy(admin: _Admin, name: str, channels: int) -> bool:
    """Every channel of ``name``'s card has a call up, and every one of those calls has carried a page."""
    return admin.flowing(name) == (channels, channels)


def _kill_after_beat(nodes: _Nodes, name: str, limit: float) -> float:
    """SIGKILL ``name`` right after its next heartbeat write: the kill's phase in the heartbeat cycle is then
    the same in every run (it is otherwise a source of up to one interval of jitter). Returns the kill time."""
    before = nodes.record()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        now = nodes.record()
        if now is not None and before is not None and (now.term, now.seq) != (before.term, before.seq):
            break
        time.sleep(0.002)
    return nodes.signal(name, signal.SIGKILL)


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "min_s": round(min(samples), 4),
        "median_s": round(statistics.median(samples), 4),
        "max_s": round(max(samples), 4),
    }


def takeover(channels: int, runs: int, page_seconds: float, profile: str, folder: Path) -> dict[str, Any]:
    """Alternate idle and busy SIGKILLs of the active node; time the survivor's ACTIVE and first answered call."""
    spans = _spans(channels)
    timing = dict(TIMING) if profile == "bench" else {}
    base = "fast" if profile == "bench" else profile
    heartbeat = timing.get("heartbeat_interval", PROFILES[base].heartbeat_interval)
    timeout = timing.get("timeout", PROFILES[base].timeout)
    lines: list[dict[str, Any]] = [{"name": f"{n}-e1-{i}", "kind": "e1"} for n, _ in NODES for i in range(spans)]
    lines += [
        {"name": "remote", "kind": "trunk", "channels": channels, "number": REMOTE},
        {"name": "callers", "kind": "trunk", "channels": channels, "number": CALLERS},
        {"name": "probe", "kind": "trunk", "channels": 4, "number": PROBE},
    ]
    plan: dict[str, Any] = {
        "lines": lines,
        "routes": [{"number": DID, "lines": [f"fax1-e1-{i}" for i in range(spans)]}],
        "token": TOKEN,
    }
    (folder / "shared").mkdir()
    doc = folder / "long.tif"  # long enough to outlast a busy run: about a minute of pages
    text_document(doc, [[f"outbound page {i + 1}"] for i in range(min(600, math.ceil(60 / page_seconds)))])
    page = split_document(text_document(None, [["inbound page"]]))[0]
    samples: list[dict[str, Any]] = []
    with ExitStack() as stack:
        xs = ExchangeProcess(plan, folder)
        stack.callback(xs.stop)
        admin = _Admin(xs.addresses.admin)
        probe = RemoteFaxMachine(xs.addresses.endpoints, "probe", label="probe")
        stack.callback(probe.close)
        extras = {name: _node_extra(name, xs, spans, page_seconds) for name, _ in NODES}
        nodes = _Nodes(folder, extras, cluster="channels", profile=base, timing=timing)
        stack.callback(nodes.close)
        spool = DirectorySpool(folder / "shared" / "spool", node="bench")
        for name, priority in NODES:
            nodes.start(name, priority)
        record: HeartbeatRecord = nodes.wait_active(60)
        for case in ["warm-up", *(["idle", "busy"] * runs)]:
            busy = case == "busy"
            victim = record.holder
            survivor = next(n for n, _ in NODES if n != victim)
            victim_lines = [f"{victim}-e1-{k}" for k in range(spans)]
            _wait(partial(_routed_to, admin, victim_lines), 30, f"the DID routed to {victim}", nodes)
            _wait(partial(_standby_ready, admin, nodes, survivor, victim, spans), 60, f"{survivor} on standby", nodes)
            load: _BusyLoad | None = None
            calls_up = 0
            if busy:
                load = _BusyLoad(xs, spool, doc, page, page_seconds)
                load.start(channels // 2, channels - channels // 2)
                _wait(partial(_all_busy, admin, victim, channels), 60, f"{channels} calls up on {victim}", nodes)
            time.sleep(4 * heartbeat + 0.2)  # the standby keeps seeing the (busy) active alive
            current = nodes.record()
            if current is None or (current.holder, current.term) != (victim, record.term):
                raise RuntimeError(
                    f"the active changed before the kill (a spurious takeover: the standby missed the busy "
                    f"active's heartbeats): {current}; the machine is too loaded for this timing, try --profile bench"
                )
            if busy:
                calls_up = admin.flowing(victim)[0]
            killed = _kill_after_beat(nodes, victim, 2 * timeout)
            answered, stored, attempts = _probe(probe, page, survivor, 10 * timeout + 30)
            record = nodes.wait_active(10 * timeout + 30, holder=survivor, above_term=record.term)
            became: float | None = None
            deadline = time.monotonic() + 5
            while became is None and time.monotonic() < deadline:
                became = nodes.became_active_at(survivor, record.term)
                time.sleep(0.01)
            if became is None:
                raise RuntimeError(f"{survivor} logged no transition to active in term {record.term}")
            verdicts = [
                float(e["mono"])
                for e in nodes.events(survivor, "peer")
                if e.get("liveness") == "dead" and killed <= float(e["mono"]) <= became
            ]
            transition = next(
                e
                for e in nodes.events(survivor, "transition")
                if e.get("to_state") == "active" and e.get("term") == record.term
            )
            recovered = [e for e in nodes.events(survivor, "spool_recovered") if e.get("term") == record.term]
            samples.append(
                {
                    "case": case,
                    "calls_up": calls_up,
                    "active_s": round(became - killed, 4),
                    "probe_answered_s": round(answered - killed, 4),
                    "probe_stored_s": round(stored - killed, 4),
                    "verdict_to_active_s": round(became - verdicts[-1], 4) if verdicts else None,
                    "phases_s": {k: round(float(v), 4) for k, v in transition.get("phases", {}).items()},
                    "requeued": len(recovered[0].get("requeued", [])) if recovered else 0,
                    "probe_attempts": attempts,
                }
            )
            if load is not None:
                load.finish()
            nodes.start(victim, dict(NODES)[victim])  # back as the standby
    return _report(samples, spans=spans, profile=base, heartbeat=heartbeat, timeout=timeout, page_seconds=page_seconds)


def _report(
    samples: list[dict[str, Any]],
    *,
    spans: int,
    profile: str,
    heartbeat: float,
    timeout: float,
    page_seconds: float,
) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    for case in ("idle", "busy"):
        mine = [s for s in samples if s["case"] == case]
        cases[case] = {
            "runs": len(mine),
            "active": _summary([s["active_s"] for s in mine]),
            "probe_answered": _summary([s["probe_answered_s"] for s in mine]),
            "probe_stored": _summary([s["probe_stored_s"] for s in mine]),
            "verdict_to_active": _summary([s["verdict_to_active_s"] for s in mine if s["verdict_to_active_s"]]),
        }
    ratios = {
        key: round(cases["busy"][key]["median_s"] / cases["idle"][key]["median_s"], 3)
        for key in ("active", "probe_answered", "probe_stored", "verdict_to_active")
    }
    return {
        "nodes": 2,
        "spans_per_node": spans,
        "profile": profile,
        "heartbeat_interval": heartbeat,
        "timeout": timeout,
        "page_seconds": page_seconds,
        **cases,
        "ratio_busy_idle": ratios,
        "target_ratio": TARGET_RATIO,
        "meets_target": {key: value <= TARGET_RATIO for key, value in ratios.items()},
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--channels", type=int, default=120, help="channels per node (30 per E1 span)")
    parser.add_argument("--runs", type=int, default=8, help="takeovers per case (idle and busy alternate)")
    parser.add_argument(
        "--page-seconds", type=float, default=1.0, help="time a page takes on each busy call (both directions)"
    )
    parser.add_argument(
        "--profile",
        default="lab",
        choices=["bench", *sorted(PROFILES)],
        help="node timing: a named profile (default lab: 0.1 s / 1 s), or bench = fast with 0.25 s / 2.5 s",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.channels < 2 or args.runs < 1 or args.page_seconds <= 0:
        parser.error("--channels must be at least 2, --runs at least 1 and --page-seconds above 0")
    result: dict[str, Any] = {"channels": args.channels}
    with tempfile.TemporaryDirectory(prefix="zf-channels-") as tmp:
        if not args.skip_throughput:
            (Path(tmp) / "tp").mkdir()
            result["throughput"] = throughput(args.channels, Path(tmp) / "tp")
        (Path(tmp) / "nodes").mkdir()
        result["takeover"] = takeover(args.channels, args.runs, args.page_seconds, args.profile, Path(tmp) / "nodes")
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
