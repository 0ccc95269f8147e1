"""The TCP server endpoints attach through (see :mod:`zetafailover.testing.exchange.wire`).

One thread reads each connection; every connection has its own writer thread and unbounded queue, so the
exchange never blocks on a slow or paused client.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import socketserver
import threading
from typing import Any

from zetafailover.testing.exchange.model import Exchange, ExchangeError
from zetafailover.testing.exchange.q931 import Cause
from zetafailover.testing.exchange.wire import MAX_LINE, decode, encode

__all__ = ["EndpointServer"]

log = logging.getLogger(__name__)


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.endpoints: set[str] = set()
        self.writer = threading.Thread(target=self._write, name="exchange-writer", daemon=True)
        self.writer.start()

    def push(self, message: dict[str, Any]) -> None:
        self.out.put(encode(message))

    def _write(self) -> None:
        while True:
            data = self.out.get()
            if data is None:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.out.put(None)


class _Handler(socketserver.StreamRequestHandler):
    server: EndpointServer

    def handle(self) -> None:
        conn = _Connection(self.connection)
        exchange = self.server.exchange
        try:
            while True:
                line = self.rfile.readline(MAX_LINE)
                if not line:
                    break
                try:
                    message = decode(line)
                except ValueError as exc:
                    conn.push({"ok": False, "error": f"bad message: {exc}"})
                    continue
                reply = self._dispatch(exchange, conn, message)
                if "req" in message:
                    conn.push({"re": message["req"], **reply})
        except OSError:
            pass
        finally:
            for ep in list(conn.endpoints):
                exchange.detach(ep, Cause.TEMPORARY_FAILURE)
            conn.close()

    def _dispatch(self, exchange: Exchange, conn: _Connection, m: dict[str, Any]) -> dict[str, Any]:
        op = m.get("op")
        ep = str(m.get("ep", ""))
        try:
            if op == "attach":
                exchange.attach(ep, str(m.get("line", "")), str(m.get("label", "")), conn.push)
                conn.endpoints.add(ep)
                line = exchange.lines[str(m["line"])]
                return {"ok": True, "kind": line.kind, "channels": line.channels, "number": line.number}
            if ep not in conn.endpoints:
                return {"ok": False, "error": f"endpoint {ep!r} is not attached on this connection"}
            if op == "detach":
                exchange.detach(ep, Cause.NORMAL_CLEARING)
                conn.endpoints.discard(ep)
            elif op == "service":
                chans = m.get("channels")
                exchange.set_service(ep, None if chans is None else [int(c) for c in chans], bool(m.get("in_service")))
            elif op == "offhook":
                exchange.off_hook(ep)
            elif op == "onhook":
                exchange.on_hook(ep)
            elif op == "dial":
                ch = m.get("ch")
                call = exchange.dial(ep, str(m.get("number", "")), None if ch is None else int(ch))
                if call.state == "released":
                    return {"ok": True, "call": call.id, "cause": call.cause}
                return {"ok": True, "call": call.id, "ch": call.caller_ch, "cause": 0}
            elif op == "alerting":
                exchange.alerting(ep, str(m.get("call")))
            elif op == "answer":
                exchange.answer(ep, str(m.get("call")))
            elif op == "reject":
                exchange.reject(ep, str(m.get("call")), int(m.get("cause", Cause.USER_BUSY)))
            elif op == "hangup":
                exchange.hangup(ep, str(m.get("call")), int(m.get("cause", Cause.NORMAL_CLEARING)))
            elif op == "page":
                exchange.page(ep, str(m.get("call")), int(m["index"]), str(m["data"]), bool(m.get("last")))
            elif op == "confirm":
                exchange.confirm(ep, str(m.get("call")), int(m["index"]))
            else:
                return {"ok": False, "error": f"unknown op {op!r}"}
        except ExchangeError as exc:
            return {"ok": False, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad {op} request: {type(exc).__name__}: {exc}"}
        return {"ok": True}


class EndpointServer(socketserver.ThreadingTCPServer):
    """Serves the endpoint protocol for ``exchange`` on ``host:port`` (port 0: any free port).

    Timing: :meth:`start` returns once listening; :meth:`stop` closes the listener and every connection
    (their endpoints are detached) and returns within a second.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, exchange: Exchange, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.exchange = exchange
        self._thread: threading.Thread | None = None
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._socks.append(request)
        super().process_request(request, client_address)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
