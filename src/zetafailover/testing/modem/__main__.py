"""``python -m zetafailover.testing.modem --exchange HOST:PORT --modem LABEL=LINE=LINK[=CLASSES] ...``

Starts simulated fax modems, prints ``{"ready": {label: device path}}`` on one line, and serves until SIGTERM,
SIGINT or end of stdin.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from zetafailover.testing.modem.sim import ModemProfile, SimulatedModem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zetafailover.testing.modem")
    parser.add_argument("--exchange", required=True, help="the exchange's endpoint address host:port")
    parser.add_argument("--modem", action="append", default=[], help="LABEL=LINE=LINK[=CLASSES]")
    parser.add_argument("--transcript", type=Path, default=None)
    parser.add_argument("--page-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    modems: list[SimulatedModem] = []
    for spec in args.modem:
        parts = spec.split("=")
        if len(parts) not in (3, 4):
            parser.error(f"--modem {spec!r}: expected LABEL=LINE=LINK[=CLASSES]")
        classes = tuple(parts[3].split(",")) if len(parts) == 4 else ModemProfile().classes
        modems.append(
            SimulatedModem(
                args.exchange,
                parts[1],
                label=parts[0],
                link=Path(parts[2]),
                profile=ModemProfile(classes=classes),
                page_timeout=args.page_timeout,
                transcript=args.transcript,
            )
        )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def watch_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"ready": {m.label: m.path for m in modems}}), flush=True)
    done.wait()
    for modem in modems:
        modem.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
