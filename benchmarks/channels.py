"""Throughput of N simulated ISDN channels on one node, and line takeover time with every channel busy vs idle.

    python benchmarks/channels.py --channels 120 --json

*Pages per second*: one node's ISDN device (E1 spans) sends N/2 outbound jobs through the spool's dispatcher
while N/2 remote callers send to its DID, every channel busy at once; pages counted are those confirmed.
*Takeover*: node A's card carries N calls (or none) when it dies (its connection drops); node B then brings
its card on line, the PBX strategy re-routes the DID over the admin API, and a probe call is answered by B.
The time from A's death to B answering is measured busy and idle; the ratio is the figure of merit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from zetafailover.devices.isdn import IsdnCard, IsdnDevice, SpanType, split_document
from zetafailover.lines.pbx import PbxLineSwitch, WebhookTransport
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.dispatcher import Dispatcher
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.testing.exchange import ExchangeServer, RemoteFaxMachine

DID = "5550100"
REMOTE = "5550199"


def _plan(spans: int, channels: int) -> dict[str, Any]:
    lines: list[dict[str, Any]] = [{"name": f"{n}-e1-{i}", "kind": "e1"} for n in ("a", "b") for i in range(spans)]
    lines += [
        {"name": "remote", "kind": "trunk", "channels": channels, "number": REMOTE},
        {"name": "callers", "kind": "trunk", "channels": channels, "number": "5550123"},
    ]
    return {"lines": lines, "routes": [{"number": DID, "lines": [f"a-e1-{i}" for i in range(spans)]}]}


def _device(xs: ExchangeServer, node: str, spans: int, **kw: Any) -> IsdnDevice:
    card = IsdnCard("card", [(SpanType.E1, f"{node}-e1-{i}") for i in range(spans)], xs.addresses.endpoints, label=node)
    return IsdnDevice("isdn0", node, card, **kw)


def throughput(channels: int, folder: Path) -> dict[str, float]:
    spans = max(1, channels // 30)
    with ExchangeServer(_plan(spans, channels)) as xs:
        spool = DirectorySpool(folder / "spool", node="a")
        spool.advance_term(1)
        device = _device(xs, "a", spans)
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


def takeover(channels: int, busy: bool) -> float:
    spans = max(1, channels // 30)
    with ExchangeServer(_plan(spans, channels)) as xs:
        a, b = _device(xs, "a", spans), _device(xs, "b", spans)
        a.open(None)
        b.open(None)
        a.start(1)
        callers = RemoteFaxMachine(xs.addresses.endpoints, "callers")
        legs = []
        if busy:
            for _ in range(channels - 1):
                leg = callers.endpoint.dial(DID)
                leg.wait_for("connected", 30)
                legs.append(leg)
        url = f"{xs.addresses.admin}/routes/{DID}"
        b_lines = [f"b-e1-{i}" for i in range(spans)]
        switch = PbxLineSwitch(WebhookTransport(url, method="PUT", body={"lines": b_lines, "term": "{term}"}))
        t0 = time.monotonic()
        a.card.close()  # node A dies: its connection drops, every call on it is cleared
        b.start(2)
        switch.take("b", 2)
        probe = RemoteFaxMachine(xs.addresses.endpoints, "remote")
        result = probe.send(DID, [b"probe"])
        took = time.monotonic() - t0
        if not (result.ok and result.answered_by == "b"):
            raise RuntimeError(f"the probe call did not reach node b: {result}")
        probe.close()
        callers.close()
        b.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tp = throughput(args.channels, Path(tmp))
    idle = min(takeover(args.channels, busy=False) for _ in range(args.runs))
    busy = min(takeover(args.channels, busy=True) for _ in range(args.runs))
    result = {
        "channels": args.channels,
        "throughput": tp,
        "takeover_idle_s": round(idle, 4),
        "takeover_busy_s": round(busy, 4),
        "ratio": round(busy / idle, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
