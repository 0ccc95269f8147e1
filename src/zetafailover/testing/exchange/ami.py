"""A small Asterisk Manager Interface (AMI) server over the exchange's AstDB.

Enough of AMI that a real AMI client can drive routing: the banner, ``Login`` (``Username`` / ``Secret``),
``DBPut`` / ``DBGet`` / ``DBDel`` (``Family``, ``Key``, ``Val``), ``Ping`` and ``Logoff``, with ``ActionID``
echoed. Messages are ``Key: Value`` lines ended by a blank line (CRLF). A route whose ``db_key`` is
``family/key`` follows ``DBPut`` at once, as a dialplan reading ``${DB(family/key)}`` would.
"""

from __future__ import annotations

import contextlib
import hmac
import socketserver
import threading
import time
from collections.abc import Mapping

from zetafailover.testing.exchange.admin import PbxFaults
from zetafailover.testing.exchange.model import Exchange, ExchangeError

__all__ = ["BANNER", "AmiServer"]

BANNER = b"Asterisk Call Manager/6.0.0\r\n"


def _message(**fields: str) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in fields.items()) + b"\r\n"


class _Handler(socketserver.StreamRequestHandler):
    server: AmiServer

    def handle(self) -> None:
        self.wfile.write(BANNER)
        user = ""
        while True:
            fields = self._read_message()
            if fields is None:
                return
            action = fields.get("action", "").lower()
            ident = {"ActionID": fields["actionid"]} if "actionid" in fields else {}
            status, delay = self.server.faults.take("ami")
            if delay:
                time.sleep(delay)
            if status:
                self._send(Response="Error", **ident, Message=f"Injected failure {status}")
                continue
            if action == "login":
                secret = self.server.users.get(fields.get("username", ""))
                given = fields.get("secret", "")
                if secret is not None and hmac.compare_digest(secret.encode(), given.encode()):
                    user = fields["username"]
                    self._send(Response="Success", **ident, Message="Authentication accepted")
                else:
                    self._send(Response="Error", **ident, Message="Authentication failed")
                continue
            if action == "logoff":
                self._send(Response="Goodbye", **ident, Message="Thanks for all the fish.")
                return
            if not user:
                self._send(Response="Error", **ident, Message="Permission denied")
                continue
            if action == "ping":
                self._send(Response="Success", **ident, Ping="Pong", Timestamp=f"{time.time():.6f}")
            elif action in ("dbput", "dbget", "dbdel"):
                self._db(action, fields, ident)
            else:
                self._send(Response="Error", **ident, Message="Invalid/unknown command")

    def _db(self, action: str, fields: Mapping[str, str], ident: dict[str, str]) -> None:
        family, key = fields.get("family", ""), fields.get("key", "")
        if not family or not key:
            self._send(Response="Error", **ident, Message="No family specified" if not family else "No key specified")
            return
        exchange = self.server.exchange
        if action == "dbput":
            try:
                exchange.db_put(f"{family}/{key}", fields.get("val", ""))
            except ExchangeError as exc:
                self._send(Response="Error", **ident, Message=f"Failed to update entry: {exc}")
                return
            self._send(Response="Success", **ident, Message="Updated database successfully")
        elif action == "dbdel":
            with exchange._lock:
                found = exchange.db.pop(f"{family}/{key}", None) is not None
            if found:
                self._send(Response="Success", **ident, Message="Key deleted successfully")
            else:
                self._send(Response="Error", **ident, Message="Database entry not found")
        else:
            value = exchange.db_get(f"{family}/{key}")
            if value is None:
                self._send(Response="Error", **ident, Message="Database entry not found")
                return
            self._send(Response="Success", **ident, EventList="start", Message="Result will follow")
            self._send(Event="DBGetResponse", Family=family, Key=key, Val=value, **ident)
            self._send(Event="DBGetComplete", EventList="Complete", ListItems="1", **ident)

    def _read_message(self) -> dict[str, str] | None:
        fields: dict[str, str] = {}
        while True:
            line = self.rfile.readline(8192)
            if not line:
                return None
            text = line.decode("utf-8", "replace").strip()
            if not text:
                if fields:
                    return fields
                continue
            name, sep, value = text.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()

    def _send(self, **fields: str) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(_message(**fields))


class AmiServer(socketserver.ThreadingTCPServer):
    """AMI on ``host:port`` (port 0: any free port) for ``users`` (username → secret).

    Timing: answers each action at once (unless a PBX fault with a delay is injected). Atomicity: each
    ``DBPut`` is one atomic update of the AstDB (last writer wins, as in Asterisk).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        exchange: Exchange,
        users: Mapping[str, str],
        faults: PbxFaults,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.exchange = exchange
        self.users = dict(users)
        self.faults = faults
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
