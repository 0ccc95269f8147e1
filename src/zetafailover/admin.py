"""Administration from outside the nodes: cluster status and manual switchover.

Both work only through the heartbeat store, as the nodes do, and judge liveness the same way: by watching
``(term, seq)`` change on this observer's own monotonic clock. A one-shot command can only say what it saw
during its observation window, so every age is either "changed N s ago" or "no change seen for the whole
window".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from zetafailover.core.decide import healthy_standbys
from zetafailover.core.monitor import MemberTracker, MemberView
from zetafailover.core.timing import Timing
from zetafailover.errors import StoreError, SwitchoverRefusedError
from zetafailover.interfaces import Clock, HeartbeatRecord, HeartbeatStore, NodeState, SwitchoverRequest

__all__ = ["ClusterView", "NodeView", "observe_cluster", "request_switchover"]


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as an outside observer saw it."""

    name: str
    state: str
    role: str
    """``active`` for the holder of the current term, else ``standby``."""
    term: int
    priority: int
    heartbeat_age_s: float | None
    """Seconds since its record was seen to change; None when no change was seen during the window."""
    alive: bool
    healthy: bool
    devices: list[dict[str, Any]]
    timing_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "role": self.role,
            "term": self.term,
            "priority": self.priority,
            "heartbeat_age_s": self.heartbeat_age_s,
            "alive": self.alive,
            "healthy": self.healthy,
            "devices": self.devices,
            "timing_hash": self.timing_hash,
        }


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What ``zetafailover status`` shows."""

    cluster: str
    holder: str
    term: int
    holder_state: str
    holder_alive: bool
    holder_age_s: float | None
    written_at: float | None
    window_s: float
    nodes: list[NodeView] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    members: list[MemberView] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "holder": self.holder,
            "term": self.term,
            "holder_state": self.holder_state,
            "holder_alive": self.holder_alive,
            "holder_age_s": self.holder_age_s,
            "written_at": self.written_at,
            "window_s": self.window_s,
            "nodes": [n.as_dict() for n in self.nodes],
            "problems": self.problems,
        }


def observe_cluster(store: HeartbeatStore, cluster: str, timing: Timing, clock: Clock, window: float) -> ClusterView:
    """Watch the store for ``window`` seconds and report every node.

    Timing: blocks for ``window`` seconds (at least two reads). Reads only; never writes.
    """
    tracker = MemberTracker(_window_timing(timing, window))
    start = clock.monotonic()
    last_key: tuple[int, int] | None = None
    changed_at: float | None = None
    record: HeartbeatRecord | None = None
    problems: list[str] = []
    views: list[MemberView] = []
    while True:
        now = clock.monotonic()
        read = store.read()
        if read.problem and read.problem not in problems:
            problems.append(read.problem)
        if read.record is not None:
            record = read.record
            if last_key is not None and record.key != last_key:
                changed_at = now
            last_key = record.key
        try:
            views = tracker.observe([m for m in store.read_members() if m.cluster == cluster], now)
        except StoreError as exc:
            if str(exc) not in problems:
                problems.append(str(exc))
        if now - start >= window:
            break
        clock.sleep(min(timing.poll_interval, max(0.0, window - (now - start))) or timing.poll_interval)
    end = clock.monotonic()
    holder = record.holder if record else ""
    nodes = [
        NodeView(
            name=v.record.name,
            state=str(v.record.state),
            role="active"
            if record is not None
            and v.record.name == holder
            and record.state != NodeState.RELEASED
            and v.record.state == NodeState.ACTIVE
            else "standby",
            term=v.record.term,
            priority=v.record.priority,
            heartbeat_age_s=round(v.age_s, 3) if v.alive else None,
            alive=v.alive,
            healthy=v.record.healthy,
            devices=[
                {"name": d.name, "driver": d.driver, "channels": d.channels, "health": d.health}
                for d in v.record.devices
            ],
            timing_hash=v.record.timing_hash,
        )
        for v in sorted(views, key=lambda v: (-v.record.priority, v.record.name))
    ]
    return ClusterView(
        cluster=cluster,
        holder=holder,
        term=record.term if record else 0,
        holder_state=str(record.state) if record else "",
        holder_alive=changed_at is not None,
        holder_age_s=round(end - changed_at, 3) if changed_at is not None else None,
        written_at=record.written_at if record else None,
        window_s=round(end - start, 3),
        nodes=nodes,
        problems=problems,
        members=views,
    )


def _window_timing(timing: Timing, window: float) -> Timing:
    """A timing under which 'alive' means 'changed within the observation window'."""
    return replace(timing, timeout=max(window, timing.heartbeat_interval) * 2)


def request_switchover(
    store: HeartbeatStore,
    cluster: str,
    timing: Timing,
    clock: Clock,
    *,
    target: str = "",
    wait: float | None = None,
    window: float | None = None,
) -> SwitchoverRequest:
    """Ask the active node to hand over to ``target`` (or to the best standby) and wait for the outcome.

    Refused (:class:`~zetafailover.errors.SwitchoverRefusedError`, with the reason) when no node is active or
    no healthy standby is watching. Otherwise the active drains (no new work; in-flight faxes finish, up to
    ``drain_timeout``), goes off line and releases its term to the target, which takes it at once without
    waiting for a timeout. Returns the final request (``status`` ``done``); raises on refusal, or
    ``TimeoutError`` when nothing was decided within ``wait`` seconds.
    """
    window = window if window is not None else max(2.5 * timing.heartbeat_interval, 0.3)
    view = observe_cluster(store, cluster, timing, clock, window)
    if not view.holder or not view.holder_alive or view.holder_state != str(NodeState.ACTIVE):
        raise SwitchoverRefusedError(
            f"no active node is renewing its heartbeat (holder {view.holder or 'none'}, state "
            f"{view.holder_state or 'none'}); nothing to switch over"
        )
    if target == view.holder:
        raise SwitchoverRefusedError(f"{target} is already the active node")
    if not healthy_standbys(view.members, view.holder, _holder_hash(view), target):
        names = ", ".join(n.name for n in view.nodes if n.name != view.holder) or "none"
        which = f"standby {target!r}" if target else "standby"
        raise SwitchoverRefusedError(f"no healthy {which} is watching (standbys seen: {names}); switchover refused")
    request = SwitchoverRequest(id=secrets.token_hex(6), from_term=view.term, target=target, requested_at=clock.wall())
    store.put_switchover(request)
    wait = wait if wait is not None else timing.drain_timeout + timing.timeout + 5 * timing.heartbeat_interval
    deadline = clock.monotonic() + wait
    while clock.monotonic() < deadline:
        clock.sleep(timing.poll_interval)
        current = store.read_switchover()
        if current is None or current.id != request.id:
            raise SwitchoverRefusedError("the switchover request was replaced by another one")
        if current.status == "refused":
            raise SwitchoverRefusedError(current.reason or "refused by the active node")
        if current.status == "done":
            return current
    raise TimeoutError(f"the switchover was not completed within {wait:g} s")


def _holder_hash(view: ClusterView) -> str:
    for node in view.nodes:
        if node.name == view.holder:
            return node.timing_hash
    return view.nodes[0].timing_hash if view.nodes else ""
