"""The client side of the endpoint protocol: what cards, simulated modems and remote fax machines use.

:class:`ExchangeClient` is one TCP connection (one reader thread); :meth:`ExchangeClient.endpoint` attaches an
:class:`EndpointHandle` to a line. Events for a call go to that call's :class:`CallLeg` queue, so a device
thread can wait for "connected", "page", "confirmed" or "released" on its own call; a ``setup`` (an incoming
call) is handed to the endpoint's ``on_setup`` callback, which must not block (start a thread to answer).

Timing: requests wait at most ``timeout`` seconds for their reply (:class:`ExchangeUnavailable` otherwise);
event delivery never blocks the reader thread.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from zetafailover.testing.exchange.q931 import Cause
from zetafailover.testing.exchange.wire import MAX_LINE, decode, encode

__all__ = ["CallCleared", "CallLeg", "EndpointHandle", "ExchangeClient", "ExchangeUnavailable", "parse_address"]


class ExchangeUnavailable(ConnectionError):
    """The exchange cannot be reached, closed the connection, or did not answer in time."""


class CallCleared(Exception):
    """The call ended (or never connected) with a Q.850 ``cause``."""

    def __init__(self, cause: int, what: str = "") -> None:
        super().__init__(f"call cleared with cause {cause}{': ' + what if what else ''}")
        self.cause = int(cause)


class WaitTimedOut(CallCleared):
    """No event came within the wait (cause 102, recovery on timer expiry): *our* timer ran out; the call itself
    may still be up. Distinct from a release with cause 102 sent by the far end, which is a plain
    :class:`CallCleared` — a caller polling in short waits must tell the two apart."""


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"tcp://host:port"``) → ``(host, port)``; ValueError naming the problem."""
    raw = text.removeprefix("tcp://")
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"exchange address {text!r}: expected host:port")
    return host, int(port)


class CallLeg:
    """One endpoint's side of one call: its events, in order."""

    def __init__(self, endpoint: EndpointHandle, call: str, ch: int | None, caller: str = "", called: str = "") -> None:
        self.endpoint = endpoint
        self.call = call
        self.ch = ch
        self.caller = caller
        self.called = called
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.cause = 0
        """Set when the call was released."""

    @property
    def released(self) -> bool:
        return self.cause != 0

    def next_event(self, timeout: float) -> dict[str, Any]:
        """The next event of this call; raises :class:`WaitTimedOut` (a :class:`CallCleared`, cause 102) when none
        came in ``timeout``."""
        try:
            return self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise WaitTimedOut(Cause.RECOVERY_ON_TIMER_EXPIRY, f"no event within {timeout:g} s") from None

    def wait_for(self, kind: str, timeout: float, **match: Any) -> dict[str, Any]:
        """Wait for an event ``kind`` (with ``match`` fields); :class:`CallCleared` if the call ends first."""
        return self.wait_for_any((kind,), timeout, **match)

    def wait_for_any(self, kinds: tuple[str, ...], timeout: float, **match: Any) -> dict[str, Any]:
        """Wait for an event of one of ``kinds``; :class:`CallCleared` if the call ends (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(deadline - time.monotonic())
            if event["ev"] == "released":
                self.cause = int(event.get("cause") or Cause.NORMAL_UNSPECIFIED)
                raise CallCleared(self.cause)
            if event["ev"] in kinds and all(event.get(k) == v for k, v in match.items()):
                return event

    # requests ---------------------------------------------------------------------------------------

    def alerting(self) -> None:
        self.endpoint.client.send("alerting", ep=self.endpoint.id, call=self.call)

    def answer(self) -> None:
        self.endpoint.client.send("answer", ep=self.endpoint.id, call=self.call)

    def reject(self, cause: int) -> None:
        self.endpoint.client.send("reject", ep=self.endpoint.id, call=self.call, cause=int(cause))
        self.endpoint.forget(self.call)

    def hangup(self, cause: int = Cause.NORMAL_CLEARING) -> None:
        """Clear the call. Idempotent; a thread waiting on this leg wakes up with :class:`CallCleared`."""
        if not self.cause:
            self.cause = int(cause)
        with contextlib.suppress(ExchangeUnavailable):
            self.endpoint.client.send("hangup", ep=self.endpoint.id, call=self.call, cause=int(cause))
        self.endpoint.forget(self.call)
        self.events.put({"ev": "released", "call": self.call, "cause": int(cause)})

    def send_page(self, index: int, data: bytes, last: bool) -> None:
        self.endpoint.client.send(
            "page", ep=self.endpoint.id, call=self.call, index=index, data=base64.b64encode(data).decode(), last=last
        )

    def confirm(self, index: int) -> None:
        self.endpoint.client.send("confirm", ep=self.endpoint.id, call=self.call, index=index)


class EndpointHandle:
    """An endpoint attached to a line of the exchange."""

    def __init__(self, client: ExchangeClient, ep: str, line: str, info: dict[str, Any]) -> None:
        self.client = client
        self.id = ep
        self.line = line
        self.kind = str(info.get("kind", ""))
        self.channels = int(info.get("channels", 1))
        self.number = str(info.get("number", ""))
        self.on_setup: Callable[[CallLeg], None] | None = None
        """Called on the reader thread for every incoming call (SETUP / first RING). Must not block."""
        self._legs: dict[str, CallLeg] = {}
        self._early: dict[str, list[dict[str, Any]]] = {}
        """Events that overtook the reply to our own ``dial`` (kept for the leg it creates)."""
        self._lock = threading.Lock()

    def dial(self, number: str, ch: int | None = None, timeout: float = 5.0) -> CallLeg:
        """SETUP towards ``number``; returns the leg, or raises :class:`CallCleared` if refused at once."""
        fields: dict[str, Any] = {"ep": self.id, "number": number}
        if ch is not None:
            fields["ch"] = ch
        reply = self.client.request("dial", timeout=timeout, **fields)
        if reply.get("cause"):
            raise CallCleared(int(reply["cause"]), f"dialing {number}")
        leg = CallLeg(self, str(reply["call"]), reply.get("ch"), called=number)
        with self._lock:
            self._legs[leg.call] = leg
            early = self._early.pop(leg.call, [])
        for event in early:
            leg.events.put(event)
        return leg

    def set_service(self, in_service: bool, channels: list[int] | None = None, timeout: float = 5.0) -> None:
        self.client.request("service", timeout=timeout, ep=self.id, channels=channels, in_service=in_service)

    def off_hook(self) -> None:
        self.client.request("offhook", ep=self.id)

    def on_hook(self) -> None:
        self.client.request("onhook", ep=self.id)

    def detach(self) -> None:
        with contextlib.suppress(ExchangeUnavailable, RuntimeError):
            self.client.request("detach", ep=self.id, timeout=2.0)

    def forget(self, call: str) -> None:
        with self._lock:
            self._legs.pop(call, None)

    def legs(self) -> list[CallLeg]:
        with self._lock:
            return list(self._legs.values())

    def _deliver(self, event: dict[str, Any]) -> None:
        call = str(event.get("call", ""))
        with self._lock:
            leg = self._legs.get(call)
            if leg is None and event["ev"] == "setup":
                leg = CallLeg(self, call, event.get("ch"), str(event.get("caller", "")), str(event.get("called", "")))
                self._legs[call] = leg
                new = True
            else:
                new = False
                if leg is None:
                    # An event that overtook the reply to our own dial (or one for a call we already
                    # forgot): keep the last few, for a leg that dial() may still create.
                    self._early.setdefault(call, []).append(event)
                    while len(self._early) > 256:
                        self._early.pop(next(iter(self._early)))
                    return
            if event["ev"] == "released":
                self._legs.pop(call, None)
        leg.events.put(event)
        if new and self.on_setup is not None:
            self.on_setup(leg)


class ExchangeClient:
    """One connection to the exchange's endpoint port.

    Timing: the constructor connects (bounded by ``timeout``); requests wait at most their ``timeout``.
    ``closed`` becomes true when the exchange goes away (every leg then sees cause 38, network out of order).
    """

    def __init__(self, address: str, *, timeout: float = 5.0) -> None:
        host, port = parse_address(address)
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ExchangeUnavailable(f"cannot reach the exchange at {address}: {exc}") from None
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.address = address
        self.timeout = timeout
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self._reqs = itertools.count(1)
        self._waiting: dict[int, queue.SimpleQueue[dict[str, Any]]] = {}
        self._endpoints: dict[str, EndpointHandle] = {}
        self.closed = False
        self._reader = threading.Thread(target=self._read, name=f"exchange-client-{address}", daemon=True)
        self._reader.start()

    def endpoint(self, ep: str, line: str, label: str) -> EndpointHandle:
        """Attach endpoint ``ep`` to ``line`` (raises RuntimeError with the exchange's reason when refused)."""
        reply = self.request("attach", ep=ep, line=line, label=label)
        handle = EndpointHandle(self, ep, line, reply)
        with self._lock:
            self._endpoints[ep] = handle
        return handle

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its reply; RuntimeError when refused, ExchangeUnavailable when gone."""
        req = next(self._reqs)
        box: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._lock:
            self._waiting[req] = box
        try:
            self._write({"op": op, "req": req, **fields})
            try:
                reply = box.get(timeout=self.timeout if timeout is None else timeout)
            except queue.Empty:
                raise ExchangeUnavailable(f"the exchange did not answer {op} in time") from None
        finally:
            with self._lock:
                self._waiting.pop(req, None)
        if reply.get("closed"):
            raise ExchangeUnavailable("the exchange closed the connection")
        if not reply.get("ok"):
            raise RuntimeError(f"exchange refused {op}: {reply.get('error')}")
        return reply

    def send(self, op: str, **fields: Any) -> None:
        """Send a request without waiting for a reply (its outcome comes as events)."""
        self._write({"op": op, **fields})

    def close(self) -> None:
        """Close the connection: the exchange detaches every endpoint of it (their calls are cleared)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()

    def _write(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise ExchangeUnavailable("the connection to the exchange is closed")
        try:
            with self._wlock:
                self._sock.sendall(encode(message))
        except OSError as exc:
            self.closed = True
            raise ExchangeUnavailable(f"lost the exchange: {exc}") from None

    def _read(self) -> None:
        rfile = self._sock.makefile("rb")
        try:
            while True:
                line = rfile.readline(MAX_LINE)
                if not line:
                    break
                try:
                    message = decode(line)
                except ValueError:
                    continue
                if "re" in message:
                    with self._lock:
                        box = self._waiting.get(int(message["re"]))
                    if box is not None:
                        box.put(message)
                    continue
                with self._lock:
                    handle = self._endpoints.get(str(message.get("ep", "")))
                if handle is not None and "ev" in message:
                    handle._deliver(message)
        except (OSError, ValueError):
            pass
        finally:
            self.closed = True
            with self._lock:
                boxes = list(self._waiting.values())
                handles = list(self._endpoints.values())
            for box in boxes:
                box.put({"closed": True})
            for handle in handles:
                for leg in handle.legs():
                    leg.events.put({"ev": "released", "call": leg.call, "cause": int(Cause.NETWORK_OUT_OF_ORDER)})
