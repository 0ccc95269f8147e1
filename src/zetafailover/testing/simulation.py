"""A whole cluster in simulated time: real :class:`FailoverNode` code, a fake clock, a shared memory store.

Use it to test failover logic deterministically, in milliseconds::

    sim = SimCluster(PROFILES["standard"], {"fax1": 200, "fax2": 100})
    sim.run_until(lambda: sim.active() == ["fax1"], limit=60)
    sim.kill("fax1")
    took = sim.run_until(lambda: sim.active() == ["fax2"], limit=60)

Killing a node stops its ticks and hangs up its devices (a modem whose host died drops DTR); pausing a node
stops its ticks but leaves its devices as they were (a paused host's modem stays off-hook), and resuming it
lets it run again with a monotonic clock that jumped. Every node can have its own wall-clock offset, to show
that wall-clock steps change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from zetafailover.clock import FakeClock
from zetafailover.core.events import EventLog
from zetafailover.core.node import FailoverNode, Workload
from zetafailover.core.timing import Timing
from zetafailover.devices.loopback import LoopbackDevice
from zetafailover.interfaces import (
    Clock,
    FenceResult,
    FenceTarget,
    HeartbeatStore,
    NodeState,
    ProcessIdentity,
)
from zetafailover.stores.memory import MemoryBackend, MemoryHeartbeatStore
from zetafailover.testing.faulty_store import FaultyStore

__all__ = ["NodeClock", "SimCluster", "SimNode", "SimTerminator"]


class NodeClock:
    """One node's view of a shared :class:`FakeClock`: the same monotonic time, its own wall-clock offset."""

    def __init__(self, base: FakeClock) -> None:
        self.base = base
        self.wall_offset = 0.0

    def monotonic(self) -> float:
        return self.base.monotonic()

    def wall(self) -> float:
        return self.base.wall() + self.wall_offset

    def sleep(self, seconds: float) -> None:
        self.base.advance(seconds)


@dataclass
class SimNode:
    """One simulated server: the node, its devices, its fault-injecting store handle and its process state."""

    name: str
    priority: int
    node: FailoverNode
    store: FaultyStore
    clock: NodeClock
    devices: list[LoopbackDevice]
    process: ProcessIdentity
    alive: bool = True
    paused: bool = False
    next_tick: float = 0.0
    incarnation: int = 0


class SimTerminator:
    """A :class:`~zetafailover.interfaces.ProcessTerminator` for the simulation: kills simulated processes.

    ``confirms=False`` makes it behave like an unreachable host (every result unconfirmed), so the takeover
    has to wait for the old active's self-fence deadline.
    """

    kind = "sim"

    def __init__(self, cluster: SimCluster, confirms: bool = True) -> None:
        self._cluster = cluster
        self.confirms = confirms
        self.calls: list[FenceTarget] = []

    def terminate(self, target: FenceTarget, timeout: float) -> FenceResult:
        self.calls.append(target)
        if not self.confirms:
            return FenceResult(False, self.kind, "host unreachable (simulated)")
        killed = []
        for sim in self._cluster.nodes.values():
            if sim.alive and sim.process in target.processes:
                self._cluster.kill(sim.name)
                killed.append(sim.name)
        return FenceResult(True, self.kind, f"killed {killed}" if killed else "already gone")


@dataclass
class SimCluster:
    """N failover nodes sharing one memory store on one fake clock."""

    timing: Timing
    priorities: Mapping[str, int]
    cluster: str = "sim"
    clock: FakeClock = field(default_factory=FakeClock)
    confirming_terminator: bool = True
    work: Mapping[str, Workload] = field(default_factory=dict)
    step: float = 0.01
    nodes: dict[str, SimNode] = field(default_factory=dict, init=False)
    backend: MemoryBackend = field(default_factory=MemoryBackend, init=False)
    history: list[tuple[float, str, str, int]] = field(default_factory=list, init=False)
    """(monotonic time, node, state, term) whenever a node's state changed."""

    def __post_init__(self) -> None:
        self.terminator = SimTerminator(self, confirms=self.confirming_terminator)
        self._pid = 1000
        for name, priority in self.priorities.items():
            self.nodes[name] = self._make(name, priority)

    # -------------------------------------------------------------------------------------------- build

    def _make(self, name: str, priority: int, timing: Timing | None = None, incarnation: int = 0) -> SimNode:
        self._pid += 1
        clock = NodeClock(self.clock)
        store = FaultyStore(MemoryHeartbeatStore(self.cluster, self.backend), clock=self.clock)
        devices = [LoopbackDevice(f"{name}-lo0", channels=2, clock=clock)]
        process = ProcessIdentity(host="sim", boot_id="sim", pid=self._pid, start_time=self._pid)
        node = FailoverNode(
            name=name,
            cluster=self.cluster,
            timing=timing or self.timing,
            store=store,
            terminator=self.terminator,
            clock=clock,
            priority=priority,
            devices=devices,
            work=self.work.get(name),
            events=EventLog(name, clock),
            processes=(process,),
        )
        return SimNode(
            name,
            priority,
            node,
            store,
            clock,
            devices,
            process,
            next_tick=self.clock.monotonic(),
            incarnation=incarnation,
        )

    def start(self, *names: str) -> None:
        """Start the named nodes (all when none is named)."""
        for name in names or tuple(self.nodes):
            self.nodes[name].node.start()

    # ----------------------------------------------------------------------------------------- faults

    def kill(self, name: str) -> None:
        """SIGKILL: the node stops for good; its devices hang up (a dead host's modem drops DTR)."""
        sim = self.nodes[name]
        sim.alive = False
        for device in sim.devices:
            device.stop()

    def pause(self, name: str) -> None:
        """SIGSTOP: no more ticks; devices stay as they are."""
        self.nodes[name].paused = True

    def resume(self, name: str) -> None:
        """SIGCONT: the node ticks again at once, its monotonic clock having jumped."""
        sim = self.nodes[name]
        sim.paused = False
        sim.next_tick = self.clock.monotonic()

    def restart(self, name: str, timing: Timing | None = None) -> SimNode:
        """Start a fresh process for ``name`` (the old one must be dead): it comes up passive."""
        old = self.nodes[name]
        if old.alive:
            self.kill(name)
        sim = self._make(name, old.priority, timing, old.incarnation + 1)
        self.nodes[name] = sim
        sim.node.start()
        return sim

    # ------------------------------------------------------------------------------------------- time

    def run_for(self, seconds: float) -> None:
        """Advance simulated time by ``seconds``, ticking every live, running node when it is due."""
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end - 1e-9:
            self._tick_due()
            self.clock.advance(min(self.step, max(0.0, end - self.clock.monotonic())))
        self._tick_due()

    def run_until(self, predicate: Callable[[], bool], limit: float) -> float:
        """Run until ``predicate()`` holds; returns the simulated seconds it took. Raises after ``limit``."""
        start = self.clock.monotonic()
        while not predicate():
            if self.clock.monotonic() - start > limit:
                raise AssertionError(f"condition not reached within {limit} simulated seconds; {self.describe()}")
            self._tick_due()
            if predicate():
                break
            self.clock.advance(self.step)
        return self.clock.monotonic() - start

    def _tick_due(self) -> None:
        now = self.clock.monotonic()
        for sim in list(self.nodes.values()):
            if not sim.alive or sim.paused or now < sim.next_tick - 1e-9:
                continue
            before = (sim.node.state, sim.node.term)
            delay = sim.node.tick()
            sim.next_tick = self.clock.monotonic() + delay
            after = (sim.node.state, sim.node.term)
            if after != before:
                self.history.append((self.clock.monotonic(), sim.name, str(after[0]), after[1]))

    # ---------------------------------------------------------------------------------------- queries

    def active(self) -> list[str]:
        """Names of the live, running (not paused) nodes that are ACTIVE, sorted."""
        return sorted(n for n, s in self.nodes.items() if s.alive and not s.paused and s.node.state == NodeState.ACTIVE)

    def acting(self) -> list[str]:
        """Names of the live, running nodes that may act under their term right now."""
        return sorted(n for n, s in self.nodes.items() if s.alive and not s.paused and s.node.may_act(s.node.term))

    def store_of(self, name: str) -> HeartbeatStore:
        return self.nodes[name].store

    def clock_of(self, name: str) -> Clock:
        return self.nodes[name].clock

    def events(self, name: str, kind: str | None = None) -> list[dict[str, object]]:
        return [e for e in self.nodes[name].node.events.recent if kind is None or e["kind"] == kind]

    def describe(self) -> str:
        return ", ".join(
            f"{n}:{'dead' if not s.alive else 'paused' if s.paused else s.node.state}/t{s.node.term}"
            for n, s in self.nodes.items()
        )
