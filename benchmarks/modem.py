"""Benchmark: a 3-page fax through two real software modems (iaxmodem, V.17 14,400 bit/s) sent by our Class 1
driver, against efax sending the same pages over a fresh pair in the same run; and the AT command round trip
(``AT`` → ``OK``) against our simulated modem.

    python benchmarks/modem.py --json
    python benchmarks/modem.py --runs 2 --at-count 2000 --json

Each fax goes from modem A to ``efax -r`` on modem B (the same receiver for both senders), each over a newly
started iaxmodem pair. Our time is ``ModemDevice.open`` (initialisation) + ``send`` (dial to hang-up);
efax's is its process from start to exit (it initialises, dials, sends, hangs up). Pages per minute =
pages / time; the ratio is ours / efax's (target ≥ 1.0). efax sends 20 more rows per page (its header
band), which costs it ≈ 0.02 s a page at 14,400 bit/s. The first call of each kind is not discarded: every
run is a cold start, as a fax server's calls are.

Needs root, ``iaxmodem`` and ``efax`` (``apt-get install iaxmodem efax``); without them only the AT latency
is measured and ``fax`` says why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import serial

from zetafailover.devices.modem import ModemDevice, Timeouts
from zetafailover.devices.modem.at import AtChannel
from zetafailover.interfaces import OutboundFax
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import ExchangeServer
from zetafailover.testing.iaxmodem import (
    EfaxReceiver,
    IaxmodemPair,
    efax_missing_reason,
    efax_send,
    fax_page_rows,
    iaxmodem_missing_reason,
)
from zetafailover.testing.modem import SimulatedModem

PAGES = [
    ["zetafailover modem benchmark", "page one of three", "0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ"],
    ["page two of three", "the quick brown fox jumps over the lazy dog", "!@#$%^&*()_+-=[]{};:,./<>?"],
    ["page three of three", "last page", "EOP follows"],
]
REAL = Timeouts(command=5, dial=60, answer=60, page=60, page_start=60)
HEADER_ROWS = 20


def make_pages(folder: Path) -> tuple[Path, list[Path]]:
    """The 3-page document (one TIFF-F) for our driver, and the same pages one file each for efax."""
    document = folder / "doc.tif"
    document.write_bytes(text_document(None, PAGES))
    singles = []
    for i, text in enumerate(PAGES):
        path = folder / f"page.{i + 1:03d}"
        path.write_bytes(text_document(None, [text]))
        singles.append(path)
    return document, singles


def _check_received(rx: EfaxReceiver, singles: list[Path], header: int) -> bool:
    """Every page arrived and matches what was sent (after ``header`` rows of efax's band)."""
    files = rx.pages()
    if len(files) != len(singles):
        return False
    for got, sent in zip(files, singles, strict=True):
        rows, want = fax_page_rows(got), read_page_rows(sent)
        if rows[header : header + len(want)] != want:
            return False
    return True


def ours(work: Path, document: Path, singles: list[Path]) -> dict[str, Any]:
    """Our Class 1 driver on A → efax -r on B, over a fresh pair."""
    with IaxmodemPair() as pair, EfaxReceiver(pair.b, work / "rx", log=work / "rx.log") as rx:
        device = ModemDevice("a", "bench", pair.a, modem_class="1", timeouts=REAL, local_id="+1 555 0001")
        t0 = time.monotonic()
        device.open(None)
        device.start(1)
        t1 = time.monotonic()
        confirmed: list[int] = []
        try:
            out = device.send(OutboundFax("bench", "5550002", (str(document),), page_count=3), confirmed.append)
        finally:
            t2 = time.monotonic()
            device.close()
        rc = rx.wait(60)
        exact = _check_received(rx, singles, 0)
    return {
        "ok": out.ok and rc == 0 and confirmed == [0, 1, 2],
        "pixel_exact": exact,
        "seconds": round(t2 - t0, 2),
        "init_seconds": round(t1 - t0, 3),
        "call_seconds": round(t2 - t1, 2),
        "reason": out.reason,
    }


def efax(work: Path, singles: list[Path]) -> dict[str, Any]:
    """efax on A → efax -r on B, over a fresh pair."""
    with IaxmodemPair() as pair, EfaxReceiver(pair.b, work / "rx", log=work / "rx.log") as rx:
        t0 = time.monotonic()
        code = efax_send(pair.a, singles, "5550002", log=work / "tx.log")
        t1 = time.monotonic()
        rc = rx.wait(60)
        exact = _check_received(rx, singles, HEADER_ROWS)
        trainings = (work / "tx.log").read_text(errors="replace").count("sent DCS")
    return {"ok": code == 0 and rc == 0, "pixel_exact": exact, "seconds": round(t1 - t0, 2), "trainings": trainings}


def at_latency(count: int) -> dict[str, Any]:
    """``AT`` → ``OK`` round trips through our AT layer against a simulated modem's pty (milliseconds)."""
    plan = {"lines": [{"name": "line-a", "kind": "analog", "number": "5550001"}]}
    with ExchangeServer(plan) as xs:
        modem = SimulatedModem(xs.addresses.endpoints, "line-a", label="A")
        try:
            with serial.Serial(modem.path, 19200, timeout=0.2) as port:
                at = AtChannel(port)
                for _ in range(20):  # warm up
                    at.expect_ok("AT", 5.0)
                samples = []
                for _ in range(count):
                    t0 = time.perf_counter()
                    at.expect_ok("AT", 5.0)
                    samples.append((time.perf_counter() - t0) * 1000)
        finally:
            modem.close()
    samples.sort()
    return {
        "count": count,
        "median_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "max_ms": round(samples[-1], 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="faxes per sender (default 1; each ≈ 40 s)")
    ap.add_argument("--at-count", type=int, default=1000, help="AT round trips to time (default 1000)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "modem",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "pages": len(PAGES),
    }
    missing = iaxmodem_missing_reason() or efax_missing_reason()
    if missing:
        result["fax"] = {"skipped": missing}
    else:
        with tempfile.TemporaryDirectory(prefix="zf-modem-bench-") as tmp:
            base = Path(tmp)
            document, singles = make_pages(base)
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "efax": []}
            for i in range(args.runs):
                for who in ("ours", "efax"):
                    work = base / f"{who}-{i}"
                    work.mkdir()
                    one = ours(work, document, singles) if who == "ours" else efax(work, singles)
                    runs[who].append(one)
        ok = all(r["ok"] and r["pixel_exact"] for rs in runs.values() for r in rs)
        ours_s = statistics.median(r["seconds"] for r in runs["ours"])
        efax_s = statistics.median(r["seconds"] for r in runs["efax"])
        ours_ppm, efax_ppm = len(PAGES) * 60 / ours_s, len(PAGES) * 60 / efax_s
        result.update(
            all_ok=ok,
            ours_seconds=round(ours_s, 2),
            efax_seconds=round(efax_s, 2),
            ours_pages_per_minute=round(ours_ppm, 2),
            efax_pages_per_minute=round(efax_ppm, 2),
            ratio=round(ours_ppm / efax_ppm, 3),
            target_ratio=1.0,
            meets_target=ours_ppm >= efax_ppm,
            fax={"runs": runs},
        )
    at = at_latency(args.at_count)
    result.update(at_median_ms=at["median_ms"], at_p99_ms=at["p99_ms"], at=at)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
