"""The worlds a chaos run happens in, and the load it carries: the outbound feeder and, in the exchange world,
the simulated exchange with each node's ISDN card and the inbound caller.

Used by the runner in :mod:`zetafailover.testing.chaos`; see its docstring for what each world is.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zetafailover.devices.isdn import split_document
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.testing.exchange import ExchangeServer, RemoteFaxMachine, SendResult

__all__ = [
    "CALLERS",
    "CALL_TIMEOUT",
    "CARD",
    "DID",
    "INBOUND_PAGES",
    "PAGE_SECONDS",
    "REMOTE",
    "WORLDS",
]

WORLDS: tuple[str, ...] = ("exchange", "loopback")
"""``--world``: nodes with ISDN cards behind a simulated exchange (inbound and outbound load), or loopback
devices (outbound load only)."""

PAGE_SECONDS = 0.1
"""Seconds a loopback device takes per page."""

DID = "5550100"
"""The fax number the caller dials in the exchange world (routed by the ``pbx`` line strategy)."""

REMOTE = "5550199"
"""The remote fax machine every outbound job is sent to (in the loopback world the number is only stored)."""

CALLERS = "5550123"
"""The trunk the inbound caller dials from."""

CARD = "t1"
"""The ISDN span type of every node's card in the exchange world: a T1 PRI, 23 B-channels."""

CALL_TIMEOUT = 5.0
"""Seconds the caller waits for an answer and for each page's confirmation (the exchange rings as long)."""

INBOUND_PAGES = 2
"""Pages of every inbound fax."""


# ------------------------------------------------------------------------------------------------- feeder


class _Feeder:
    """Submits one two-page fax every ``interval`` seconds on its own thread; keeps every id it was given."""

    def __init__(self, spool: DirectorySpool, document: Path, interval: float, number: str = REMOTE) -> None:
        self.spool, self.document, self.interval, self.number = spool, document, interval, number
        self.ids: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-feeder", daemon=True)
        self.options = SubmitOptions(retry_delay_s=0.3, backoff=1.0, max_delay_s=1.0, max_attempts=100)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.ids.append(self.spool.submit(self.document, self.number, self.options))
            except Exception as exc:  # a refused submit is a finding, not a crash of the run
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


# ------------------------------------------------------------------------------------------ exchange world


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def _section(title: str, keys: dict[str, Any]) -> str:
    return f"\n[{title}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())


class _ExchangeWorld:
    """The exchange world of one run: the exchange, the remote fax machine, and each node's card and line TOML.

    Timing: the constructor starts the exchange (threads in this process, listening on loopback) and attaches
    the remote machine; :meth:`close` stops both within about a second. The ``pbx`` strategy's webhook
    (``PUT /routes/DID`` carrying the term, then a read-back ``GET``) is a compare-and-set on the route's term
    at the exchange, so an old active can never route the number back to itself.
    """

    TOKEN = "chaos-admin-token"  # noqa: S105 - the throw-away exchange's admin token, not a secret

    def __init__(self, nodes: Sequence[str]) -> None:
        lines: list[dict[str, Any]] = [{"name": f"pri-{n}", "kind": CARD} for n in nodes]
        lines += [
            {"name": "remote", "kind": "trunk", "channels": 60, "number": REMOTE},
            {"name": "callers", "kind": "trunk", "channels": 60, "number": CALLERS},
        ]
        plan = {
            "lines": lines,
            "routes": [{"number": DID, "lines": [f"pri-{nodes[0]}"]}],
            "token": self.TOKEN,
            "answer_timeout": CALL_TIMEOUT,
        }
        self.server = ExchangeServer(plan).start()
        try:
            self.remote = RemoteFaxMachine(self.server.addresses.endpoints, "remote", label="remote")
        except BaseException:
            self.server.stop()
            raise
        url = f"{self.server.addresses.admin}/routes/{DID}"
        self.line = _section(
            "line",
            {
                "strategy": "pbx",
                "transport": "webhook",
                "url": url,
                "method": "PUT",
                "token": self.TOKEN,
                "body": {"lines": ["{target}"], "term": "{term}", "set_by": "{node}"},
                "verify_url": url,
                "state": "shared/lines.json",
                "targets": {n: f"pri-{n}" for n in nodes},
                "retry_interval": 0.2,
                "timeout": 1.0,
            },
        )

    def node_extra(self, name: str) -> str:
        """The node's ``[[device]]`` (a T1 card on ``pri-NAME``, logging to ``NAME-device.jsonl``) and ``[line]``."""
        device = {
            "driver": "isdn",
            "name": "pri0",
            "exchange": self.server.addresses.endpoints,
            "card": CARD,
            "lines": [f"pri-{name}"],
            "page_seconds": PAGE_SECONDS,
            "answer_timeout": CALL_TIMEOUT,
            "page_timeout": CALL_TIMEOUT,
            "log": f"{name}-device.jsonl",
        }
        return _section("[device]", device) + self.line

    def close(self) -> None:
        self.remote.close()
        self.server.stop()


class _Callers:
    """Dials :data:`DID` every ``interval`` seconds from the ``callers`` trunk, each call on its own thread.

    Every call sends :data:`INBOUND_PAGES` pages rendered for that call alone (so the inbound audit can match
    each confirmed page to exactly one stored page). Timing: a call takes at most ``CALL_TIMEOUT`` to be
    answered plus ``CALL_TIMEOUT`` a page; :meth:`stop` waits for the calls still up (bounded).
    """

    def __init__(self, address: str, interval: float) -> None:
        self.machine = RemoteFaxMachine(address, "callers", label="caller")
        self.interval = interval
        self.placed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._calls: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._loop, name="chaos-callers", daemon=True)

    @property
    def results(self) -> list[SendResult]:
        """How every finished call ended, as the caller saw it."""
        return list(self.machine.sent)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.placed += 1
            number = self.placed
            pages = [
                split_document(text_document(None, [[f"chaos inbound call {number}", f"page {i + 1}"]], fine=False))[0]
                for i in range(INBOUND_PAGES)
            ]
            call = threading.Thread(target=self._call, args=(pages,), name=f"chaos-call-{number}", daemon=True)
            with self._lock:
                self._calls.append(call)
            call.start()
            self._stop.wait(self.interval)

    def _call(self, pages: list[bytes]) -> None:
        self.machine.send(DID, pages, answer_timeout=CALL_TIMEOUT, page_timeout=CALL_TIMEOUT)

    def stop(self) -> None:
        """Place no more calls and wait for the calls still up (each bounded by its timeouts)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        with self._lock:
            calls = list(self._calls)
        deadline = time.monotonic() + CALL_TIMEOUT * (INBOUND_PAGES + 2)
        for call in calls:
            call.join(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.machine.close()
