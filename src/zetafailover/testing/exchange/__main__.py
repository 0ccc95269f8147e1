"""``python -m zetafailover.testing.exchange``: run the simulated exchange as its own process.

Prints one JSON line with its addresses (``{"endpoints": "127.0.0.1:PORT", "admin": "http://…", "ami": "…"}``)
and serves until SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from zetafailover.testing.exchange.server import ExchangeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zetafailover.testing.exchange", description=__doc__)
    parser.add_argument("--plan", help="JSON file with lines, routes, ami_users, token (see server.py)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=0, help="endpoint port (default: any free port)")
    parser.add_argument("--admin-port", type=int, default=0, help="admin HTTP port (default: any free port)")
    parser.add_argument("--ami-port", type=int, default=0, help="AMI port (default: any free port)")
    args = parser.parse_args(argv)
    plan: dict[str, Any] = {}
    if args.plan:
        try:
            plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"exchange: cannot read the plan {args.plan}: {exc}", file=sys.stderr)
            return 2
    server = ExchangeServer(
        plan, host=args.host, endpoint_port=args.port, admin_port=args.admin_port, ami_port=args.ami_port
    ).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(json.dumps(server.addresses.to_json()), flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
