"""Pure failover decisions: (what this node knows, what it observed, now) → what to do.

Nothing here performs I/O or reads a clock; the runner (:mod:`zetafailover.core.node`) feeds observations in
and carries the decisions out. That keeps every rule of DESIGN.md §2 testable in simulated time.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from zetafailover.core.monitor import MemberView
from zetafailover.core.timing import Timing
from zetafailover.interfaces import FenceResult, Liveness, NodeState, PeerStatus, SwitchoverRequest

__all__ = [
    "ActiveAction",
    "ActiveDecision",
    "FenceAction",
    "PassiveAction",
    "PassiveDecision",
    "decide_active",
    "decide_fence",
    "decide_passive",
    "healthy_standbys",
    "rank_of",
]


class PassiveAction(enum.Enum):
    WAIT = "wait"
    ACQUIRE = "acquire"


@dataclass(frozen=True, slots=True)
class PassiveDecision:
    action: PassiveAction
    reason: str
    expected_term: int = 0


def _outranks(a: MemberView, b_name: str, b_priority: int) -> bool:
    """True when member ``a`` comes before (name, priority) ``b``: higher priority, then the smaller name."""
    return (a.record.priority, b_name) > (b_priority, a.record.name)


def rank_of(name: str, priority: int, members: Sequence[MemberView], exclude: str, timing_hash: str) -> int:
    """How many live, healthy, passive standbys with our timing come before this node (0 = first in line)."""
    return sum(
        1
        for m in members
        if m.alive
        and m.record.name not in (name, exclude)
        and m.record.healthy
        and m.record.state == NodeState.PASSIVE
        and m.record.timing_hash == timing_hash
        and _outranks(m, name, priority)
    )


def decide_passive(
    *,
    name: str,
    priority: int,
    timing: Timing,
    timing_hash: str,
    leader: PeerStatus,
    members: Sequence[MemberView],
    running_for: float,
    healthy: bool,
) -> PassiveDecision:
    """Should a passive node try to win the next term?

    It tries only when the holder is ``DEAD`` (no change for ``timeout``), ``HUNG`` (activity check),
    ``RELEASED`` (switchover or clean shutdown) or the cluster is ``VACANT``. Standbys queue by priority: a
    node defers while a live, healthy standby outranks it, for at most ``rank × timeout`` beyond the moment
    it could act (so a standby that cannot complete a takeover does not block the others for ever). The
    term itself is won by compare-and-swap, so a mistaken attempt is refused by the store, never doubled.
    """
    if not healthy:
        return PassiveDecision(PassiveAction.WAIT, "this node is not healthy (a device failed); not taking over")
    record = leader.record
    expected = record.term if record is not None else 0
    holder = record.holder if record is not None else ""
    liveness = leader.liveness

    if liveness == Liveness.VACANT:
        # Cold start of a new cluster: give the peers two heartbeats to publish themselves, then queue.
        settle = 2 * timing.heartbeat_interval + timing.store_timeout
        if running_for < settle:
            return PassiveDecision(PassiveAction.WAIT, "new cluster: waiting for the peers to show themselves")
        rank = rank_of(name, priority, members, "", timing_hash)
        if rank and running_for < settle + rank * timing.timeout:
            return PassiveDecision(PassiveAction.WAIT, f"new cluster: {rank} standby(s) of higher priority first")
        return PassiveDecision(PassiveAction.ACQUIRE, "new cluster: no heartbeat record exists", expected)

    if liveness == Liveness.RELEASED and record is not None:
        target = record.handover_to
        if target == name:
            return PassiveDecision(PassiveAction.ACQUIRE, f"{holder} handed term {expected} over to us", expected)
        if target:
            if leader.age_s < timing.timeout:
                return PassiveDecision(PassiveAction.WAIT, f"{holder} handed over to {target}; waiting for it")
            reason = f"{holder} handed over to {target}, which did not take over within the timeout"
        else:
            reason = f"{holder} released term {expected}"
        over = leader.age_s
    elif liveness == Liveness.DEAD:
        reason = f"{holder or 'the holder'} is dead: {leader.evidence}"
        over = leader.age_s - timing.timeout
    elif liveness == Liveness.HUNG:
        reason = f"{holder} is hung: {leader.evidence}"
        over = 0.0
    else:
        return PassiveDecision(PassiveAction.WAIT, f"holder {holder or '?'} is {liveness}: {leader.evidence}")

    rank = rank_of(name, priority, members, holder, timing_hash)
    if rank and over < rank * timing.timeout:
        return PassiveDecision(PassiveAction.WAIT, f"{reason}; {rank} standby(s) of higher priority first")
    return PassiveDecision(PassiveAction.ACQUIRE, reason, expected)


class FenceAction(enum.Enum):
    PROCEED = "proceed"
    WAIT = "wait"


def decide_fence(result: FenceResult, now: float, self_fence_deadline: float) -> tuple[FenceAction, str]:
    """After fencing: proceed when confirmed, else only once the old active's self-fence deadline passed.

    ``self_fence_deadline`` is the observer's monotonic time by which the old active has provably taken itself
    off line: the last change of its heartbeat that we saw + ``timeout`` + ``self_fence_grace`` (it stops at
    ``timeout − margin`` after its own last renew, which happened before we saw it).
    """
    if result.confirmed:
        return FenceAction.PROCEED, f"fenced by {result.method}: {result.evidence}"
    if now >= self_fence_deadline:
        return FenceAction.PROCEED, f"fencing not confirmed ({result.evidence}); the self-fence deadline has passed"
    return (
        FenceAction.WAIT,
        f"fencing not confirmed ({result.evidence}); waiting {self_fence_deadline - now:.2f} s for the old "
        "active's self-fence deadline",
    )


class ActiveAction(enum.Enum):
    CONTINUE = "continue"
    SELF_FENCE = "self_fence"
    REFUSE_SWITCHOVER = "refuse_switchover"
    START_DRAIN = "start_drain"
    HAND_OVER = "hand_over"


@dataclass(frozen=True, slots=True)
class ActiveDecision:
    action: ActiveAction
    reason: str
    target: str = ""


def healthy_standbys(members: Sequence[MemberView], me: str, timing_hash: str, target: str = "") -> list[MemberView]:
    """Live, healthy, passive members with our timing (only ``target`` if one is named), best first."""
    found = [
        m
        for m in members
        if m.alive
        and m.record.name != me
        and m.record.state == NodeState.PASSIVE
        and m.record.healthy
        and m.record.timing_hash == timing_hash
        and (not target or m.record.name == target)
    ]
    return sorted(found, key=lambda m: (-m.record.priority, m.record.name))


def decide_active(
    *,
    name: str,
    term: int,
    timing: Timing,
    timing_hash: str,
    since_renew: float,
    members: Sequence[MemberView],
    switchover: SwitchoverRequest | None,
    draining_for: float | None,
    in_flight: int,
) -> ActiveDecision:
    """What an active node does this tick, before it renews.

    The self-fence rule comes first and nothing overrides it: a holder that has not renewed for
    ``timeout − margin`` (its own monotonic clock) goes off line now (invariant 4).
    """
    if since_renew >= timing.self_fence_after:
        return ActiveDecision(
            ActiveAction.SELF_FENCE,
            f"no successful renew for {since_renew:.2f} s ≥ timeout − margin ({timing.self_fence_after:g} s)",
        )
    if draining_for is not None:
        target = switchover.target if switchover is not None else ""
        if in_flight == 0:
            return ActiveDecision(ActiveAction.HAND_OVER, "drained: no fax in flight", target)
        if draining_for >= timing.drain_timeout:
            return ActiveDecision(
                ActiveAction.HAND_OVER,
                f"drain timeout ({timing.drain_timeout:g} s) with {in_flight} in flight",
                target,
            )
        return ActiveDecision(ActiveAction.CONTINUE, f"draining: {in_flight} fax(es) in flight")
    if switchover is not None and switchover.status == "pending" and switchover.from_term == term:
        standbys = healthy_standbys(members, name, timing_hash, switchover.target)
        if not standbys:
            which = f"standby {switchover.target!r}" if switchover.target else "standby"
            return ActiveDecision(ActiveAction.REFUSE_SWITCHOVER, f"no healthy {which} is watching: switchover refused")
        return ActiveDecision(
            ActiveAction.START_DRAIN, f"switchover to {standbys[0].record.name} requested", standbys[0].record.name
        )
    return ActiveDecision(ActiveAction.CONTINUE, "holding the term")
