"""Takeover time after SIGKILL of the active node, on real processes and the real clock.

    python benchmarks/takeover.py --profile lab --trials 20 --json
    python benchmarks/takeover.py --store etcd --profile fast --trials 20 --json

Two ``zetafailover run`` processes share a temporary folder (the default file store), or — with
``--store etcd`` — a throw-away 3-member etcd cluster on loopback started for the run (each node's store URL
lists all three members, starting with a different one; needs ``/usr/bin/etcd``). Each trial kills the
active with SIGKILL and measures, on the machine's monotonic clock (the same clock in every process on
Linux), the time from the kill to the standby's transition to ACTIVE — by then it has won the term, fenced
the old active and brought its devices on line.
The killed node is restarted as a standby before the next trial. Prints one JSON object.

The baseline in the same run is the floor every heartbeat design pays: ``timeout`` itself. ``overhead_p99_s``
is what our code adds above it (target: at most one heartbeat interval plus 100 ms); it can be negative, because
staleness counts from the last heartbeat the standby saw change, which precedes the kill by up to one interval.
``verdict_to_active_*`` is the time from the standby's DEAD verdict to ACTIVE: winning the term, fencing, devices,
lines and spool recovery — the part of a takeover that is our code and not the timeout.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from zetafailover.core.timing import PROFILES
from zetafailover.testing.processes import NodeProcesses

STORES = ("file", "etcd")


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run(profile: str, trials: int, store: str = "file") -> dict[str, Any]:
    timing = PROFILES[profile]
    samples: list[float] = []
    after_verdict: list[float] = []
    with tempfile.TemporaryDirectory(prefix="zf-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        nodes = _nodes(folder, profile, store, stack)
        try:
            nodes.start("fax1", 200)
            nodes.start("fax2", 100)
            record = nodes.wait_active(20 * timing.timeout + 30)
            for _ in range(trials):
                time.sleep(4 * timing.heartbeat_interval + 0.2)  # the standby has seen the active alive
                victim = record.holder
                survivor = "fax2" if victim == "fax1" else "fax1"
                killed = nodes.signal(victim, signal.SIGKILL)
                record = nodes.wait_active(5 * timing.timeout + 30, holder=survivor, above_term=record.term)
                became = None
                deadline = time.monotonic() + 5
                while became is None and time.monotonic() < deadline:
                    became = nodes.became_active_at(survivor, record.term)
                    time.sleep(0.01)
                if became is None:
                    raise RuntimeError(f"{survivor} logged no transition to active in term {record.term}")
                samples.append(became - killed)
                verdicts = [
                    float(e["mono"])
                    for e in nodes.events(survivor, "peer")
                    if e.get("liveness") == "dead" and killed <= float(e["mono"]) <= became
                ]
                if verdicts:
                    after_verdict.append(became - verdicts[-1])
                nodes.start(victim, 200 if victim == "fax1" else 100)
        finally:
            nodes.close()  # before the etcd cluster (the ExitStack) is torn down
    p99 = percentile(samples, 0.99)
    return {
        "benchmark": "takeover",
        "store": store,
        "profile": profile,
        "heartbeat_interval": timing.heartbeat_interval,
        "timeout": timing.timeout,
        "trials": trials,
        "p50_s": round(percentile(samples, 0.5), 4),
        "p99_s": round(p99, 4),
        "max_s": round(max(samples), 4),
        "min_s": round(min(samples), 4),
        "mean_s": round(statistics.fmean(samples), 4),
        "baseline_floor_s": timing.timeout,
        "overhead_p99_s": round(p99 - timing.timeout, 4),
        "overhead_target_s": round(timing.heartbeat_interval + 0.1, 4),
        "verdict_to_active_p50_s": round(percentile(after_verdict, 0.5), 4) if after_verdict else None,
        "verdict_to_active_p99_s": round(percentile(after_verdict, 0.99), 4) if after_verdict else None,
        "samples_s": [round(s, 4) for s in samples],
    }


def _nodes(folder: Path, profile: str, store: str, stack: ExitStack) -> NodeProcesses:
    """The node set for ``store``: a shared folder, or a 3-member etcd cluster (SIGKILLed by ``stack``)."""
    if store == "file":
        return NodeProcesses(folder, cluster="bench", profile=profile)
    from zetafailover.testing.etcd import EtcdCluster, EtcdNodeProcesses  # noqa: PLC0415

    cluster = stack.enter_context(EtcdCluster(folder / "etcd", size=3))
    return EtcdNodeProcesses(
        folder / "nodes", cluster, prefix="bench", cluster="bench", profile=profile, member_of={"fax1": 0, "fax2": 1}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--profile", default="lab", choices=sorted(PROFILES))
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument(
        "--store",
        default="file",
        choices=STORES,
        help="the heartbeat store (file: a shared folder; etcd: a throw-away 3-member etcd cluster)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    result = run(args.profile, args.trials, args.store)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
