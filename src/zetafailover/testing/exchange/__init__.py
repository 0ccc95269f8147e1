"""The simulated telephone exchange (PSTN + PBX) that every call in the tests goes through.

It owns numbers, lines and trunks; rings every endpoint on a line (a Y-splitter is two endpoints on one analog
line); keeps an analog line busy while any endpoint is off-hook; routes DIDs and hunt groups by a table that
an admin HTTP API and a small Asterisk-AMI interface can change; carries fax pages between endpoints; and
records every call, every confirmed page and every hook change — the oracle tests audit.

* :class:`Exchange` — the model (in memory, one lock);
* :class:`ExchangeServer` / :class:`ExchangeProcess` — run it in this process or its own, on loopback;
* :class:`ExchangeClient` — the endpoint protocol (:mod:`.wire`) for cards, simulated modems and machines;
* :class:`RemoteFaxMachine` — the outside world: sends faxes to the server, receives and keeps its faxes.

See ``docs/exchange.md``.
"""

from zetafailover.testing.exchange.client import (
    CallCleared,
    CallLeg,
    EndpointHandle,
    ExchangeClient,
    ExchangeUnavailable,
    WaitTimedOut,
)
from zetafailover.testing.exchange.model import Exchange, ExchangeError, Line, Route
from zetafailover.testing.exchange.q931 import RETRYABLE_CAUSES, CallState, Cause, Message, cause_text
from zetafailover.testing.exchange.remote import ReceivedFax, RemoteFaxMachine, SendResult
from zetafailover.testing.exchange.server import ExchangeAddresses, ExchangeProcess, ExchangeServer, apply_plan

__all__ = [
    "RETRYABLE_CAUSES",
    "CallCleared",
    "CallLeg",
    "CallState",
    "Cause",
    "EndpointHandle",
    "Exchange",
    "ExchangeAddresses",
    "ExchangeClient",
    "ExchangeError",
    "ExchangeProcess",
    "ExchangeServer",
    "ExchangeUnavailable",
    "Line",
    "Message",
    "ReceivedFax",
    "RemoteFaxMachine",
    "Route",
    "SendResult",
    "WaitTimedOut",
    "apply_plan",
    "cause_text",
]
