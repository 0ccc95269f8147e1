"""The interfaces of zetafailover and the immutable records passed between them.

Everything the failover core talks to is described here as a :class:`typing.Protocol`; the core imports this
module and never an implementation. Each method's docstring states its **timing** (may it block, for how long)
and its **atomicity** (is it a compare-and-swap, is it idempotent). Records are frozen dataclasses: a layer
hands a snapshot to the next and nobody mutates it afterwards.

Vocabulary: *node* (one server), *term* (rises by one at every takeover; the fencing token), *holder* (the
node that won the current term), *heartbeat* (the holder's proof of life: a ``seq`` that rises at every
renew), *member* (every node's own liveness record, so that standbys can rank each other and ``status`` can
list them).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Characteristic",
    "Clock",
    "DeviceHealth",
    "DeviceStatus",
    "FaxDevice",
    "FenceResult",
    "FenceTarget",
    "HeartbeatRecord",
    "HeartbeatStore",
    "InboundSink",
    "LineSwitch",
    "Liveness",
    "MemberRecord",
    "NodeState",
    "Notifier",
    "OutboundFax",
    "PageConfirmed",
    "PeerMonitor",
    "PeerStatus",
    "ProcessIdentity",
    "ProcessTerminator",
    "SendOutcome",
    "StoreRead",
    "SwitchoverRequest",
    "Transition",
]


# --------------------------------------------------------------------------------------------------- time


@runtime_checkable
class Clock(Protocol):
    """Where all time comes from. Injected everywhere so tests run in simulated time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards and ignores wall-clock steps. Never blocks."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for display and records only: no decision may read it."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (a fake clock advances instead)."""
        ...


# ------------------------------------------------------------------------------------------------ records


class NodeState(enum.StrEnum):
    """The failover state of one node."""

    PASSIVE = "passive"
    """Watching the heartbeat; devices off line; answers no call and claims no job."""
    ACTIVATING = "activating"
    """Has won a term; fencing the old active and bringing devices and lines up."""
    ACTIVE = "active"
    """Holds the term, renews the heartbeat, devices on line, works the queue."""
    STANDING_DOWN = "standing_down"
    """Leaving the active role (self-fence, higher term seen, switchover, shutdown): devices going off line."""
    RELEASED = "released"
    """Written by a holder that stood down cleanly for a switchover; the term may be taken at once."""


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """One process, identified so that a reused pid is never mistaken for it.

    ``start_time`` is the process start time as the OS reports it (on Linux, clock ticks since boot from
    ``/proc/PID/stat`` field 22); ``boot_id`` tells two boots of one host apart.
    """

    host: str
    boot_id: str
    pid: int
    start_time: int
    role: str = "node"


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What a node publishes about one of its devices."""

    name: str
    driver: str
    channels: int
    health: str


@dataclass(frozen=True, slots=True)
class HeartbeatRecord:
    """The current holder's heartbeat: the record a passive node watches.

    ``(term, seq)`` is the only evidence of life (invariant 1); ``written_at`` is the writer's wall-clock
    date and time, kept for people and for the classic design, read by no decision.
    """

    cluster: str
    holder: str
    term: int
    seq: int
    written_at: float
    state: NodeState
    activity: int = 0
    """Rises whenever the holder makes progress on work (a page sent, a call answered)."""
    pending: int = 0
    """How much work the holder has waiting; with ``activity`` it feeds the hung-server check."""
    timing_hash: str = ""
    processes: tuple[ProcessIdentity, ...] = ()
    """The holder's fax processes, for the :class:`ProcessTerminator`."""
    handover_to: str = ""
    """With ``state == RELEASED``: the node the holder handed over to (empty: the best standby)."""

    @property
    def key(self) -> tuple[int, int]:
        """The evidence of life: a change of this pair is a heartbeat."""
        return (self.term, self.seq)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """Every node's own liveness record (active and passive alike)."""

    cluster: str
    name: str
    seq: int
    written_at: float
    state: NodeState
    priority: int
    term: int
    timing_hash: str
    timing: Mapping[str, float] = field(default_factory=dict)
    healthy: bool = True
    """False when the node could not take over (e.g. its devices failed to open)."""
    devices: tuple[DeviceStatus, ...] = ()
    processes: tuple[ProcessIdentity, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreRead:
    """The outcome of reading the heartbeat: a record, nothing yet, or a problem (no new evidence)."""

    record: HeartbeatRecord | None
    problem: str = ""
    """Non-empty when the read failed or the record was torn, foreign or unreadable."""

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass(frozen=True, slots=True)
class SwitchoverRequest:
    """A manual switchover asked for by an administrator.

    ``status`` moves ``pending → accepted → done`` or ``pending → refused`` (with ``reason``).
    """

    id: str
    from_term: int
    target: str
    requested_at: float
    status: str = "pending"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FenceTarget:
    """What to fence: the holder of the term being taken over and its recorded processes."""

    node: str
    term: int
    processes: tuple[ProcessIdentity, ...]


@dataclass(frozen=True, slots=True)
class FenceResult:
    """The outcome of fencing. ``confirmed`` is True only when the old active provably cannot act."""

    confirmed: bool
    method: str
    evidence: str
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a node's state, as logged and passed to notification hooks."""

    node: str
    from_state: NodeState
    to_state: NodeState
    term: int
    reason: str
    at: float
    """Wall-clock time, for people."""
    phases: tuple[tuple[str, float], ...] = ()
    """Per-phase durations in seconds (e.g. ``("fence", 0.01)``), in the order they ran."""


class Liveness(enum.StrEnum):
    """What a monitor concludes about the holder."""

    UNKNOWN = "unknown"
    """No record seen yet, or still observing after a start or an overrun."""
    ALIVE = "alive"
    SUSPECT = "suspect"
    """A beat was missed; not yet dead."""
    DEAD = "dead"
    """No change of ``(term, seq)`` for ``timeout`` on the observer's monotonic clock."""
    HUNG = "hung"
    """Heartbeat fresh, but no activity for ``activity_timeout`` while work is pending."""
    RELEASED = "released"
    """The holder released its term for a switchover."""
    VACANT = "vacant"
    """No record exists at all: a new cluster."""


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """A monitor's verdict and the evidence behind it."""

    liveness: Liveness
    record: HeartbeatRecord | None
    age_s: float
    """Seconds (observer's monotonic clock) since ``(term, seq)`` was last seen to change."""
    evidence: str
    last_change_at: float
    """Observer's monotonic time of the last change seen (the self-fence deadline is computed from it)."""


# ---------------------------------------------------------------------------------------------- interfaces


class Characteristic(enum.StrEnum):
    """Guarantees a store declares, so that unsafe combinations are refused at start-up."""

    ATOMIC_CAS = "atomic_cas"
    CROSS_HOST = "cross_host"
    LINEARIZABLE = "linearizable"
    DURABLE = "durable"
    SHARED_FS = "shared_fs"


@runtime_checkable
class HeartbeatStore(Protocol):
    """Where the heartbeat, the term and the member records live.

    Timing: every method may block on I/O; callers bound each call by ``store_timeout`` and treat a call
    that did not answer in time as failed (never as evidence about the peer). Atomicity: ``acquire`` and
    ``renew`` are compare-and-swap operations on the term; everything else is a plain atomic replace of
    one record (a reader sees the old or the new record, never a mix).
    """

    characteristics: frozenset[Characteristic]

    def read(self) -> StoreRead:
        """Read the current heartbeat record. Never raises for a bad record: reports it in ``problem``."""
        ...

    def acquire(self, expected_term: int, record: HeartbeatRecord) -> HeartbeatRecord:
        """Win ``record.term`` (which must be ``expected_term + 1``) by compare-and-swap.

        Succeeds only if the store's current term is ``expected_term``; exactly one of several concurrent
        contenders for the same term wins. Raises :class:`~zetafailover.errors.TermConflictError` when the
        term moved, :class:`~zetafailover.errors.StoreError` when the store failed. Returns the stored record.
        """
        ...

    def renew(self, record: HeartbeatRecord) -> HeartbeatRecord:
        """Rewrite the heartbeat with ``seq + 1``, only if ``record.holder`` still holds ``record.term``.

        Compare-and-swap on ``(term, holder)``; raises :class:`~zetafailover.errors.LostTermError` when a
        higher term exists. Returns the record as stored (with the new ``seq``).
        """
        ...

    def publish_member(self, member: MemberRecord) -> None:
        """Replace this node's member record atomically. Idempotent."""
        ...

    def read_members(self) -> Sequence[MemberRecord]:
        """All readable member records of this cluster; unreadable ones are skipped."""
        ...

    def put_switchover(self, request: SwitchoverRequest) -> None:
        """Replace the switchover request atomically (last writer wins; safety rests on the term CAS)."""
        ...

    def read_switchover(self) -> SwitchoverRequest | None:
        """The current switchover request, or None."""
        ...

    def close(self) -> None:
        """Release resources. Idempotent."""
        ...


@runtime_checkable
class PeerMonitor(Protocol):
    """Turns a stream of store reads into ALIVE / SUSPECT / DEAD with evidence.

    Timing: pure computation, never blocks. Staleness is measured only on the observer's monotonic clock,
    from the last time ``(term, seq)`` was seen to change (invariant 1).
    """

    def observe(self, read: StoreRead, now: float) -> PeerStatus:
        """Feed one read taken at monotonic time ``now`` and return the verdict."""
        ...

    def reset(self, now: float) -> None:
        """Forget the evidence: observe for a full ``timeout`` again before declaring anyone dead."""
        ...


@runtime_checkable
class ProcessTerminator(Protocol):
    """Makes sure the old active's fax processes can no longer act (invariant 3).

    Timing: blocks at most ``timeout`` seconds (terminate grace + kill + confirmation). Idempotent: fencing
    a process that is already gone is a confirmed success. Never signals a process that merely reuses a
    recorded pid.
    """

    kind: str
    confirms: bool
    """False for terminators that can never confirm (``none``): takeover then waits the self-fence deadline."""

    def terminate(self, target: FenceTarget, timeout: float) -> FenceResult:
        """Fence ``target``; ``FenceResult.confirmed`` only when it provably cannot act any more."""
        ...


@dataclass(frozen=True, slots=True)
class OutboundFax:
    """One transmission attempt handed to a device: a job's pages from ``first_page`` on."""

    job_id: str
    number: str
    pages: tuple[str, ...]
    """Paths of the TIFF-F page files (or the one multi-page file), as the spool keeps them."""
    first_page: int = 0
    """Zero-based index of the first page to send (resume after a failover)."""
    term: int = 0
    page_count: int = 0
    """Number of pages in the document (0: one page per entry of ``pages``)."""

    @property
    def total_pages(self) -> int:
        """The number of pages to transmit in all, from page 0."""
        return self.page_count or len(self.pages)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """How a transmission ended."""

    ok: bool
    pages_confirmed: int
    """Pages of the document the receiver has confirmed in all, counted from page 0: the pages before
    ``first_page`` (confirmed on an earlier call) count, so a complete send reports ``total_pages`` and a send
    refused before dialling reports ``first_page``. Informational: the spool records each confirmation as
    ``on_page`` reports it."""
    reason: str = ""
    retryable: bool = True


PageConfirmed = Callable[[int], None]
"""Called with the zero-based page index as soon as the receiver confirms that page (MCF)."""


class InboundSink(Protocol):
    """Where a device delivers received faxes (the spool). Each page is on disk before this returns."""

    def fax_received(self, device: str, caller: str, pages: Sequence[bytes], complete: bool, term: int) -> str:
        """Store a received fax durably and return its id. Raises StaleTermError for an old term."""
        ...


class DeviceHealth(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


@runtime_checkable
class FaxDevice(Protocol):
    """One fax device (a modem, a card) with one or more channels.

    Timing: ``open``, ``start`` and ``stop`` may block for device I/O but return within the driver's documented
    bound; ``stop`` returns only when the device will no longer answer or dial. ``monitor`` never blocks.
    Atomicity: ``start(term)`` and ``stop()`` are idempotent; every side effect is stamped with the term.
    """

    name: str
    driver: str
    channels: int

    def open(self, inbound: InboundSink | None) -> None:
        """Claim and initialise the hardware, off line (never answer). Called once, on every node."""
        ...

    def start(self, term: int) -> None:
        """Go on line under ``term``: answer calls, accept sends. Only after the term is won and fenced."""
        ...

    def stop(self) -> None:
        """Go off line: hang up, never answer. Idempotent; returns when the device is quiet."""
        ...

    def monitor(self) -> DeviceHealth:
        """RUNNING, STOPPED or FAILED. Never blocks."""
        ...

    def send(self, fax: OutboundFax, on_page: PageConfirmed) -> SendOutcome:
        """Transmit ``fax`` on a free channel; blocks for the call. Calls ``on_page`` per confirmed page."""
        ...

    def close(self) -> None:
        """Release the hardware. Idempotent."""
        ...


@runtime_checkable
class LineSwitch(Protocol):
    """Makes calls for the fax numbers reach the active node.

    Timing: ``take`` and ``release`` may block on an external system (a PBX) within the strategy's bound.
    Atomicity: both are idempotent and stamped with the term, so a stale node's request can be refused.
    """

    name: str

    def take(self, node: str, term: int) -> None:
        """Route the lines to ``node`` under ``term``. Called after fencing and device start."""
        ...

    def release(self, node: str, term: int) -> None:
        """``node`` is leaving the active role under ``term``. Called after its devices are off line."""
        ...

    def may_answer(self, node: str) -> bool:
        """Whether ``node``'s devices may answer incoming calls now. Never blocks."""
        ...


@runtime_checkable
class Notifier(Protocol):
    """Delivers lifecycle notifications to plugins, after the safety-critical step they report (invariant 9).

    Timing: ``notify`` never blocks the caller for longer than the configured hook timeout per hook (an
    implementation may deliver on a worker thread, in order). Never raises: a hook that raises or hangs is
    logged with the plugin's name and skipped. Event names are the hook names without the
    ``zetafailover_`` prefix (``role_changed``, ``term_won``, ``peer_fenced``, ``devices_online``,
    ``lines_switched``, ``spool_recovered``, ``job_state_changed``, ``fax_received``,
    ``device_health_changed``).
    """

    def notify(self, event: str, **payload: Any) -> None:
        """Deliver ``event`` with keyword ``payload`` to every hook implementation, each isolated."""
        ...
