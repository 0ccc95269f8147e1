"""The exchange's admin API: HTTP + JSON on loopback, what a PBX offers for routing changes — and the oracle.

Routes (a bearer token is required on every request when the server has one):

====================================  =========================================================================
``GET /state``                        lines, routes, AstDB, endpoints, live calls
``GET /lines`` · ``PUT /lines/NAME``  list lines · create one: ``{"kind": "e1", "number": "5550100"}``
``GET /routes`` · ``GET /routes/N``   the routing table · one route
``PUT /routes/N``                     ``{"lines": ["pri-fax2"], "term": 4, "set_by": "fax2"}`` or
                                      ``{"db_key": "fax/active"}``; 409 when the route has a higher term
``GET /db/FAMILY/KEY`` · ``PUT``      read · write an AstDB entry (``{"value": "pri-fax2"}``)
``GET /calls`` · ``/pages`` · ``/hooks``  the call log, the page log (confirmed pages), the hook log
``POST /faults/calls``                ``{"number": "5550199", "causes": [17, 34]}``: clear the next calls
``POST /faults/pbx``                  ``{"status": 500, "count": 2}`` or ``{"delay": 5, "scope": "ami"}``: the next
                                      admin (non-fault) or AMI requests fail or stall, to test PBX strategies
====================================  =========================================================================
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from zetafailover.testing.exchange.model import Exchange, ExchangeError

__all__ = ["AdminServer", "PbxFaults"]


@dataclass
class _Fault:
    status: int
    delay: float
    count: int
    scope: str


class PbxFaults:
    """Injected failures of the PBX's own interfaces (admin API and AMI). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def add(self, *, status: int = 0, delay: float = 0.0, count: int = 1, scope: str = "any") -> None:
        """Fail (``status``) or stall (``delay`` s) the next ``count`` requests of ``scope`` (admin, ami, any)."""
        if scope not in ("admin", "ami", "any"):
            raise ValueError(f"fault scope {scope!r}: admin, ami or any")
        with self._lock:
            self._faults.append(_Fault(status, delay, count, scope))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, scope: str) -> tuple[int, float]:
        """The fault for the next request of ``scope``: ``(status, delay)``, ``(0, 0.0)`` when none is pending."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.scope in (scope, "any"):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.pop(i)
                    return fault.status, fault.delay
            return 0, 0.0


class _Handler(BaseHTTPRequestHandler):
    server: AdminServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        server = self.server
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(min(length, 1 << 20)) if length else b""
        if server.token:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {server.token}".encode()):
                self._reply(401, {"error": "missing or wrong bearer token"})
                return
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if parts[:1] != ["faults"]:
            status, delay = server.faults.take("admin")
            if delay:
                time.sleep(delay)
            if status:
                self._reply(status, {"error": f"injected failure {status}"})
                return
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ExchangeError("the body must be a JSON object")
            code, result = self._route(method, parts, body)
        except json.JSONDecodeError as exc:
            code, result = 400, {"error": f"bad JSON: {exc}"}
        except ExchangeError as exc:
            code, result = exc.status, {"error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            code, result = 400, {"error": f"bad request: {type(exc).__name__}: {exc}"}
        self._reply(code, result)

    def _route(self, method: str, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        ex = self.server.exchange
        match method, parts:
            case "GET", ["state"]:
                return 200, ex.snapshot()
            case "GET", ["lines"]:
                return 200, ex.snapshot()["lines"]
            case "PUT", ["lines", name]:
                line = ex.add_line(
                    name,
                    str(body.get("kind", "analog")),
                    channels=int(body.get("channels", 0)),
                    number=str(body.get("number", "")),
                )
                return 200, line.to_json()
            case "GET", ["routes"]:
                return 200, ex.snapshot()["routes"]
            case "GET", ["routes", number]:
                route = ex.routes.get(number)
                if route is None:
                    return 404, {"error": f"no route for {number}"}
                return 200, {**route.to_json(), "effective": list(ex.route_lines(number))}
            case "PUT", ["routes", number]:
                lines = body.get("lines", [])
                if isinstance(lines, str):
                    lines = [lines]
                if not isinstance(lines, list):
                    raise ExchangeError("lines must be a list of line names")
                route = ex.set_route(
                    number,
                    [str(x) for x in lines],
                    db_key=str(body.get("db_key", "")),
                    term=int(body.get("term", 0)),
                    set_by=str(body.get("set_by", "")),
                )
                return 200, route.to_json()
            case "GET", ["db", family, key]:
                value = ex.db_get(f"{family}/{key}")
                return (404, {"error": "no such entry"}) if value is None else (200, {"value": value})
            case "PUT", ["db", family, key]:
                ex.db_put(f"{family}/{key}", str(body["value"]))
                return 200, {"value": str(body["value"])}
            case "GET", ["calls"]:
                return 200, ex.calls_log()
            case "GET", ["pages"]:
                return 200, ex.pages()
            case "GET", ["hooks"]:
                return 200, list(ex.hook_log)
            case "POST", ["faults", "calls"]:
                ex.inject(str(body["number"]), *[int(c) for c in body.get("causes", [])])
                return 200, {"ok": True}
            case "POST", ["faults", "pbx"]:
                if body.get("clear"):
                    self.server.faults.clear()
                else:
                    self.server.faults.add(
                        status=int(body.get("status", 0)),
                        delay=float(body.get("delay", 0.0)),
                        count=int(body.get("count", 1)),
                        scope=str(body.get("scope", "any")),
                    )
                return 200, {"ok": True}
        return 404, {"error": f"no route {method} /{'/'.join(parts)}"}

    def _reply(self, code: int, value: Any) -> None:
        data = json.dumps(value).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass


class AdminServer(ThreadingHTTPServer):
    """The admin API of ``exchange`` on ``http://host:port`` (port 0: any free port).

    Timing: each request is served on its own thread and answers at once (unless a ``delay`` fault is
    injected). Atomicity: a route update is a compare-and-set on its term (see :meth:`Exchange.set_route`).
    """

    daemon_threads = True

    def __init__(
        self, exchange: Exchange, faults: PbxFaults, host: str = "127.0.0.1", port: int = 0, token: str = ""
    ) -> None:
        super().__init__((host, port), _Handler)
        self.exchange = exchange
        self.faults = faults
        self.token = token
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
