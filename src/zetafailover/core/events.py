"""Structured events: every transition is logged with its reason, the term and per-phase timings.

Events go to the ``zetafailover.events`` logger and, when a path is given, to a JSON-lines file that audits
and ``zetafailover status`` read. Each line is one JSON object with at least ``ts`` (wall clock, for people),
``mono`` (the node's monotonic clock), ``node``, ``kind`` and ``term``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from zetafailover.interfaces import Clock

__all__ = ["EventLog", "read_events"]

_log = logging.getLogger("zetafailover.events")


class EventLog:
    """Append-only structured event log of one node.

    Timing: ``emit`` does one ``write`` on an ``O_APPEND`` descriptor (no fsync: the log is evidence for
    people and audits, not state). Thread-safe. A failing log file never stops the node: the error is logged
    once and events keep going to the logger.
    """

    def __init__(self, node: str, clock: Clock, path: Path | None = None) -> None:
        self.node = node
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._broken = False
        self.recent: list[dict[str, Any]] = []
        """The last events emitted (at most 200), for status and tests."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)

    def emit(self, kind: str, term: int, **fields: Any) -> dict[str, Any]:
        """Record one event; returns it as a dict."""
        event: dict[str, Any] = {
            "ts": round(self._clock.wall(), 6),
            "mono": round(self._clock.monotonic(), 6),
            "node": self.node,
            "kind": kind,
            "term": term,
        }
        event.update(fields)
        line = json.dumps(event, default=str, ensure_ascii=False, separators=(",", ":"))
        level = logging.WARNING if kind in _WARN_KINDS else logging.INFO
        _log.log(level, "%s", line)
        with self._lock:
            self.recent.append(event)
            del self.recent[:-200]
            if self._fd is not None and not self._broken:
                try:
                    os.write(self._fd, (line + "\n").encode())
                except OSError as exc:
                    self._broken = True
                    _log.error("event log of %s is not writable any more: %s", self.node, exc)
        return event

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


_WARN_KINDS = frozenset(
    {
        "self_fenced",
        "stood_down",
        "renew_failed",
        "store_problem",
        "timing_mismatch",
        "fence_unconfirmed",
        "device_failed",
        "switchover_refused",
        "activation_failed",
        "line_switch_failed",
    }
)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Read a node's event log; lines that are not complete JSON objects (a crash mid-line) are skipped."""
    events: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return events
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events
