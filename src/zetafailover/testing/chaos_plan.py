"""The fault plan of a chaos run: which faults it injects, in which order, with every random choice made.

A plan is a pure function of ``(seed, run)`` (:func:`make_plan` reads only ``random.Random(seed + run)``), so one
run of :mod:`zetafailover.testing.chaos` is replayed alone from its seed and run number. Nothing here starts a
process or touches a file: building a plan never blocks and has no side effect.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CHAOS_TIMING",
    "FAULT_KINDS",
    "PRIORITIES",
    "SPOOL_FAULT_MODES",
    "STORE_FAULT_MODES",
    "WALL_STEPS",
    "FaultStep",
    "RunPlan",
    "make_plan",
]

CHAOS_TIMING: dict[str, float] = {
    "heartbeat_interval": 0.25,
    "timeout": 2.5,
    "store_timeout": 0.5,
    "margin": 0.5,
    "fence_timeout": 1.0,
    "hook_timeout": 1.0,
    "drain_timeout": 5.0,
}
"""The test timing of every chaos run (profile ``fast`` with these overrides): a takeover in about 3 s."""

FAULT_KINDS: tuple[str, ...] = (
    "kill_active",
    "pause_active_short",
    "pause_active_long",
    "pause_standby_short",
    "pause_standby_long",
    "store_one",
    "store_all",
    "wall_step",
    "switchover",
    "switchover_race",
    "restart_all",
    "spool_one",
    "folder_one",
    "kill_worker",
)
"""Every fault a plan draws from (see docs/chaos.md for what each does and what should happen)."""

STORE_FAULT_MODES = ("unreadable", "read_only", "full", "slow", "stale")
"""The store's fault modes a ``store_one`` or ``store_all`` fault draws from."""

SPOOL_FAULT_MODES = ("unreadable", "read_only", "full", "slow")
"""The spool's fault modes (and the shared folder's, store and spool together: a folder has no "stale")."""

WALL_STEPS = (3600.0, -3600.0, 86400.0, -86400.0)
"""The wall-clock steps (seconds) a ``wall_step`` fault draws from."""

PRIORITIES = {"fax1": 200, "fax2": 100, "fax3": 50}
"""The node names and their priorities: a plan's nodes are the first ``nodes`` of them by falling priority, and
the runner starts them with these priorities."""


@dataclass(frozen=True, slots=True)
class FaultStep:
    """One fault of a plan, with every random choice already made.

    ``role`` is resolved when the fault is injected: ``active`` is the node holding the term then,
    ``standby`` the ``pick``-th (modulo) of the other nodes sorted by name, ``""`` means every node.
    ``seconds`` is the pause length, the hold time of a store fault or clock step, or the delay before the
    racing fault; ``mode`` the store mode, the switchover route (``admin``/``cli``) or the racing fault
    (``kill``/``pause``); ``value`` the ``slow`` delay or the wall-clock step.
    """

    kind: str
    role: str = ""
    pick: int = 0
    seconds: float = 0.0
    mode: str = ""
    value: float = 0.0

    def describe(self) -> str:
        """A one-line human description, e.g. ``pause_active_long 3.42 s``."""
        parts = [self.kind]
        if self.kind in ("store_one", "spool_one", "folder_one", "wall_step", "switchover") and self.role:
            parts.append(self.role)
        if self.mode:
            parts.append(self.mode)
        if self.kind in {"store_one", "store_all", "spool_one", "folder_one"}:
            if self.mode == "slow":
                parts.append(f"delay {self.value:.2f} s")
            parts.append(f"for {self.seconds:.2f} s")
        elif self.kind == "wall_step":
            parts.append(f"{self.value:+.0f} s for {self.seconds:.2f} s")
        elif self.kind == "kill_active":
            parts.append(f"restart after {self.seconds:.2f} s")
        elif self.kind == "switchover_race":
            parts.append(f"after {self.seconds:.2f} s")
        elif self.seconds:
            parts.append(f"{self.seconds:.2f} s")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything random about one run, drawn from ``random.Random(seed + run)`` by :func:`make_plan`."""

    seed: int
    run: int
    nodes: tuple[str, ...]
    faults: tuple[FaultStep, ...]


def _draw(rng: random.Random, kind: str, timeout: float) -> FaultStep:
    pick = rng.randrange(8)
    if kind == "kill_active":
        return FaultStep(kind, "active", pick, seconds=round(rng.uniform(0.0, 2.0), 3))
    if kind.startswith("pause_"):
        role = "active" if "_active_" in kind else "standby"
        if kind.endswith("_short"):
            seconds = rng.uniform(0.2, 0.4 * timeout)  # inside the budget: nothing may happen
        else:
            seconds = rng.uniform(timeout + 0.5, timeout + 1.5)  # past the timeout
        return FaultStep(kind, role, pick, seconds=round(seconds, 3))
    if kind in ("store_one", "store_all"):
        mode = rng.choice(STORE_FAULT_MODES)
        delay = round(rng.uniform(0.05, 0.8), 3) if mode == "slow" else 0.0
        role = rng.choice(("active", "standby")) if kind == "store_one" else ""
        return FaultStep(kind, role, pick, seconds=round(rng.uniform(1.0, 3.0), 3), mode=mode, value=delay)
    if kind in ("spool_one", "folder_one"):
        mode = rng.choice(SPOOL_FAULT_MODES)
        delay = round(rng.uniform(0.05, 0.8), 3) if mode == "slow" else 0.0
        role = rng.choice(("active", "standby"))
        return FaultStep(kind, role, pick, seconds=round(rng.uniform(1.0, 3.0), 3), mode=mode, value=delay)
    if kind == "kill_worker":
        return FaultStep(kind, "active", pick, seconds=round(rng.uniform(1.0, 2.0), 3))
    if kind == "wall_step":
        role = rng.choice(("active", "standby"))
        return FaultStep(kind, role, pick, seconds=round(rng.uniform(1.0, 2.5), 3), value=rng.choice(WALL_STEPS))
    if kind == "switchover":
        role = rng.choice(("standby", ""))  # a named target, or the best standby
        return FaultStep(kind, role, pick, mode=rng.choice(("admin", "cli")))
    if kind == "switchover_race":
        return FaultStep(
            kind, "active", pick, seconds=round(rng.uniform(0.0, 1.0), 3), mode=rng.choice(("kill", "pause"))
        )
    if kind == "restart_all":
        return FaultStep(kind)
    raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")


def make_plan(
    seed: int,
    run: int,
    *,
    faults: int = 4,
    nodes: int = 2,
    kinds: Sequence[str] = FAULT_KINDS,
    timeout: float = CHAOS_TIMING["timeout"],
) -> RunPlan:
    """The fault plan of run ``run`` of seed ``seed``: ``faults`` faults drawn from ``kinds``.

    Deterministic: the same arguments always give the same plan (it reads only ``random.Random(seed + run)``).
    Raises ``ValueError`` for an unknown kind, fewer than one fault, or a node count other than 2 or 3.
    """
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"fault kinds {list(kinds)!r}: {unknown or 'none given'} not in {', '.join(FAULT_KINDS)}")
    if faults < 1:
        raise ValueError(f"faults per run must be at least 1, not {faults}")
    if nodes not in (2, 3):
        raise ValueError(f"nodes must be 2 or 3, not {nodes}")
    rng = random.Random(seed + run)
    steps = tuple(_draw(rng, rng.choice(tuple(kinds)), timeout) for _ in range(faults))
    return RunPlan(seed, run, tuple(sorted(PRIORITIES, key=lambda n: -PRIORITIES[n])[:nodes]), steps)
