"""The node runner: the thin imperative shell around :mod:`zetafailover.core.decide`.

One :class:`FailoverNode` per server. :meth:`FailoverNode.tick` reads the store, asks the pure decision
functions what to do and does it; :meth:`FailoverNode.run` calls ``tick`` until told to stop. Simulations call
``tick`` themselves on a :class:`~zetafailover.clock.FakeClock`, so the same code runs in simulated time and
for real.

The takeover order is fixed here and nothing can reorder or veto it (invariants 2, 3 and 9)::

    win term+1 by CAS → fence the old active → devices on line → lines switched → spool recovered
    → work started → heartbeat as ACTIVE

Between the steps the node renews its heartbeat (a CAS that also proves it still holds the term), so a long
bring-up never looks like a dead node, and a node that lost its term mid-way stops at once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from zetafailover.core.decide import (
    ActiveAction,
    FenceAction,
    PassiveAction,
    decide_active,
    decide_fence,
    decide_passive,
)
from zetafailover.core.events import EventLog
from zetafailover.core.monitor import HeartbeatMonitor, MemberTracker, MemberView
from zetafailover.core.timing import Timing
from zetafailover.errors import LostTermError, StoreError, StoreUnavailableError, TermConflictError, TimingMismatchError
from zetafailover.interfaces import (
    Characteristic,
    Clock,
    DeviceHealth,
    DeviceStatus,
    FaxDevice,
    FenceResult,
    FenceTarget,
    HeartbeatRecord,
    HeartbeatStore,
    LineSwitch,
    Liveness,
    MemberRecord,
    NodeState,
    Notifier,
    PeerStatus,
    ProcessIdentity,
    ProcessTerminator,
    StoreRead,
    SwitchoverRequest,
    Transition,
)

__all__ = ["BoundedStore", "FailoverNode", "Workload"]

T = TypeVar("T")


class Workload(Protocol):
    """The work an active node does (the spool's dispatcher). Optional: a node without one only holds the term.

    Timing: every method returns promptly (the dispatcher works on its own threads); ``recover`` is bounded by
    the number of jobs in flight, not the size of the queue.
    """

    def recover(self, term: int) -> list[str]:
        """Re-queue work left in flight by older terms; returns what was re-queued."""
        ...

    def start(self, term: int) -> None:
        """Start claiming work under ``term``."""
        ...

    def begin_drain(self) -> None:
        """Stop claiming new work; in-flight work goes on."""
        ...

    def stop(self) -> None:
        """Stop claiming and stop in-flight work; returns when no work is being done."""
        ...

    @property
    def in_flight(self) -> int: ...

    @property
    def activity(self) -> int: ...

    @property
    def pending(self) -> int: ...


class BoundedStore:
    """Bounds every store call by ``store_timeout``, and by a deadline (a frozen share never hangs the node).

    Calls run on one worker thread; a call that did not answer in time raises
    :class:`~zetafailover.errors.StoreUnavailableError`, and while it is still stuck every further call fails
    fast instead of queueing behind it. While :attr:`deadline` is set (the holder's self-fence deadline, on
    ``clock``'s monotonic time) no call waits past it: an active node is never kept past the moment it must go
    off line by a store that answers slowly.
    """

    def __init__(self, store: HeartbeatStore, timeout: float, clock: Clock) -> None:
        self.inner = store
        self.characteristics: frozenset[Characteristic] = store.characteristics
        self._timeout = timeout
        self._clock = clock
        self.deadline: float | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="zf-store")
        self._stuck: concurrent.futures.Future[Any] | None = None

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        timeout = self._timeout
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - self._clock.monotonic())
            if timeout <= 0:
                raise StoreUnavailableError("no time left before the self-fence deadline")
        if self._stuck is not None:
            if not self._stuck.done():
                raise StoreUnavailableError("a previous store call is still blocked")
            self._stuck = None
        future = self._pool.submit(fn, *args)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self._stuck = future
            raise StoreUnavailableError(f"the store did not answer within {timeout:.3g} s") from None

    def read(self) -> StoreRead:
        try:
            return self._call(self.inner.read)
        except StoreError as exc:
            return StoreRead(None, problem=str(exc))

    def acquire(self, expected_term: int, record: HeartbeatRecord) -> HeartbeatRecord:
        return self._call(self.inner.acquire, expected_term, record)

    def renew(self, record: HeartbeatRecord) -> HeartbeatRecord:
        return self._call(self.inner.renew, record)

    def publish_member(self, member: MemberRecord) -> None:
        self._call(self.inner.publish_member, member)

    def read_members(self) -> Sequence[MemberRecord]:
        return self._call(self.inner.read_members)

    def put_switchover(self, request: SwitchoverRequest) -> None:
        self._call(self.inner.put_switchover, request)

    def read_switchover(self) -> SwitchoverRequest | None:
        return self._call(self.inner.read_switchover)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.inner.close()


class _Renewed(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    """The store did not answer: still the holder, but not proven; the self-fence deadline keeps running."""
    LOST = "lost"
    """A higher term exists: the node has stood down."""


@dataclass
class _Activation:
    """Progress of a takeover that has won its term."""

    old: HeartbeatRecord | None
    self_fence_deadline: float
    started_at: float
    reason: str
    phases: list[tuple[str, float]] = field(default_factory=list)
    step: str = "fence"
    fence: FenceResult | None = None


class FailoverNode:
    """One server of the cluster: PASSIVE → ACTIVATING → ACTIVE → STANDING_DOWN → PASSIVE.

    Thread-safety: ``tick``, ``run`` and ``shutdown`` are called from one thread; ``may_act`` and ``status``
    may be called from any thread (device and dispatcher threads call ``may_act`` before each side effect).
    """

    def __init__(
        self,
        *,
        name: str,
        cluster: str,
        timing: Timing,
        store: HeartbeatStore,
        terminator: ProcessTerminator,
        clock: Clock,
        priority: int = 100,
        devices: Sequence[FaxDevice] = (),
        line_switch: LineSwitch | None = None,
        work: Workload | None = None,
        notifier: Notifier | None = None,
        events: EventLog | None = None,
        processes: tuple[ProcessIdentity, ...] = (),
    ) -> None:
        timing.check()
        self.name = name
        self.cluster = cluster
        self.priority = priority
        self.timing = timing
        self.timing_hash = timing.hash
        self.store = store
        self.terminator = terminator
        self.clock = clock
        self.devices = tuple(devices)
        self.line_switch = line_switch
        self.work = work
        self.notifier = notifier
        self.events = events or EventLog(name, clock)
        self.processes = processes

        self.monitor = HeartbeatMonitor(timing)
        self.members = MemberTracker(timing)
        self._lock = threading.RLock()
        self.state = NodeState.PASSIVE
        self.term = 0
        self._record: HeartbeatRecord | None = None
        self._last_renew_at = 0.0
        self._last_tick_at: float | None = None
        self._started_at = 0.0
        self._member_seq = 0
        self._activation: _Activation | None = None
        self._draining_since: float | None = None
        self._switchover: SwitchoverRequest | None = None
        self._leader = PeerStatus(Liveness.UNKNOWN, None, 0.0, "not started", 0.0)
        self._member_views: list[MemberView] = []
        self._last_liveness = Liveness.UNKNOWN
        self._device_health: dict[str, DeviceHealth] = {}
        self._healthy = True
        self._problems: dict[str, float] = {}
        self._started = False
        self._joining_until = 0.0
        self._act: tuple[int, float] | None = None
        """(term, self-fence deadline) while ACTIVE, else None: read by ``may_act`` from other threads."""

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Open the devices off line and publish this node as PASSIVE.

        A node always starts PASSIVE: a restarted former primary never takes its role back by itself
        (invariant 10). During its first ``timeout`` the node checks the cluster's timing: a live peer that
        publishes a different timing hash makes :meth:`tick` raise
        :class:`~zetafailover.errors.TimingMismatchError` (invariant 7).
        """
        now = self.clock.monotonic()
        self._started_at = now
        self._joining_until = now + self.timing.timeout
        for device in self.devices:
            try:
                device.open(getattr(self.work, "inbound", None))
                self._device_health[device.name] = device.monitor()
            except Exception as exc:
                self._device_health[device.name] = DeviceHealth.FAILED
                self.events.emit("device_failed", 0, device=device.name, error=str(exc))
        self._healthy = not self.devices or any(h != DeviceHealth.FAILED for h in self._device_health.values())
        self._started = True
        self.events.emit(
            "started",
            0,
            priority=self.priority,
            timing=self.timing.cluster_values(),
            timing_hash=self.timing_hash,
            devices=[d.name for d in self.devices],
            healthy=self._healthy,
        )
        self._publish_member()

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, then stand down cleanly (release the term if held)."""
        if not self._started:
            self.start()
        while not stop.is_set():
            delay = self.tick()
            self._wait(stop, max(0.0, delay))
        self.shutdown("shutdown requested")

    def _wait(self, stop: threading.Event, delay: float) -> None:
        """Sleep until the next tick. A passive node whose store can watch (etcd) wakes early on a change.

        The watch is only a hint (a released term, a new heartbeat): the next tick confirms by a read, and
        liveness is still judged by the monitor on this node's own clock (invariant 1).
        """
        inner = self.store.inner if isinstance(self.store, BoundedStore) else self.store
        watch = getattr(inner, "wait_for_change", None)
        if self.state != NodeState.PASSIVE or not callable(watch) or delay <= 0:
            stop.wait(delay)
            return
        started = self.clock.monotonic()
        try:
            watch(delay)
        except StoreError:
            stop.wait(max(0.0, delay - (self.clock.monotonic() - started)))

    def shutdown(self, reason: str) -> None:
        """Stand down cleanly: devices off line, lines released, the term released for the best standby."""
        with self._lock:
            if self.state in (NodeState.ACTIVE, NodeState.ACTIVATING):
                self._stand_down(reason, release=True)
            for device in self.devices:
                with contextlib.suppress(Exception):
                    device.close()
            self.events.emit("stopped", self.term, reason=reason)

    # ------------------------------------------------------------------------------------------- queries

    def may_act(self, term: int) -> bool:
        """True only while this node is ACTIVE under ``term`` and inside its self-fence deadline.

        Devices and the dispatcher call this right before every side effect; the spool's term check
        (invariant 5) covers the instant between this check and the act. Never blocks (it does not wait for
        a tick in progress): it reads one snapshot that the runner replaces atomically.
        """
        act = self._act
        return act is not None and act[0] == term and self.clock.monotonic() < act[1]

    def status(self) -> dict[str, Any]:
        """A snapshot for ``zetafailover status`` and tests."""
        with self._lock:
            leader = self._leader
            return {
                "node": self.name,
                "state": str(self.state),
                "term": self.term,
                "priority": self.priority,
                "holder": leader.record.holder if leader.record else "",
                "holder_term": leader.record.term if leader.record else 0,
                "holder_liveness": str(leader.liveness),
                "holder_age_s": round(leader.age_s, 3),
                "healthy": self._healthy,
                "devices": {name: str(h) for name, h in self._device_health.items()},
            }

    # ------------------------------------------------------------------------------------------------ tick

    def tick(self) -> float:
        """One step of the state machine; returns the seconds until the next tick is due.

        Timing: blocks for at most a few bounded store calls (each ≤ ``store_timeout`` when the store is a
        :class:`BoundedStore`), plus at most one bounded fence or device step while ACTIVATING.
        """
        with self._lock:
            if not self._started:
                self.start()
            now = self.clock.monotonic()
            overran = (
                self._last_tick_at is not None
                and now - self._last_tick_at > self.timing.heartbeat_interval + self.timing.store_timeout
            )
            if overran:
                assert self._last_tick_at is not None
                self.events.emit("loop_overran", self.term, gap_s=round(now - self._last_tick_at, 3))
            self._last_tick_at = now
            if self.state in (NodeState.ACTIVE, NodeState.ACTIVATING):
                self._tick_holder(now, overran)
            else:
                self._tick_passive(now)
            if self._may_call():
                self._publish_member()
            if self.state in (NodeState.ACTIVE, NodeState.ACTIVATING):
                # Wake no later than the self-fence deadline, so the active goes off line on time.
                deadline = self._last_renew_at + self.timing.self_fence_after - self.clock.monotonic()
                interval = (
                    self.timing.heartbeat_interval if self.state == NodeState.ACTIVE else self.timing.poll_interval
                )
                return max(0.0, min(interval, deadline))
            return self.timing.poll_interval

    # --------------------------------------------------------------------------------------- passive side

    def _tick_passive(self, now: float) -> None:
        read = self._read_leader()
        if not read.ok:
            self._problem("store_problem", read.problem)
        leader = self.monitor.observe(read, now)
        self._leader = leader
        views = self.members.observe(self._read_members(), now)
        self._member_views = views
        self._check_devices()
        if leader.liveness != self._last_liveness:
            self._last_liveness = leader.liveness
            record = leader.record
            self.events.emit(
                "peer",
                record.term if record else 0,
                holder=record.holder if record else "",
                liveness=str(leader.liveness),
                evidence=leader.evidence,
                age_s=round(leader.age_s, 3),
            )
        if not self._check_timing(leader, views, now):
            return
        decision = decide_passive(
            name=self.name,
            priority=self.priority,
            timing=self.timing,
            timing_hash=self.timing_hash,
            leader=leader,
            members=views,
            running_for=now - self._started_at,
            healthy=self._healthy,
        )
        if decision.action == PassiveAction.ACQUIRE:
            self._take_over(leader, decision.expected_term, decision.reason, now)

    def _take_over(self, leader: PeerStatus, expected: int, reason: str, now: float) -> None:
        new = HeartbeatRecord(
            cluster=self.cluster,
            holder=self.name,
            term=expected + 1,
            seq=0,
            written_at=self.clock.wall(),
            state=NodeState.ACTIVATING,
            timing_hash=self.timing_hash,
            processes=self.processes,
        )
        try:
            stored = self.store.acquire(expected, new)
        except TermConflictError as exc:
            self.events.emit("acquire_lost", expected + 1, reason=str(exc))
            return
        except StoreError as exc:
            self._problem("store_problem", f"acquire of term {expected + 1} failed: {exc}")
            return
        took = self.clock.monotonic() - now
        self.term = stored.term
        self._record = stored
        self._last_renew_at = now
        self._set_state(NodeState.ACTIVATING, reason)
        old = leader.record
        self._activation = _Activation(
            old=old,
            self_fence_deadline=leader.last_change_at + self.timing.timeout + self.timing.self_fence_grace,
            started_at=now,
            reason=reason,
            phases=[("term", took)],
        )
        self.events.emit(
            "term_won", self.term, previous=old.holder if old else "", reason=reason, acquire_s=round(took, 4)
        )
        self._notify("term_won", node=self.name, term=self.term)
        self._advance_activation()

    # ---------------------------------------------------------------------------------------- holder side

    def _tick_holder(self, now: float, overran: bool) -> None:
        if self._self_fence_due(overran):
            return
        if self.state == NodeState.ACTIVATING:
            if self._renew(NodeState.ACTIVATING) is _Renewed.OK:
                self._advance_activation()
            return
        # Renew first: the compare-and-swap is what proves this node may go on being active.
        if self._renew(NodeState.ACTIVE) is _Renewed.LOST or self._self_fence_due(overran):
            return
        self._check_devices()
        # Every further store call must leave room to self-fence on time (a slow store must never keep an
        # active past its deadline): skip what does not fit.
        switchover = self._read_switchover() if self._may_call() else None
        if self._may_call():
            self._member_views = self.members.observe(self._read_members(), self.clock.monotonic())
        now = self.clock.monotonic()
        decision = decide_active(
            name=self.name,
            term=self.term,
            timing=self.timing,
            timing_hash=self.timing_hash,
            since_renew=now - self._last_renew_at,
            members=self._member_views,
            switchover=switchover,
            draining_for=None if self._draining_since is None else now - self._draining_since,
            in_flight=self.work.in_flight if self.work is not None else 0,
        )
        match decision.action:
            case ActiveAction.SELF_FENCE:
                self._stand_down(decision.reason, self_fenced=True)
            case ActiveAction.REFUSE_SWITCHOVER:
                assert switchover is not None
                self._put_switchover(replace(switchover, status="refused", reason=decision.reason))
                self.events.emit("switchover_refused", self.term, id=switchover.id, reason=decision.reason)
            case ActiveAction.START_DRAIN:
                assert switchover is not None
                self._switchover = replace(switchover, status="accepted", target=decision.target)
                self._put_switchover(self._switchover)
                self._draining_since = now
                if self.work is not None:
                    self.work.begin_drain()
                self.events.emit("switchover_accepted", self.term, id=switchover.id, target=decision.target)
            case ActiveAction.HAND_OVER:
                self._stand_down(f"switchover: {decision.reason}", release=True, handover_to=decision.target)
            case ActiveAction.CONTINUE:
                pass
        if self.state == NodeState.ACTIVE:
            self._self_fence_due(overran)

    def _self_fence_due(self, overran: bool = False) -> bool:
        """Self-fence now if the last successful renew is ``timeout − margin`` old (invariant 4)."""
        since_renew = self.clock.monotonic() - self._last_renew_at
        if since_renew < self.timing.self_fence_after:
            return False
        why = "loop overran; " if overran else ""
        self._stand_down(
            f"{why}no successful renew for {since_renew:.2f} s ≥ timeout − margin ({self.timing.self_fence_after:g} s)",
            self_fenced=True,
        )
        return True

    def _set_deadlines(self) -> None:
        """Publish the self-fence deadline to ``may_act`` and to a bounding store (after a renew or a state change)."""
        deadline = self._last_renew_at + self.timing.self_fence_after
        self._act = (self.term, deadline) if self.state == NodeState.ACTIVE else None
        if isinstance(self.store, BoundedStore):
            self.store.deadline = deadline if self.state in (NodeState.ACTIVE, NodeState.ACTIVATING) else None

    def _may_call(self) -> bool:
        """Whether a holder still has time before its self-fence deadline for a store call (True when passive).

        A :class:`BoundedStore` cuts every call at that deadline, so no call keeps an active past it.
        """
        if self.state not in (NodeState.ACTIVE, NodeState.ACTIVATING):
            return True
        return self.clock.monotonic() - self._last_renew_at < self.timing.self_fence_after

    def _renew(self, state: NodeState) -> _Renewed:
        """Renew the heartbeat by compare-and-swap; on LOST the node has already stood down."""
        assert self._record is not None
        started = self.clock.monotonic()
        record = replace(
            self._record,
            written_at=self.clock.wall(),
            state=state,
            activity=self.work.activity if self.work is not None else 0,
            pending=self.work.pending if self.work is not None else 0,
        )
        try:
            self._record = self.store.renew(record)
        except LostTermError as exc:
            self._stand_down(f"a higher term exists: {exc}")
            return _Renewed.LOST
        except StoreError as exc:
            self._problem("renew_failed", f"renew of term {self.term} failed: {exc}")
            return _Renewed.FAILED
        self._last_renew_at = started
        self._set_deadlines()
        return _Renewed.OK

    def _advance_activation(self) -> None:
        """Run the takeover steps in their fixed order, renewing between steps."""
        act = self._activation
        assert act is not None
        if act.step == "fence":
            now = self.clock.monotonic()
            if act.fence is None:
                t0 = now
                act.fence = self._fence(act.old)
                now = self.clock.monotonic()
                act.phases.append(("fence", now - t0))
                self.events.emit(
                    "fence",
                    self.term,
                    confirmed=act.fence.confirmed,
                    method=act.fence.method,
                    evidence=act.fence.evidence,
                    duration_s=round(now - t0, 4),
                )
            action, why = decide_fence(act.fence, now, act.self_fence_deadline)
            if action == FenceAction.WAIT:
                self._problem("fence_unconfirmed", why)
                return
            self._notify("peer_fenced", node=self.name, term=self.term, result=act.fence)
            act.step = "devices"
            if self._renew(NodeState.ACTIVATING) is not _Renewed.OK:
                return
        if act.step == "devices":
            t0 = self.clock.monotonic()
            online = []
            for device in self.devices:
                if self._device_health.get(device.name) == DeviceHealth.FAILED:
                    continue
                try:
                    device.start(self.term)
                    online.append(device.name)
                except Exception as exc:
                    self._device_health[device.name] = DeviceHealth.FAILED
                    self.events.emit("device_failed", self.term, device=device.name, error=str(exc))
            act.phases.append(("devices", self.clock.monotonic() - t0))
            self.events.emit("devices_online", self.term, devices=online)
            self._notify("devices_online", node=self.name, term=self.term, devices=online)
            act.step = "lines"
            if self._renew(NodeState.ACTIVATING) is not _Renewed.OK:
                return
        if act.step == "lines":
            t0 = self.clock.monotonic()
            if self.line_switch is not None:
                try:
                    self.line_switch.take(self.name, self.term)
                except Exception as exc:
                    self.events.emit("line_switch_failed", self.term, error=str(exc))
            act.phases.append(("lines", self.clock.monotonic() - t0))
            self.events.emit("lines_switched", self.term)
            self._notify("lines_switched", node=self.name, term=self.term)
            act.step = "spool"
            if self._renew(NodeState.ACTIVATING) is not _Renewed.OK:
                return
        if act.step == "spool":
            t0 = self.clock.monotonic()
            requeued: list[str] = []
            if self.work is not None:
                try:
                    requeued = self.work.recover(self.term)
                    self.work.start(self.term)
                except Exception as exc:
                    self._stand_down(f"spool recovery failed: {exc}")
                    self.events.emit("activation_failed", self.term, step="spool", error=str(exc))
                    return
            act.phases.append(("spool", self.clock.monotonic() - t0))
            self.events.emit("spool_recovered", self.term, requeued=requeued)
            self._notify("spool_recovered", node=self.name, term=self.term, requeued=requeued)
            act.step = "done"
        total = self.clock.monotonic() - act.started_at
        self._activation = None
        self._set_state(NodeState.ACTIVE, act.reason, phases=(*act.phases, ("total", total)))
        self._renew(NodeState.ACTIVE)
        self._finish_switchover()

    def _fence(self, old: HeartbeatRecord | None) -> FenceResult:
        if old is None:
            return FenceResult(True, "vacant", "no previous holder")
        if old.state == NodeState.RELEASED:
            return FenceResult(True, "released", f"{old.holder} released term {old.term} and is off line")
        if old.holder == self.name and set(old.processes) <= set(self.processes):
            return FenceResult(True, "self", "this node held the term and has stood down itself")
        target = FenceTarget(
            node=old.holder,
            term=old.term,
            processes=tuple(p for p in old.processes if p not in self.processes),
        )
        try:
            return self.terminator.terminate(target, self.timing.fence_timeout)
        except Exception as exc:
            return FenceResult(False, self.terminator.kind, f"terminator raised {type(exc).__name__}: {exc}")

    def _stand_down(
        self, reason: str, *, self_fenced: bool = False, release: bool = False, handover_to: str = ""
    ) -> None:
        """Leave the holder role: work stopped, devices off line, lines released, then PASSIVE."""
        t0 = self.clock.monotonic()
        self._set_state(NodeState.STANDING_DOWN, reason)
        phases: list[tuple[str, float]] = []
        if self.work is not None:  # claim nothing more...
            with contextlib.suppress(Exception):
                self.work.begin_drain()
        for device in self.devices:  # ...hang up and stop answering (ends the transmissions under way)...
            try:
                device.stop()
            except Exception as exc:
                self.events.emit("device_failed", self.term, device=device.name, error=f"stop failed: {exc}")
        phases.append(("devices", self.clock.monotonic() - t0))
        if self.work is not None:  # ...and wait for the workers to notice
            with contextlib.suppress(Exception):
                self.work.stop()
            phases.append(("work", self.clock.monotonic() - t0))
        if self.line_switch is not None:
            with contextlib.suppress(Exception):
                self.line_switch.release(self.name, self.term)
        if release and self._record is not None:
            try:
                self._record = self.store.renew(
                    replace(
                        self._record, state=NodeState.RELEASED, handover_to=handover_to, written_at=self.clock.wall()
                    )
                )
            except StoreError as exc:
                self._problem("store_problem", f"could not release term {self.term}: {exc}")
        self._activation = None
        self._draining_since = None
        kind = "self_fenced" if self_fenced else "stood_down"
        self.events.emit(kind, self.term, reason=reason, handover_to=handover_to, released=release)
        now = self.clock.monotonic()
        self.monitor.reset(now)
        self._set_state(NodeState.PASSIVE, reason, phases=(*phases, ("total", now - t0)))

    # ----------------------------------------------------------------------------------------- helpers

    def _set_state(self, new: NodeState, reason: str, phases: tuple[tuple[str, float], ...] = ()) -> None:
        old = self.state
        self.state = new
        self._set_deadlines()
        transition = Transition(
            node=self.name,
            from_state=old,
            to_state=new,
            term=self.term,
            reason=reason,
            at=self.clock.wall(),
            phases=tuple((name, round(s, 4)) for name, s in phases),
        )
        self.events.emit(
            "transition",
            self.term,
            from_state=str(old),
            to_state=str(new),
            reason=reason,
            phases=dict(transition.phases),
        )
        self._notify("role_changed", transition=transition)

    def _check_devices(self) -> None:
        for device in self.devices:
            try:
                health = device.monitor()
            except Exception:
                health = DeviceHealth.FAILED
            if self._device_health.get(device.name) != health:
                self._device_health[device.name] = health
                self.events.emit("device_health", self.term, device=device.name, health=str(health))
                self._notify("device_health_changed", node=self.name, device=device.name, health=str(health))
        if self.devices:
            self._healthy = any(h != DeviceHealth.FAILED for h in self._device_health.values())

    def _read_leader(self) -> StoreRead:
        try:
            return self.store.read()
        except StoreError as exc:  # a store that raises instead of reporting: still no new evidence
            return StoreRead(None, problem=str(exc))

    def _read_members(self) -> list[MemberRecord]:
        try:
            return [m for m in self.store.read_members() if m.cluster == self.cluster]
        except StoreError as exc:
            self._problem("store_problem", f"reading member records failed: {exc}")
            return []

    def _read_switchover(self) -> SwitchoverRequest | None:
        try:
            return self.store.read_switchover()
        except StoreError as exc:
            self._problem("store_problem", f"reading the switchover request failed: {exc}")
            return None

    def _put_switchover(self, request: SwitchoverRequest) -> None:
        try:
            self.store.put_switchover(request)
        except StoreError as exc:
            self._problem("store_problem", f"writing the switchover request failed: {exc}")

    def _finish_switchover(self) -> None:
        request = self._read_switchover()
        if request is not None and request.status in ("pending", "accepted") and request.from_term < self.term:
            self._put_switchover(replace(request, status="done", reason=f"{self.name} active in term {self.term}"))
            self.events.emit("switchover_done", self.term, id=request.id)

    def _publish_member(self) -> None:
        self._member_seq += 1
        member = MemberRecord(
            cluster=self.cluster,
            name=self.name,
            seq=self._member_seq,
            written_at=self.clock.wall(),
            state=self.state,
            priority=self.priority,
            term=self.term,
            timing_hash=self.timing_hash,
            timing=self.timing.cluster_values(),
            healthy=self._healthy,
            devices=tuple(
                DeviceStatus(d.name, d.driver, d.channels, str(self._device_health.get(d.name, DeviceHealth.STOPPED)))
                for d in self.devices
            ),
            processes=self.processes,
        )
        try:
            self.store.publish_member(member)
        except StoreError as exc:
            self._problem("store_problem", f"publishing the member record failed: {exc}")

    def _check_timing(self, leader: PeerStatus, views: list[MemberView], now: float) -> bool:
        """Invariant 7: every node of a cluster runs the same timing.

        While this node is joining (its first ``timeout``), a live peer or a live holder with another timing
        hash makes it refuse to run (:class:`~zetafailover.errors.TimingMismatchError`). Later, a newcomer
        with other timing is reported and ignored (it never counts as a standby). A holder with other timing
        is never taken over while it is alive; a dead one's timing no longer matters. Returns False when this
        tick must not take over.
        """
        joining = now < self._joining_until
        for view in views:
            member = view.record
            if view.alive and member.name != self.name and member.timing_hash not in ("", self.timing_hash):
                message = self._timing_message(member.name, member.timing_hash, member.timing)
                if joining:
                    raise TimingMismatchError(message)
                self._problem("timing_mismatch", f"{message}; that node is ignored")
        record = leader.record
        if (
            record is not None
            and record.timing_hash not in ("", self.timing_hash)
            and leader.liveness in (Liveness.ALIVE, Liveness.SUSPECT, Liveness.HUNG)
        ):
            theirs = next((v.record.timing for v in views if v.record.name == record.holder), {})
            message = self._timing_message(record.holder, record.timing_hash, theirs)
            if joining:
                raise TimingMismatchError(message)
            self._problem("timing_mismatch", f"{message}; not taking over from it")
            return False
        return True

    def _timing_message(self, node: str, their_hash: str, theirs: Mapping[str, float]) -> str:
        diffs = ", ".join(
            f"{key}: theirs {theirs.get(key)!r}, ours {ours!r}"
            for key, ours in self.timing.cluster_values().items()
            if theirs and theirs.get(key) != ours
        )
        return (
            f"node {node!r} of cluster {self.cluster!r} runs different timing (hash {their_hash}, ours "
            f"{self.timing_hash}){': ' + diffs if diffs else ''}; every node of a cluster must use the same "
            "profile and timing overrides"
        )

    def _problem(self, kind: str, message: str) -> None:
        """Emit a problem event, at most once per heartbeat interval for the same message."""
        now = self.clock.monotonic()
        last = self._problems.get(message)
        if last is None or now - last >= max(self.timing.heartbeat_interval, 1.0):
            self._problems[message] = now
            if len(self._problems) > 64:
                self._problems = {message: now}
            self.events.emit(kind, self.term, message=message)

    def _notify(self, event: str, **payload: Any) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.notify(event, **payload)
        except Exception as exc:  # a notifier must never raise; if one does, the core carries on
            self.events.emit("hook_failed", self.term, hook=event, error=str(exc))
