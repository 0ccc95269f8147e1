"""The exchange model: numbers, lines, trunks, endpoints, calls, the routing table and the logs (the oracle).

Everything here is in memory and guarded by one lock; nothing blocks while holding it. Endpoints receive
events through a *sink* (a callable that only enqueues, never blocks), so an endpoint whose process is
paused can never stall the exchange.

Lines:

* ``analog`` — one call at a time; every endpoint on the line rings (a Y-splitter is two endpoints on one
  line); the line is **busy while any endpoint is off-hook**, whether a call is up or not;
* ``bri`` (2 B-channels), ``t1`` (23), ``e1`` (30), ``trunk`` (any number) — one call per B-channel; a call is
  offered on a channel only to endpoints that have that channel in service; the first endpoint to answer wins
  and the others are cleared with cause 26 (point-to-multipoint).

Routing: a called number maps to a :class:`Route` — an ordered list of lines (a hunt group: the first line
with a free channel takes the call) or an AstDB key (``fax/active``) whose value names the line(s), as an
Asterisk dialplan reading ``${DB(fax/active)}`` would. A route may carry the term of whoever set it, and an
update with a lower term is refused.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from zetafailover.testing.exchange.q931 import Cause

__all__ = [
    "LINE_KINDS",
    "Call",
    "Endpoint",
    "Exchange",
    "ExchangeError",
    "Line",
    "Route",
    "Sink",
]

Sink = Callable[[dict[str, Any]], None]
"""Where an endpoint's events go. Must never block (it enqueues)."""

LINE_KINDS = {"analog": 1, "bri": 2, "t1": 23, "e1": 30, "trunk": 0}
"""Line kinds and their channel counts (``trunk``: as configured)."""


class ExchangeError(Exception):
    """A request the exchange refuses (unknown line, bad argument, stale route term…)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Line:
    """A subscriber line or trunk."""

    name: str
    kind: str
    channels: int
    number: str = ""
    """The number presented as caller id for calls from this line (optional)."""
    occupied: dict[int, str] = field(default_factory=dict)
    """Channel → call id of the call holding it."""

    @property
    def analog(self) -> bool:
        return self.kind == "analog"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "channels": self.channels,
            "number": self.number,
            "calls": len(self.occupied),
        }


@dataclass
class Route:
    """Where calls to ``number`` go: ``lines`` in order (a hunt group) or the lines named by AstDB ``db_key``."""

    number: str
    lines: tuple[str, ...] = ()
    db_key: str = ""
    term: int = 0
    set_by: str = ""
    changed_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "lines": list(self.lines),
            "db_key": self.db_key,
            "term": self.term,
            "set_by": self.set_by,
            "changed_at": self.changed_at,
        }


@dataclass
class Endpoint:
    """A device port attached to a line: a modem, a card's span, a remote fax machine."""

    id: str
    line: str
    label: str
    sink: Sink
    in_service: set[int] = field(default_factory=set)
    off_hook: bool = False
    active_calls: int = 0
    peak_calls: int = 0


@dataclass
class Call:
    """One call, from SETUP to release."""

    id: str
    caller: str
    caller_number: str
    called: str
    caller_line: str
    caller_ch: int | None
    started: float
    callee_line: str = ""
    callee_ch: int | None = None
    offered: set[str] = field(default_factory=set)
    answered_by: str = ""
    answered_label: str = ""
    state: str = "offered"
    cause: int = 0
    cleared_by: str = ""
    answered_at: float = 0.0
    ended: float = 0.0
    deadline: float = 0.0
    alerted: bool = False
    rings: int = 0
    next_ring: float = 0.0
    pages: int = 0
    sent_pages: dict[tuple[str, int], tuple[str, int, bool]] = field(default_factory=dict)
    """(sender endpoint, page index) → (sha256, size, last) of pages handed over but not confirmed yet."""

    def other(self, ep: str) -> str:
        return self.answered_by if ep == self.caller else self.caller

    def to_json(self) -> dict[str, Any]:
        return {
            "call": self.id,
            "caller": self.caller,
            "caller_number": self.caller_number,
            "called": self.called,
            "caller_line": self.caller_line,
            "callee_line": self.callee_line,
            "callee_ch": self.callee_ch,
            "offered": sorted(self.offered),
            "answered_by": self.answered_by,
            "answered_label": self.answered_label,
            "state": self.state,
            "cause": self.cause,
            "cleared_by": self.cleared_by,
            "started": self.started,
            "answered_at": self.answered_at,
            "ended": self.ended,
            "pages": self.pages,
        }


class Exchange:
    """The simulated PSTN + PBX.

    Timing: every method returns at once (it changes memory and enqueues events); :meth:`tick` (called by the
    server's timer thread, or by a test) clears unanswered calls after ``answer_timeout`` seconds and sends a
    ``ring`` to analog endpoints every ``ring_interval`` seconds. Times are ``time.monotonic()`` by default —
    on Linux the same clock in every process, so the logs line up with node event logs.
    Atomicity: each method is atomic under one lock. Thread-safe.
    """

    def __init__(
        self,
        *,
        answer_timeout: float = 20.0,
        ring_interval: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.answer_timeout = answer_timeout
        self.ring_interval = ring_interval
        self._now = clock
        self._wall = wall
        self._lock = threading.RLock()
        self.lines: dict[str, Line] = {}
        self.routes: dict[str, Route] = {}
        self.db: dict[str, str] = {}
        """The AstDB: ``family/key`` → value (set through the AMI interface or the admin API)."""
        self.endpoints: dict[str, Endpoint] = {}
        self.calls: dict[str, Call] = {}
        self.call_log: list[dict[str, Any]] = []
        """Every finished call (see :meth:`Call.to_json`), in the order they ended."""
        self.page_log: list[dict[str, Any]] = []
        """Every page the receiver confirmed: call, from/to endpoint and label, called number, index, sha256."""
        self.hook_log: list[dict[str, Any]] = []
        """Every off-hook / on-hook of an analog endpoint, with the time."""
        self.route_log: list[dict[str, Any]] = []
        """Every change of the routing table or the AstDB."""
        self.faults: dict[str, list[int]] = {}
        """Called number → causes to clear the next calls with (one per call), for fault injection."""
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------------- config

    def add_line(self, name: str, kind: str = "analog", *, channels: int = 0, number: str = "") -> Line:
        """Create (or re-describe, when idle) a line. ``channels`` only for ``trunk``. Idempotent."""
        if not name or len(name) > 64 or any(c.isspace() or c in "/,;" for c in name):
            raise ExchangeError(f"line name {name!r}: 1..64 characters, no spaces, '/', ',' or ';'")
        if kind not in LINE_KINDS:
            raise ExchangeError(f"line {name}: kind {kind!r} is not one of {', '.join(LINE_KINDS)}")
        count = LINE_KINDS[kind] or channels
        if kind == "trunk" and not 1 <= channels <= 960:
            raise ExchangeError(f"line {name}: a trunk needs channels 1..960, not {channels!r}")
        with self._lock:
            old = self.lines.get(name)
            if old is not None and old.occupied and (old.kind, old.channels) != (kind, count):
                raise ExchangeError(f"line {name} has calls up; it cannot be changed now", 409)
            line = Line(name, kind, count, number, old.occupied if old else {})
            self.lines[name] = line
            if number:
                self.routes.setdefault(number, Route(number, (name,), changed_at=self._now()))
            return line

    def set_route(
        self,
        number: str,
        lines: Iterable[str] = (),
        *,
        db_key: str = "",
        term: int = 0,
        set_by: str = "",
    ) -> Route:
        """Route ``number`` to ``lines`` (a hunt group, in order) or to the lines named by AstDB ``db_key``.

        Compare-and-set on the term: refused (:class:`ExchangeError` with status 409) when the route already
        carries a higher ``term``. Idempotent.
        """
        lines = tuple(lines)
        if not number or not number.isdigit() or len(number) > 32:
            raise ExchangeError(f"number {number!r}: 1..32 digits")
        if bool(lines) == bool(db_key):
            raise ExchangeError(f"route {number}: give either lines or db_key")
        with self._lock:
            for name in lines:
                if name not in self.lines:
                    raise ExchangeError(f"route {number}: no line {name!r}", 404)
            old = self.routes.get(number)
            if old is not None and term < old.term:
                raise ExchangeError(
                    f"route {number} was set under term {old.term} by {old.set_by or '?'}; term {term} is stale", 409
                )
            route = Route(number, lines, db_key, term, set_by, self._now())
            self.routes[number] = route
            self.route_log.append({"at": route.changed_at, **route.to_json()})
            return route

    def db_put(self, key: str, value: str) -> None:
        """Set AstDB ``family/key``. Idempotent."""
        if key.count("/") < 1 or not all(key.split("/")):
            raise ExchangeError(f"AstDB key {key!r}: expected family/key")
        with self._lock:
            self.db[key] = value
            self.route_log.append({"at": self._now(), "db_key": key, "value": value})

    def db_get(self, key: str) -> str | None:
        with self._lock:
            return self.db.get(key)

    def route_lines(self, number: str) -> tuple[str, ...]:
        """The lines a call to ``number`` would hunt over now (empty: unrouted)."""
        with self._lock:
            route = self.routes.get(number)
            if route is None:
                return ()
            if route.db_key:
                value = self.db.get(route.db_key, "")
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return route.lines

    def inject(self, number: str, *causes: int) -> None:
        """Clear the next ``len(causes)`` calls to ``number`` with these causes (one each), before routing."""
        with self._lock:
            self.faults.setdefault(number, []).extend(int(c) for c in causes)

    # -------------------------------------------------------------------------------------- endpoints

    def attach(self, ep: str, line: str, label: str, sink: Sink) -> Endpoint:
        """Attach endpoint ``ep`` to ``line``. Trunk channels start out of service; analog endpoints ring at once."""
        with self._lock:
            if line not in self.lines:
                raise ExchangeError(f"no line {line!r}; lines: {', '.join(sorted(self.lines)) or 'none'}", 404)
            if ep in self.endpoints:
                raise ExchangeError(f"endpoint {ep!r} is already attached", 409)
            endpoint = Endpoint(ep, line, label, sink)
            if self.lines[line].analog:
                endpoint.in_service = {0}
            self.endpoints[ep] = endpoint
            return endpoint

    def detach(self, ep: str, cause: int = Cause.TEMPORARY_FAILURE) -> None:
        """Remove ``ep`` (its process died, its port closed): its calls are cleared, it goes on-hook."""
        with self._lock:
            endpoint = self.endpoints.get(ep)
            if endpoint is None:
                return
            for call in list(self.calls.values()):
                if ep in (call.caller, call.answered_by):
                    self._release(call, cause, by=ep)
                elif ep in call.offered:
                    call.offered.discard(ep)
                    if not call.offered and not call.answered_by:
                        self._release(call, Cause.NO_USER_RESPONDING, by=ep)
            if endpoint.off_hook:
                self._hook(endpoint, False, "detached")
            del self.endpoints[ep]

    def set_service(self, ep: str, channels: Iterable[int] | None, in_service: bool) -> None:
        """Put channels of a trunk endpoint in or out of service (``None``: all of them)."""
        with self._lock:
            endpoint = self._ep(ep)
            line = self.lines[endpoint.line]
            if line.analog:
                return
            chans = set(range(line.channels)) if channels is None else set(channels)
            if any(not 0 <= c < line.channels for c in chans):
                raise ExchangeError(f"{ep}: channels must be 0..{line.channels - 1}")
            if in_service:
                endpoint.in_service |= chans
            else:
                endpoint.in_service -= chans

    def off_hook(self, ep: str) -> None:
        """An analog endpoint lifts the receiver: the line is busy until it goes on-hook. Answers a ringing call."""
        with self._lock:
            endpoint = self._ep(ep)
            ringing = [c for c in self.calls.values() if ep in c.offered and c.state == "offered"]
            if ringing:
                self._answer(ringing[0], endpoint)
            elif not endpoint.off_hook:
                self._hook(endpoint, True, "seized")

    def on_hook(self, ep: str) -> None:
        """An analog endpoint hangs up: its call (if any) is cleared with cause 16."""
        with self._lock:
            endpoint = self._ep(ep)
            for call in list(self.calls.values()):
                if ep in (call.caller, call.answered_by):
                    self._release(call, Cause.NORMAL_CLEARING, by=ep)
            if endpoint.off_hook:
                self._hook(endpoint, False, "on-hook")

    # ------------------------------------------------------------------------------------------- calls

    def dial(self, ep: str, number: str, channel: int | None = None) -> Call:
        """Place a call from ``ep``. Returns the call (state ``offered``) or one already ``released`` with a cause.

        Causes: 17 the caller's analog line is in use, or every analog line of the route is busy; 34 no free
        channel (caller's trunk or the route's trunks); 1 the number is not routed; injected faults first.
        """
        with self._lock:
            endpoint = self._ep(ep)
            now = self._now()
            src = self.lines[endpoint.line]
            call = Call(f"C{next(self._ids):06d}", ep, src.number, number, src.name, None, now)
            self.calls[call.id] = call
            cause = self._seize_caller(call, endpoint, src, channel)
            if cause:
                return self._release(call, cause, by="network", quiet=ep)
            faults = self.faults.get(number)
            if faults:
                return self._release(call, faults.pop(0), by="network", quiet=ep)
            lines = self.route_lines(number)
            if not lines:
                return self._release(call, Cause.UNALLOCATED_NUMBER, by="network", quiet=ep)
            cause = Cause.NO_CIRCUIT_AVAILABLE
            for name in lines:
                line = self.lines.get(name)
                if line is None:
                    continue
                found = self._free_channel(line, exclude=ep)
                if found is None:
                    cause = Cause.USER_BUSY if line.analog else Cause.NO_CIRCUIT_AVAILABLE
                    continue
                ch, targets = found
                call.callee_line, call.callee_ch = name, ch
                line.occupied[ch] = call.id
                call.offered = set(targets)
                call.deadline = now + self.answer_timeout
                call.next_ring = now + self.ring_interval
                for target in targets:
                    self.endpoints[target].sink(
                        {
                            "ev": "setup",
                            "ep": target,
                            "call": call.id,
                            "ch": ch,
                            "caller": call.caller_number,
                            "called": number,
                        }
                    )
                if line.analog:
                    call.alerted = True
                    endpoint.sink({"ev": "alerting", "ep": ep, "call": call.id})
                return call
            return self._release(call, cause, by="network", quiet=ep)

    def alerting(self, ep: str, call_id: str) -> None:
        """The called endpoint reports ALERTING; the caller hears ringback (forwarded once)."""
        with self._lock:
            call = self.calls.get(call_id)
            if call is None or ep not in call.offered or call.alerted:
                return
            call.alerted = True
            self._send(call.caller, {"ev": "alerting", "call": call.id})

    def answer(self, ep: str, call_id: str) -> None:
        """``ep`` answers (CONNECT / off-hook). The first answer wins; the others are cleared with cause 26."""
        with self._lock:
            endpoint = self._ep(ep)
            call = self.calls.get(call_id)
            if call is None or call.state != "offered" or ep not in call.offered:
                cause = Cause.NON_SELECTED_USER_CLEARING if call is not None and call.answered_by else 16
                endpoint.sink({"ev": "released", "ep": ep, "call": call_id, "cause": int(cause)})
                return
            self._answer(call, endpoint)

    def reject(self, ep: str, call_id: str, cause: int = Cause.USER_BUSY) -> None:
        """``ep`` declines an offered call; when every offered endpoint declined, the caller gets ``cause``."""
        with self._lock:
            call = self.calls.get(call_id)
            if call is None or ep not in call.offered or call.state != "offered":
                return
            call.offered.discard(ep)
            if not call.offered:
                self._release(call, cause, by=ep)

    def hangup(self, ep: str, call_id: str, cause: int = Cause.NORMAL_CLEARING) -> None:
        """``ep`` clears the call (DISCONNECT); an analog endpoint goes on-hook with it. Idempotent."""
        with self._lock:
            call = self.calls.get(call_id)
            endpoint = self.endpoints.get(ep)
            if call is not None and ep in (call.caller, call.answered_by):
                self._release(call, cause, by=ep)
            elif call is not None and ep in call.offered:
                self.reject(ep, call_id, cause)
            if endpoint is not None and endpoint.off_hook and not self._calls_of(ep):
                self._hook(endpoint, False, "hung up")

    def page(self, ep: str, call_id: str, index: int, data: str, last: bool) -> None:
        """Carry one page (base64 ``data``) to the other party of an active call."""
        with self._lock:
            call = self.calls.get(call_id)
            if call is None or call.state != "active" or ep not in (call.caller, call.answered_by):
                self._send(ep, {"ev": "released", "call": call_id, "cause": int(Cause.NORMAL_UNSPECIFIED)})
                return
            raw = base64.b64decode(data.encode("ascii"), validate=True)
            call.sent_pages[(ep, index)] = (hashlib.sha256(raw).hexdigest(), len(raw), last)
            self._send(call.other(ep), {"ev": "page", "call": call_id, "index": index, "data": data, "last": last})

    def confirm(self, ep: str, call_id: str, index: int) -> None:
        """The receiver confirms page ``index`` (MCF): logged as delivered, and the sender is told."""
        with self._lock:
            call = self.calls.get(call_id)
            if call is None or call.state != "active" or ep not in (call.caller, call.answered_by):
                return
            sender = call.other(ep)
            sent = call.sent_pages.pop((sender, index), None)
            if sent is None:
                return
            call.pages += 1
            self.page_log.append(
                {
                    "call": call.id,
                    "from": sender,
                    "from_label": self._label(sender),
                    "to": ep,
                    "to_label": self._label(ep),
                    "called": call.called,
                    "index": index,
                    "sha256": sent[0],
                    "size": sent[1],
                    "last": sent[2],
                    "at": self._now(),
                }
            )
            self._send(sender, {"ev": "confirmed", "call": call.id, "index": index})

    def tick(self) -> None:
        """Clear calls nobody answered in time (cause 18) and ring analog endpoints again. Never blocks."""
        with self._lock:
            now = self._now()
            for call in list(self.calls.values()):
                if call.state != "offered":
                    continue
                if now >= call.deadline:
                    self._release(call, Cause.NO_USER_RESPONDING, by="network")
                elif now >= call.next_ring and self.lines[call.callee_line].analog:
                    call.rings += 1
                    call.next_ring = now + self.ring_interval
                    for target in call.offered:
                        self._send(target, {"ev": "ring", "call": call.id, "n": call.rings + 1})

    # ------------------------------------------------------------------------------------------ queries

    def snapshot(self) -> dict[str, Any]:
        """Lines, routes, AstDB, endpoints and live calls, as JSON-able data."""
        with self._lock:
            return {
                "lines": [line.to_json() for line in self.lines.values()],
                "routes": [route.to_json() for route in self.routes.values()],
                "db": dict(self.db),
                "endpoints": [
                    {
                        "id": e.id,
                        "line": e.line,
                        "label": e.label,
                        "off_hook": e.off_hook,
                        "in_service": len(e.in_service),
                        "active_calls": e.active_calls,
                        "peak_calls": e.peak_calls,
                    }
                    for e in self.endpoints.values()
                ],
                "calls": [c.to_json() for c in self.calls.values()],
            }

    def calls_log(self) -> list[dict[str, Any]]:
        """Finished calls, then calls still up."""
        with self._lock:
            return [*self.call_log, *(c.to_json() for c in self.calls.values())]

    def pages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.page_log)

    def line_busy(self, name: str) -> bool:
        """Whether an analog line is in use (an endpoint off-hook or a call on it)."""
        with self._lock:
            line = self.lines[name]
            return bool(line.occupied) or any(e.off_hook for e in self.endpoints.values() if e.line == name)

    # ---------------------------------------------------------------------------------------- internals

    def _ep(self, ep: str) -> Endpoint:
        endpoint = self.endpoints.get(ep)
        if endpoint is None:
            raise ExchangeError(f"endpoint {ep!r} is not attached", 404)
        return endpoint

    def _label(self, ep: str) -> str:
        endpoint = self.endpoints.get(ep)
        return endpoint.label if endpoint is not None else ""

    def _send(self, ep: str, event: dict[str, Any]) -> None:
        endpoint = self.endpoints.get(ep)
        if endpoint is not None:
            endpoint.sink({**event, "ep": ep})

    def _calls_of(self, ep: str) -> list[Call]:
        return [c for c in self.calls.values() if ep in (c.caller, c.answered_by)]

    def _hook(self, endpoint: Endpoint, off: bool, why: str) -> None:
        endpoint.off_hook = off
        self.hook_log.append(
            {
                "ep": endpoint.id,
                "label": endpoint.label,
                "line": endpoint.line,
                "off_hook": off,
                "why": why,
                "at": self._now(),
            }
        )

    def _seize_caller(self, call: Call, endpoint: Endpoint, src: Line, channel: int | None) -> int:
        if src.analog:
            others = any(e.off_hook for e in self.endpoints.values() if e.line == src.name and e.id != endpoint.id)
            if src.occupied or others:
                return Cause.USER_BUSY
            if not endpoint.off_hook:
                self._hook(endpoint, True, "dialing")
            call.caller_ch = 0
            src.occupied[0] = call.id
            self._count(endpoint, +1)
            return 0
        free = [c for c in sorted(endpoint.in_service) if c not in src.occupied]
        if channel is not None:
            if channel not in free:
                return Cause.NO_CIRCUIT_AVAILABLE
            free = [channel]
        if not free:
            return Cause.NO_CIRCUIT_AVAILABLE
        call.caller_ch = free[0]
        src.occupied[free[0]] = call.id
        self._count(endpoint, +1)
        return 0

    def _free_channel(self, line: Line, exclude: str) -> tuple[int, list[str]] | None:
        eps = [e for e in self.endpoints.values() if e.line == line.name and e.id != exclude]
        if line.analog:
            if line.occupied or any(e.off_hook for e in self.endpoints.values() if e.line == line.name) or not eps:
                return None
            return 0, [e.id for e in eps]
        for ch in range(line.channels):
            if ch in line.occupied:
                continue
            targets = [e.id for e in eps if ch in e.in_service]
            if targets:
                return ch, targets
        return None

    def _count(self, endpoint: Endpoint, delta: int) -> None:
        endpoint.active_calls += delta
        endpoint.peak_calls = max(endpoint.peak_calls, endpoint.active_calls)

    def _answer(self, call: Call, endpoint: Endpoint) -> None:
        now = self._now()
        call.state = "active"
        call.answered_by = endpoint.id
        call.answered_label = endpoint.label
        call.answered_at = now
        if self.lines[endpoint.line].analog and not endpoint.off_hook:
            self._hook(endpoint, True, f"answered {call.id}")
        self._count(endpoint, +1)
        for other in call.offered - {endpoint.id}:
            self._send(other, {"ev": "released", "call": call.id, "cause": int(Cause.NON_SELECTED_USER_CLEARING)})
        call.offered = {endpoint.id}
        self._send(call.caller, {"ev": "connected", "call": call.id, "by": endpoint.label})
        self._send(endpoint.id, {"ev": "connected", "call": call.id, "by": endpoint.label})

    def _release(self, call: Call, cause: int, *, by: str, quiet: str = "") -> Call:
        """End ``call`` with ``cause``: free channels, tell the parties (all but ``by`` and ``quiet``)."""
        if call.state == "released":
            return call
        was_offered = call.state == "offered"
        call.state = "released"
        call.cause = int(cause)
        call.cleared_by = by
        call.ended = self._now()
        parties = {call.caller, *(call.offered if was_offered else {call.answered_by})} - {""}
        for party in parties:
            if party not in (by, quiet):
                self._send(party, {"ev": "released", "call": call.id, "cause": int(cause)})
        for name, ch in ((call.caller_line, call.caller_ch), (call.callee_line, call.callee_ch)):
            line = self.lines.get(name)
            if line is not None and ch is not None and line.occupied.get(ch) == call.id:
                del line.occupied[ch]
        for party in (call.caller, call.answered_by):
            endpoint = self.endpoints.get(party)
            if endpoint is None:
                continue
            if (party == call.caller and call.caller_ch is not None) or (party == call.answered_by and not was_offered):
                self._count(endpoint, -1)
            # Whoever hangs up goes on-hook, and so does a caller whose call never connected (a modem hangs up on
            # BUSY / NO ANSWER); a party whose peer cleared stays off-hook until its own host hangs up.
            if (
                self.lines[endpoint.line].analog
                and endpoint.off_hook
                and (party == by or (party == call.caller and was_offered))
            ):
                self._hook(endpoint, False, "hung up" if party == by else f"call failed (cause {int(cause)})")
        self.calls.pop(call.id, None)
        self.call_log.append(call.to_json())
        return call
