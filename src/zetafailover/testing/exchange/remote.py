"""Remote fax machines: the world outside the fax server, attached to the exchange.

A :class:`RemoteFaxMachine` sends faxes to the server's numbers (the inbound load) and answers the calls the
server places to its own line, keeping every page it received (and confirmed) for comparison. On a trunk line
it takes as many calls at once as the trunk has channels.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from zetafailover.testing.exchange.client import CallCleared, CallLeg, ExchangeClient, ExchangeUnavailable
from zetafailover.testing.exchange.q931 import Cause

__all__ = ["ReceivedFax", "RemoteFaxMachine", "SendResult"]

_serial = itertools.count(1)


@dataclass
class ReceivedFax:
    """A fax this machine received: the pages it confirmed, in order."""

    call: str
    caller: str
    pages: list[bytes] = field(default_factory=list)
    complete: bool = False
    cause: int = 0


@dataclass(frozen=True, slots=True)
class SendResult:
    """How one of this machine's transmissions ended."""

    call: str
    number: str
    cause: int
    connected: bool
    answered_by: str
    confirmed: tuple[int, ...]
    """Indexes of the pages the receiver confirmed (MCF): exactly these must be in the receiver's spool."""
    pages: tuple[bytes, ...]

    @property
    def ok(self) -> bool:
        return self.connected and len(self.confirmed) == len(self.pages)


class RemoteFaxMachine:
    """A fax machine on ``line`` of the exchange at ``address``.

    Timing: :meth:`send` blocks for the call (bounded by ``answer_timeout`` + ``page_timeout`` per page);
    incoming calls are answered on their own threads. ``busy=True`` makes it refuse calls with cause 17.
    Thread-safe: several :meth:`send` calls may run at once (one per free channel of the line).
    """

    def __init__(
        self,
        address: str,
        line: str,
        *,
        label: str = "remote",
        busy: bool = False,
        confirm_delay: float = 0.0,
    ) -> None:
        self.client = ExchangeClient(address)
        self.label = label
        self.busy = busy
        self.confirm_delay = confirm_delay
        self.endpoint = self.client.endpoint(f"{label}/{line}/{os.getpid()}-{next(_serial)}", line, label)
        if self.endpoint.kind != "analog":
            self.endpoint.set_service(True)
        self.endpoint.on_setup = self._incoming
        self._lock = threading.Lock()
        self.received: list[ReceivedFax] = []
        self.sent: list[SendResult] = []

    # -------------------------------------------------------------------------------------------- sending

    def send(
        self, number: str, pages: Sequence[bytes], *, answer_timeout: float = 30.0, page_timeout: float = 30.0
    ) -> SendResult:
        """Call ``number`` and send ``pages``; returns what the receiver confirmed. Never raises for call failures."""
        confirmed: list[int] = []
        connected, by, call, cause = False, "", "", 0
        try:
            leg = self.endpoint.dial(number)
            call = leg.call
            event = leg.wait_for("connected", answer_timeout)
            connected, by = True, str(event.get("by", ""))
            for index, data in enumerate(pages):
                leg.send_page(index, data, last=index == len(pages) - 1)
                leg.wait_for("confirmed", page_timeout, index=index)
                confirmed.append(index)
            leg.hangup(Cause.NORMAL_CLEARING)
            cause = Cause.NORMAL_CLEARING
        except CallCleared as exc:
            cause = exc.cause
            if call:
                self._hang_up(call, cause)
        except (ExchangeUnavailable, RuntimeError):
            cause = Cause.NETWORK_OUT_OF_ORDER
        result = SendResult(call, number, int(cause), connected, by, tuple(confirmed), tuple(pages))
        with self._lock:
            self.sent.append(result)
        return result

    # ------------------------------------------------------------------------------------------ receiving

    def _incoming(self, leg: CallLeg) -> None:
        threading.Thread(target=self._receive, args=(leg,), name=f"remote-rx-{leg.call}", daemon=True).start()

    def _receive(self, leg: CallLeg) -> None:
        if self.busy:
            leg.reject(Cause.USER_BUSY)
            return
        fax = ReceivedFax(leg.call, leg.caller)
        with self._lock:
            self.received.append(fax)  # pages are added as they are confirmed
        try:
            leg.alerting()
            leg.answer()
            leg.wait_for("connected", 10.0)
            while True:
                event = leg.wait_for("page", 60.0)
                if self.confirm_delay:
                    time.sleep(self.confirm_delay)
                with self._lock:
                    fax.pages.append(base64.b64decode(event["data"]))
                leg.confirm(int(event["index"]))
                if event.get("last"):
                    fax.complete = True
                    break
            # The sender hangs up after its last confirmation; wait for it, then hang up ourselves.
            leg.wait_for("never", 10.0)
        except CallCleared as exc:
            fax.cause = exc.cause
        except ExchangeUnavailable:
            fax.cause = Cause.NETWORK_OUT_OF_ORDER
        finally:
            self._hang_up(leg.call, fax.cause or Cause.NORMAL_CLEARING)

    def _hang_up(self, call: str, cause: int) -> None:
        with contextlib.suppress(ExchangeUnavailable):
            self.client.send("hangup", ep=self.endpoint.id, call=call, cause=int(cause))
        self.endpoint.forget(call)

    # ------------------------------------------------------------------------------------------- queries

    def pages_received(self) -> list[bytes]:
        """Every page this machine confirmed, over all calls."""
        with self._lock:
            return [page for fax in self.received for page in fax.pages]

    def close(self) -> None:
        """Leave the exchange (calls still up are cleared)."""
        self.client.close()
