"""A device's own JSON-lines log: every lifecycle step and page with the term it happened under.

Tests and audits read it to prove that nothing happened under a stale term. One line a step, appended under a
lock; no fsync (it is evidence, not state).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from zetafailover.interfaces import Clock

__all__ = ["DeviceLog"]


class DeviceLog:
    """Appends ``{"ts", "mono", "pid", "device", "event", "term", …}`` lines to ``path`` (nothing when None)."""

    def __init__(self, path: Path | None, device: str, clock: Clock) -> None:
        self.path = path
        self.device = device
        self._clock = clock
        self._lock = threading.Lock()

    def write(self, event: str, term: int = 0, **fields: Any) -> None:
        """Append one entry. Thread-safe; blocks for one small write."""
        if self.path is None:
            return
        entry = {
            "ts": self._clock.wall(),
            "mono": self._clock.monotonic(),
            "pid": os.getpid(),
            "device": self.device,
            "event": event,
            "term": term,
            **fields,
        }
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
