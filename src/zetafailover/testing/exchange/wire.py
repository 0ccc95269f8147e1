"""The endpoint protocol: JSON objects, one a line, over a TCP connection to the exchange.

A device process opens one connection and attaches any number of endpoints over it. Requests carry ``op``
and usually ``req`` (a number the reply echoes as ``re``); the exchange answers ``{"re": n, "ok": true, ...}``
or ``{"re": n, "ok": false, "error": "..."}`` and pushes events ``{"ev": name, "ep": endpoint, ...}``.

Requests (``ep`` names the endpoint):

=============  =================================================  ===========================================
op             fields                                             effect
=============  =================================================  ===========================================
``attach``     ep, line, label                                    attach an endpoint (trunk channels out of
                                                                  service)
``detach``     ep                                                 detach it (its calls cleared)
``service``    ep, channels (list or null = all), in_service     trunk channels in / out of service
``offhook``    ep                                                 analog: seize the line, or answer a ring
``onhook``     ep                                                 analog: hang up
``dial``       ep, number, ch (optional)                          place a call; reply ``call``, ``ch``, or
                                                                  ``cause`` when it failed at once
``alerting``   ep, call                                           ALERTING towards the caller
``answer``     ep, call                                           CONNECT / off-hook
``reject``     ep, call, cause                                    decline an offered call
``hangup``     ep, call, cause                                    DISCONNECT
``page``       ep, call, index, data (base64), last               send one page to the other party
``confirm``    ep, call, index                                    MCF: the page is safe on the receiver's side
=============  =================================================  ===========================================

Events: ``setup`` (call, ch, caller, called), ``ring`` (call, n; analog, every ring interval), ``alerting``,
``connected`` (call, by), ``page`` (call, index, data, last), ``confirmed`` (call, index), ``released``
(call, cause). A closed connection detaches every endpoint on it: a process that dies hangs up (a modem
drops DTR), while a paused process keeps its connection — and its line — as it was.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_LINE", "decode", "encode"]

MAX_LINE = 16 * 1024 * 1024
"""The longest line accepted (a page of a few hundred KiB, base64-encoded, fits many times over)."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line of JSON."""
    return json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; raises ValueError for anything but a JSON object."""
    value = json.loads(line.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("a message must be a JSON object")
    return value
