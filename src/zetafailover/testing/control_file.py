"""The nemesis's control file, as a faulty store or spool inside a node process reads it.

The nemesis writes one small JSON object per node (atomically); the fault-injecting wrappers re-read it before
each operation and act only when its bytes changed and still parse.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = ["ControlFile", "parse_mode_section"]

_log = logging.getLogger(__name__)

T = TypeVar("T")


class ControlFile(Generic[T]):
    """Reads ``path`` and parses it with ``parse(data, source)`` (which raises ``ValueError`` for bad input).

    Timing: :meth:`changed` is one small local read (a missing file reads as ``{}``: no fault); it never
    blocks on anything else. Atomicity: the nemesis replaces the file atomically, so a read sees a whole
    version. Thread-safe.
    """

    def __init__(self, path: Path, parse: Callable[[Mapping[str, Any], str], T]) -> None:
        self.path = Path(path)
        self._parse = parse
        self._raw: bytes | None = None
        self._lock = threading.Lock()

    def changed(self) -> T | None:
        """The parsed content if the file changed since the last call and parses; else None (also when it
        cannot be read or parsed: that is logged, and the caller keeps the faults in force)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b"{}"
        except OSError as exc:
            _log.error("cannot read the fault control file %s: %s", self.path, exc)
            return None
        with self._lock:
            if raw == self._raw:
                return None
            self._raw = raw
        try:
            value = json.loads(raw or b"{}")
            if not isinstance(value, dict):
                raise ValueError(f"{self.path}: must hold a JSON object, not {type(value).__name__}")
            return self._parse(value, str(self.path))
        except ValueError as exc:
            _log.error("ignoring the fault control file: %s", exc)
            return None


def parse_mode_section(data: Mapping[str, Any], key: str, modes: Sequence[str], source: str) -> tuple[str, float]:
    """Check the ``key`` table of a control file (``{"mode": ..., "delay": seconds}``); returns (mode, delay).

    Raises :class:`ValueError` naming ``source``, the key and the bad value: a mode outside ``modes``, a delay
    outside 0–3600 s, or ``slow`` without a delay. A missing table means ``("ok", 0.0)``.
    """
    section = data.get(key, {})
    if not isinstance(section, Mapping):
        raise ValueError(f"{source}: '{key}' must be a table, not {section!r}")
    mode = section.get("mode", "ok")
    if mode not in modes:
        raise ValueError(f"{source}: {key}.mode {mode!r} is not one of {', '.join(modes)}")
    delay = section.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
        raise ValueError(f"{source}: {key}.delay {delay!r} must be a number of seconds from 0 to 3600")
    if mode == "slow" and delay <= 0:
        raise ValueError(f"{source}: {key}.mode 'slow' needs {key}.delay > 0, not {delay!r}")
    return str(mode), float(delay)
