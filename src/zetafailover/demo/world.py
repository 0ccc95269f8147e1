"""The demo's simulated world: an exchange with a PBX, two fax servers with different hardware, and fax traffic.

::

   callers (trunk 5550123) ──┐                       ┌── PRI E1 "pri-fax1" ── isdn card pri0 ─┐
   remote machine (5550199) ─┤  exchange + PBX       │                                        ├─ fax1 (node process)
                             ├── DID 5550200 ────────┤   (routed by the pbx strategy)         │
                             │                       └── PRI E1 "pri-fax2" ── isdn card pri0 ─┼─ fax2 (node process)
                             └── analog 5550100 ── Y ─┬── simulated modem "fax1" (Class 2.0) ─┘
                                                      └── simulated modem "fax2" (Class 2.0)

Everything runs on this machine with nothing but the package: the exchange in this process (threads), the
two simulated modems in a process of their own (hardware outlives the program driving it), each node a real
``zetafailover run`` process (:class:`~zetafailover.testing.nemesis.FaultableNodes`, so the nemesis can fail
the shared folder for one node). :class:`Traffic` is the steady load both ways: outbound faxes submitted to
the shared spool at a fixed rate, inbound faxes from the exchange's simulated callers (they redial a fax
until it was delivered, as a fax machine does).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zetafailover.admin import ClusterView, observe_cluster
from zetafailover.clock import SystemClock
from zetafailover.core.timing import Timing, timing_from_profile
from zetafailover.devices.isdn import split_document
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.testing.exchange import ExchangeServer, RemoteFaxMachine, SendResult
from zetafailover.testing.modem import ModemProcess, ModemSpec
from zetafailover.testing.nemesis import FaultableNodes, Nemesis

__all__ = [
    "ANALOG_NUMBER",
    "DEMO_TIMING",
    "DID",
    "NODES",
    "REMOTE_NUMBER",
    "DemoWorld",
    "Traffic",
    "TrafficRates",
]

DID = "5550200"
"""The PRI direct-dial number; the PBX routes it to the active node's E1 span."""
ANALOG_NUMBER = "5550100"
"""The analog line both modems hang on (a Y-splitter)."""
REMOTE_NUMBER = "5550199"
"""The remote fax machine the outbound faxes go to."""
CALLERS_NUMBER = "5550123"
NODES: dict[str, int] = {"fax1": 200, "fax2": 100}
"""The two servers and their priorities: fax1 is the primary."""
TOKEN = "demo-admin-token"  # noqa: S105 - the simulated PBX's admin token, on loopback only

DEMO_TIMING: dict[str, float] = {
    "heartbeat_interval": 0.25,
    "timeout": 2.5,
    "store_timeout": 0.5,
    "margin": 0.5,
    "fence_timeout": 1.0,
    "hook_timeout": 1.0,
    "drain_timeout": 5.0,
}
"""The demo's timing (profile ``fast`` with these overrides): a heartbeat every 0.25 s, takeover after 2.5 s of
silence. Slower than ``lab`` on purpose: two nodes, two modems, an exchange and the callers share two cores."""

PAGE_SECONDS = 0.25
"""Simulated transmission time of one page on the ISDN cards (so that pages are in flight at a kill)."""

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrafficRates:
    """How much fax traffic the demo makes."""

    outbound_every: float = 0.8
    """Seconds between two outbound faxes submitted to the spool."""
    outbound_pages: int = 3
    pri_callers: int = 2
    """Callers dialling the PRI DID, each one fax after the other."""
    analog_callers: int = 1
    """Callers dialling the analog line."""
    inbound_pages: int = 2
    caller_pause: float = 0.5
    """Seconds a caller waits between two calls (also before redialling a failed fax)."""


@dataclass(slots=True)
class InboundFax:
    """One fax a simulated caller wants delivered, with every call it took."""

    number: str
    pages: tuple[bytes, ...]
    calls: list[SendResult] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(r.ok for r in self.calls)


class Traffic:
    """Steady fax traffic both ways, on threads of this process, until :meth:`stop`.

    Timing: :meth:`start` returns at once; :meth:`stop` asks every thread to finish and waits for the callers
    to end their current call (a caller still redialling an undelivered fax gets ``finish`` seconds more).
    Atomicity: each outbound fax is accepted by ``spool.submit`` (durable when it returns) and recorded here
    with the SHA-256 of each of its pages, so the report can find every page in the exchange's page log.
    """

    def __init__(self, world: DemoWorld, rates: TrafficRates) -> None:
        self.world, self.rates = world, rates
        self.spool = DirectorySpool(world.folder / "shared" / "spool", node="demo-submitter")
        self.options = SubmitOptions(retry_delay_s=0.5, backoff=1.0, max_delay_s=1.0, max_attempts=100)
        self.outbound: dict[str, tuple[str, ...]] = {}
        """Job id → SHA-256 of each page, in order."""
        self.inbound: list[InboundFax] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finish_by = float("inf")
        self._threads: list[threading.Thread] = []
        self._serial = 0

    def start(self) -> None:
        self._threads.append(threading.Thread(target=self._feed, name="demo-outbound", daemon=True))
        for k in range(self.rates.pri_callers):
            self._threads.append(
                threading.Thread(target=self._call, args=(DID, f"pri{k}"), name=f"demo-caller-{k}", daemon=True)
            )
        for k in range(self.rates.analog_callers):
            self._threads.append(
                threading.Thread(
                    target=self._call, args=(ANALOG_NUMBER, f"an{k}"), name=f"demo-analog-{k}", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self, finish: float = 20.0) -> None:
        self._finish_by = time.monotonic() + finish
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=finish + 40.0)

    def _next(self) -> int:
        with self._lock:
            self._serial += 1
            return self._serial

    def _feed(self) -> None:
        folder = self.world.folder / "documents"
        folder.mkdir(exist_ok=True)
        while not self._stop.is_set():
            n = self._next()
            document = folder / f"out-{n:04d}.tif"
            pages = [
                [f"outbound fax {n}", f"page {i + 1} of {self.rates.outbound_pages}"]
                for i in range(self.rates.outbound_pages)
            ]
            try:
                data = text_document(document, pages)
                digests = tuple(hashlib.sha256(p).hexdigest() for p in split_document(data))
                job = self.spool.submit(document, REMOTE_NUMBER, self.options)
            except Exception as exc:  # a refused submit is a finding for the report, not a crash of the demo
                self.errors.append(f"submit: {type(exc).__name__}: {exc}")
            else:
                with self._lock:
                    self.outbound[job] = digests
            self._stop.wait(self.rates.outbound_every)

    def _call(self, number: str, tag: str) -> None:
        machine = self.world.caller()
        try:
            while not self._stop.is_set():
                n = self._next()
                pages = [[f"inbound fax {n} from {tag}", f"page {i + 1}"] for i in range(self.rates.inbound_pages)]
                fax = InboundFax(number, tuple(split_document(text_document(None, pages))))
                with self._lock:
                    self.inbound.append(fax)
                while True:
                    result = machine.send(number, fax.pages, answer_timeout=15, page_timeout=15)
                    with self._lock:
                        fax.calls.append(result)
                    if result.ok or time.monotonic() > self._finish_by:
                        break
                    time.sleep(self.rates.caller_pause)  # redial, as a fax machine does
                if self._stop.wait(self.rates.caller_pause):
                    break
        except Exception as exc:
            self.errors.append(f"caller {tag}: {type(exc).__name__}: {exc}")
        finally:
            machine.close()

    # ---------------------------------------------------------------------------------------------- counts

    def counts(self) -> dict[str, int]:
        """Live counters for the progress lines: outbound queued/sent, inbound delivered/calls failed."""
        with self._lock:
            jobs = list(self.outbound)
            inbound = list(self.inbound)
        sent = 0
        for job in jobs:
            with contextlib.suppress(Exception):  # a job being written right now: counted at the next look
                sent += self.spool.get(job).state == "sent"
        calls = [r for fax in inbound for r in list(fax.calls)]
        return {
            "queued": len(jobs),
            "sent": sent,
            "received": sum(1 for fax in inbound if fax.delivered),
            "failed_calls": sum(1 for r in calls if not r.ok),
        }

    def all_sent_or_failed(self) -> bool:
        with self._lock:
            jobs = list(self.outbound)
        return all(self.spool.get(job).terminal for job in jobs)


class DemoWorld:
    """The exchange, the modems, the two node processes and the nemesis, in ``folder``.

    Timing: :meth:`start` blocks until the exchange listens, the modems are ready and a node is ACTIVE with the
    DID routed to it (normally 3–8 s; bounded by ``limit``). :meth:`close` stops everything (about 2–5 s).
    """

    def __init__(
        self, folder: Path, *, profile: str = "fast", timing: dict[str, float] | None = None, terminator: str = "pid"
    ) -> None:
        self.folder = folder
        self.profile = profile
        self.timing_overrides = dict(timing or {})
        self.timing: Timing = timing_from_profile(profile, dict(self.timing_overrides))
        self.terminator = terminator
        (folder / "shared").mkdir(parents=True, exist_ok=True)
        self.plan: dict[str, Any] = {
            "lines": [
                {"name": "analog-0100", "kind": "analog", "number": ANALOG_NUMBER},
                {"name": "pri-fax1", "kind": "e1"},
                {"name": "pri-fax2", "kind": "e1"},
                {"name": "remote", "kind": "trunk", "channels": 30, "number": REMOTE_NUMBER},
                {"name": "callers", "kind": "trunk", "channels": 30, "number": CALLERS_NUMBER},
            ],
            "routes": [{"number": DID, "lines": ["pri-fax1"]}],
            "token": TOKEN,
            "ring_interval": 1.0,
            "answer_timeout": 10,
        }
        self.exchange_server = ExchangeServer(self.plan)
        self.modems: ModemProcess | None = None
        self.remote: RemoteFaxMachine | None = None
        self.nodes = FaultableNodes(
            folder, cluster="demo", profile=profile, timing=self.timing_overrides, terminator=terminator, devices=0
        )
        self.nemesis = Nemesis(self.nodes)
        self._machines: list[RemoteFaxMachine] = []
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------------------------------- start

    def start(self, limit: float = 60.0) -> str:
        """Start the exchange, the modems and both nodes together; returns the name of the active node."""
        xs = self.exchange_server.start()
        self.remote = RemoteFaxMachine(xs.addresses.endpoints, "remote", label="remote")
        self.modems = ModemProcess(
            xs.addresses.endpoints,
            [ModemSpec(name, "analog-0100", self.folder / f"tty-{name}", classes="2,2.0") for name in NODES],
        ).start()
        for name, priority in NODES.items():
            self.nemesis.start(name, priority, self.node_extra(name))
        record = self.nodes.wait_active(limit)
        self.wait(lambda: self.exchange.route_lines(DID) == (f"pri-{record.holder}",), 20, "the DID routed")
        return record.holder

    @property
    def exchange(self) -> Any:
        """The exchange model (call, page, hook and route logs)."""
        return self.exchange_server.exchange

    def node_extra(self, name: str) -> str:
        """The config text of ``name``'s hardware: a Class 2.0 modem on the Y-split line, an E1 card, the PBX."""
        assert self.modems is not None
        xs = self.exchange_server.addresses
        modem = {
            "driver": "modem",
            "name": "modem0",
            "port": self.modems.paths[name],
            "class": "2.0",
            "local_id": f"+1 555 0100 {name}",
            "rings": 1,
            "command_timeout": 5,
            "dial_timeout": 20,
            "page_timeout": 30,
            "log": f"{name}-modem.jsonl",
        }
        card = {
            "driver": "isdn",
            "name": "pri0",
            "exchange": xs.endpoints,
            "card": "e1",
            "lines": [f"pri-{name}"],
            "page_seconds": PAGE_SECONDS,
            "answer_timeout": 10,
            "page_timeout": 15,
            "log": f"{name}-pri.jsonl",
        }
        url = f"{xs.admin}/routes/{DID}"
        line = {
            "strategy": "pbx",
            "transport": "webhook",
            "url": url,
            "method": "PUT",
            "token": TOKEN,
            "body": {"lines": ["{target}"], "term": "{term}", "set_by": "{node}"},
            "verify_url": url,
            "targets": {n: f"pri-{n}" for n in NODES},
            "state": "shared/lines.json",
            "status": f"{name}-pbx-status.jsonl",
            "timeout": 1.0,
            "retry_interval": 0.5,
            "retries": 200,
        }
        return "".join(
            [
                "\n[[device]]\n" + _toml_keys(modem),
                "\n[[device]]\n" + _toml_keys(card),
                "\n[line]\n" + _toml_keys(line),
            ]
        )

    def caller(self) -> RemoteFaxMachine:
        """A new simulated caller on the callers' trunk (closed with the world)."""
        machine = RemoteFaxMachine(self.exchange_server.addresses.endpoints, "callers", label="caller")
        with self._lock:
            self._machines.append(machine)
        return machine

    # ----------------------------------------------------------------------------------------- queries

    def view(self, window: float | None = None) -> ClusterView:
        """What ``zetafailover status`` would show now (blocks for ``window`` seconds of observation)."""
        w = window if window is not None else 3 * self.timing.heartbeat_interval
        return observe_cluster(self.nodes.store, "demo", self.timing, SystemClock(), w)

    def wait(self, pred: Callable[[], bool], limit: float, what: str) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {limit:g} s waiting for {what}")

    def wait_standby(self, name: str, limit: float = 30.0) -> None:
        """Wait until ``name`` is running and publishing as a healthy standby."""

        def ok() -> bool:
            view = self.view()
            return any(n.name == name and n.alive and n.role == "standby" for n in view.nodes)

        self.wait(ok, limit, f"{name} running as a standby")

    def device_logs(self) -> dict[str, list[dict[str, Any]]]:
        """Each node's device-log entries (modem and card merged, in time order)."""
        logs: dict[str, list[dict[str, Any]]] = {}
        for name in NODES:
            entries: list[dict[str, Any]] = []
            for suffix in ("modem", "pri"):
                path = self.folder / f"{name}-{suffix}.jsonl"
                if path.exists():
                    entries += [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
            logs[name] = sorted(entries, key=lambda e: float(e.get("mono", 0.0)))
        return logs

    def pbx_status(self, name: str) -> list[dict[str, Any]]:
        """The pbx strategy's JSON lines of node ``name`` (every re-route attempt)."""
        path = self.folder / f"{name}-pbx-status.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]

    # ------------------------------------------------------------------------------------------- close

    def close(self) -> None:
        """Heal every fault, stop the nodes, the modems, the machines and the exchange. Idempotent; the logs of
        the exchange (in memory) and of the nodes (files) stay readable afterwards."""
        if self._closed:
            return
        self._closed = True
        try:
            self.nemesis.heal()
            self.exchange_server.faults.clear()
        finally:
            self.nodes.close()
            if self.modems is not None:
                self.modems.stop()
            for machine in [*self._machines, *([self.remote] if self.remote else [])]:
                machine.close()
            self.exchange_server.stop()


def _toml_keys(keys: dict[str, Any]) -> str:
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in keys.items())


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)
