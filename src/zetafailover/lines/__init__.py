"""Line-switch strategies: Y-splitter, separate lines, PBX notification (webhook, AMI, command).

The node calls a strategy's ``take`` after fencing and device start, ``release`` after its devices went off
line. Devices built by zetafailover's own drivers ask :func:`may_answer` before answering a call: the strategy
registered for their node (by the plugin factory) decides; with no strategy a started device may answer.
"""

from __future__ import annotations

import threading

from zetafailover.interfaces import LineSwitch

__all__ = ["may_answer", "register", "unregister"]

_lock = threading.Lock()
_switches: dict[str, LineSwitch] = {}


def register(node: str, switch: LineSwitch) -> None:
    """Make ``switch`` the strategy that :func:`may_answer` asks for ``node`` (this process only)."""
    with _lock:
        _switches[node] = switch


def unregister(node: str) -> None:
    with _lock:
        _switches.pop(node, None)


def may_answer(node: str) -> bool:
    """Whether ``node``'s devices may answer now: its strategy's ``may_answer``, or True without one. Never blocks."""
    with _lock:
        switch = _switches.get(node)
    return True if switch is None else switch.may_answer(node)
