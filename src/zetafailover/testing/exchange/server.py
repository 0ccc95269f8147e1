"""Run the exchange: in-process (:class:`ExchangeServer`) or as its own process (:class:`ExchangeProcess`).

Both serve the same three interfaces on loopback: the endpoint port (devices and remote fax machines attach),
the admin HTTP API and the AMI port. A *plan* (a JSON-able mapping) sets up lines and routes at start::

    {"lines": [{"name": "pri-fax1", "kind": "e1"}, {"name": "remote", "kind": "trunk", "channels": 60,
               "number": "5550199"}],
     "routes": [{"number": "5550100", "lines": ["pri-fax1"]}],
     "ami_users": {"zetafailover": "s3cret"}, "token": "admin-token",
     "answer_timeout": 20, "ring_interval": 6}
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zetafailover.testing.exchange.admin import AdminServer, PbxFaults
from zetafailover.testing.exchange.ami import AmiServer
from zetafailover.testing.exchange.endpoints import EndpointServer
from zetafailover.testing.exchange.model import Exchange

__all__ = ["ExchangeAddresses", "ExchangeProcess", "ExchangeServer", "apply_plan"]


@dataclass(frozen=True, slots=True)
class ExchangeAddresses:
    """Where a running exchange listens."""

    endpoints: str
    """``host:port`` of the endpoint protocol (the ``exchange`` option of an ``isdn`` device)."""
    admin: str
    """``http://host:port`` of the admin API."""
    ami: str
    """``host:port`` of the AMI interface."""

    def to_json(self) -> dict[str, str]:
        return {"endpoints": self.endpoints, "admin": self.admin, "ami": self.ami}


def apply_plan(exchange: Exchange, plan: Mapping[str, Any]) -> None:
    """Create the plan's lines and routes on ``exchange`` (ExchangeError for a bad entry)."""
    for line in plan.get("lines", []):
        exchange.add_line(
            str(line["name"]),
            str(line.get("kind", "analog")),
            channels=int(line.get("channels", 0)),
            number=str(line.get("number", "")),
        )
    for route in plan.get("routes", []):
        exchange.set_route(
            str(route["number"]), [str(x) for x in route.get("lines", [])], db_key=str(route.get("db_key", ""))
        )
    for key, value in dict(plan.get("db", {})).items():
        exchange.db_put(str(key), str(value))


class ExchangeServer:
    """The exchange and its three servers, in this process (threads). Use as a context manager.

    Timing: :meth:`start` returns once all three listen; :meth:`stop` returns within about a second, after
    closing every connection (attached endpoints are detached, their calls cleared).
    """

    def __init__(
        self,
        plan: Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        endpoint_port: int = 0,
        admin_port: int = 0,
        ami_port: int = 0,
    ) -> None:
        plan = dict(plan or {})
        self.exchange = Exchange(
            answer_timeout=float(plan.get("answer_timeout", 20.0)),
            ring_interval=float(plan.get("ring_interval", 6.0)),
        )
        apply_plan(self.exchange, plan)
        self.faults = PbxFaults()
        self.endpoint_server = EndpointServer(self.exchange, host, endpoint_port)
        self.admin_server = AdminServer(self.exchange, self.faults, host, admin_port, token=str(plan.get("token", "")))
        self.ami_server = AmiServer(self.exchange, dict(plan.get("ami_users", {})), self.faults, host, ami_port)
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick, name="exchange-timer", daemon=True)

    @property
    def addresses(self) -> ExchangeAddresses:
        return ExchangeAddresses(self.endpoint_server.address, self.admin_server.url, self.ami_server.address)

    def start(self) -> ExchangeServer:
        self.endpoint_server.start()
        self.admin_server.start()
        self.ami_server.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for server in (self.endpoint_server, self.admin_server, self.ami_server):
            with contextlib.suppress(OSError):
                server.stop()

    def __enter__(self) -> ExchangeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        while not self._stop.wait(0.05):
            self.exchange.tick()


class ExchangeProcess:
    """``python -m zetafailover.testing.exchange`` in its own process, with its addresses read from its output.

    Timing: the constructor returns once the process printed its addresses (at most ``timeout`` seconds);
    :meth:`stop` sends SIGTERM and waits (SIGKILL after 10 s).
    """

    def __init__(self, plan: Mapping[str, Any], folder: Path, *, timeout: float = 30.0) -> None:
        plan_path = folder / "exchange-plan.json"
        plan_path.write_text(json.dumps(dict(plan)), encoding="utf-8")
        self.log_path = folder / "exchange.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zetafailover.testing.exchange", "--plan", str(plan_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        assert self.proc.stdout is not None
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline().decode()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].strip():
            self.stop()
            raise RuntimeError(f"the exchange process did not start: {self.log_path.read_text(errors='replace')}")
        info = json.loads(ready[0])
        self.addresses = ExchangeAddresses(info["endpoints"], info["admin"], info["ami"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
