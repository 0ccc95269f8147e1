"""Timing profiles, the timing rule (invariant 7) and the timing hash every node publishes."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from zetafailover.errors import ConfigError, TimingError

__all__ = ["PROFILES", "Timing", "timing_from_profile"]


@dataclass(frozen=True, slots=True)
class Timing:
    """How fast a cluster beats and how long it waits. Every node of a cluster must use the same values.

    All values are seconds. ``activity_timeout`` of 0 disables the hung-server check.
    """

    heartbeat_interval: float
    timeout: float
    store_timeout: float
    margin: float
    activity_timeout: float = 0.0
    self_fence_grace: float = 0.0
    """Extra wait past ``timeout`` before taking over when fencing cannot be confirmed (``none`` terminator)."""
    drain_timeout: float = 180.0
    """How long a switchover lets in-flight faxes finish before going off line."""
    hook_timeout: float = 5.0
    fence_timeout: float = 10.0
    """The longest a terminator may take (terminate grace + kill + confirmation)."""

    @property
    def self_fence_after(self) -> float:
        """An active that has not renewed for this long takes itself off line (invariant 4)."""
        return self.timeout - self.margin

    @property
    def poll_interval(self) -> float:
        """How often a passive node reads the store: half a heartbeat, so a change is seen promptly."""
        return self.heartbeat_interval / 2

    def check(self, source: str = "<timing>") -> None:
        """Raise :class:`TimingError` unless ``heartbeat_interval + 2 × store_timeout + margin ≤ timeout``."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
                raise ConfigError(source, f"timing.{f.name}", f"must be a number of seconds, not {value!r}")
            if value < 0:
                raise ConfigError(source, f"timing.{f.name}", f"must not be negative (got {value})")
        for name in ("heartbeat_interval", "timeout", "store_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(source, f"timing.{name}", "must be greater than 0")
        need = self.heartbeat_interval + 2 * self.store_timeout + self.margin
        if need > self.timeout + 1e-9:
            raise TimingError(
                source,
                "timing.timeout",
                f"the timing rule heartbeat_interval + 2 × store_timeout + margin ≤ timeout does not hold: "
                f"{self.heartbeat_interval:g} + 2 × {self.store_timeout:g} + {self.margin:g} = {need:g} "
                f"> {self.timeout:g}; raise timeout or lower the others",
            )
        if self.fence_timeout + self.store_timeout > self.self_fence_after + 1e-9:
            raise TimingError(
                source,
                "timing.fence_timeout",
                f"fence_timeout + store_timeout must not exceed timeout − margin so that a takeover never "
                f"outlives its own heartbeat: {self.fence_timeout:g} + {self.store_timeout:g} > "
                f"{self.self_fence_after:g}",
            )
        if self.margin <= 0:
            raise TimingError(source, "timing.margin", "must be greater than 0 so the active self-fences first")

    def cluster_values(self) -> dict[str, float]:
        """The values every node must share (what the timing hash covers)."""
        return {
            "heartbeat_interval": float(self.heartbeat_interval),
            "timeout": float(self.timeout),
            "store_timeout": float(self.store_timeout),
            "margin": float(self.margin),
            "activity_timeout": float(self.activity_timeout),
            "self_fence_grace": float(self.self_fence_grace),
        }

    @property
    def hash(self) -> str:
        """A short, stable hash of :meth:`cluster_values`, published by every node."""
        text = json.dumps(self.cluster_values(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Timing] = {
    # name: heartbeat_interval / timeout, store_timeout, margin
    "standard": Timing(heartbeat_interval=2.0, timeout=15.0, store_timeout=3.0, margin=3.0, fence_timeout=8.0),
    "fast": Timing(heartbeat_interval=0.5, timeout=5.0, store_timeout=1.0, margin=1.0, fence_timeout=3.0),
    "share": Timing(heartbeat_interval=2.0, timeout=30.0, store_timeout=5.0, margin=5.0),
    "lab": Timing(
        heartbeat_interval=0.1, timeout=1.0, store_timeout=0.2, margin=0.2, hook_timeout=0.5, fence_timeout=0.5
    ),
}
"""Named timing profiles: ``standard`` (2 s / 15 s), ``fast`` (0.5 s / 5 s, a local or etcd store), ``share``
(2 s / 30 s for SMB/NFS shares) and ``lab`` (0.1 s / 1 s, a local folder on one machine)."""


def timing_from_profile(name: str, overrides: dict[str, Any] | None = None, source: str = "<timing>") -> Timing:
    """The profile ``name`` with ``overrides`` applied key by key; validated by :meth:`Timing.check`."""
    if name not in PROFILES:
        raise ConfigError(source, "cluster.profile", f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    timing = PROFILES[name]
    if overrides:
        known = {f.name for f in fields(Timing)}
        for key, value in overrides.items():
            if key not in known:
                raise ConfigError(source, f"timing.{key}", f"unknown key; known keys: {', '.join(sorted(known))}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(source, f"timing.{key}", f"must be a number of seconds, not {value!r}")
        timing = replace(timing, **{k: float(v) for k, v in overrides.items()})
    timing.check(source)
    return timing
