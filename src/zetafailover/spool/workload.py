"""The spool as a node's work: what a :class:`~zetafailover.core.node.FailoverNode` runs while it is active.

:class:`SpoolWorkload` implements the core's ``Workload`` protocol on top of a :class:`DirectorySpool` and a
:class:`Dispatcher`: at takeover it raises the spool's term and re-queues what older terms left in flight
(step "spool" of the fixed takeover order), then starts claiming jobs onto the node's devices; it drains for a
switchover and stops when the node stands down. Devices deliver received faxes to :attr:`inbound` (the spool).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zetafailover.config import NodeConfig
from zetafailover.interfaces import Clock, FaxDevice, InboundSink
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.dispatcher import Dispatcher
from zetafailover.spool.jobs import Inbound, InboundState, Job

__all__ = ["SpoolWorkload", "spool_dir_of"]

Notify = Callable[..., None]


def spool_dir_of(config: NodeConfig) -> Path | None:
    """The spool folder: ``[spool] path``, else ``spool/`` inside a shared-folder store; None without either."""
    if config.spool_dir is not None:
        return config.spool_dir
    if config.store_url.startswith("file://"):
        return Path(config.store_url[len("file://") :]) / "spool"
    return None


class SpoolWorkload:
    """The fax queue worked by the active node.

    Timing: ``recover`` costs in proportion to the jobs in flight (not the queue); ``start``, ``begin_drain``
    and the properties return at once (``pending`` is a figure the dispatcher refreshes in the background, so a
    slow or hung spool never holds up the node's heartbeat); ``stop`` waits for in-flight transmissions to
    return, which they do promptly once the node has taken its devices off line.

    Spool faults and worker deaths are the dispatcher's business (see :class:`Dispatcher` and
    ``docs/design/0009-spool-faults-and-worker-death.md``): no job is lost or completed twice. While the spool
    fails ``activity`` stands still and ``pending`` stays above zero when there is work (at least 1 when the queue
    cannot even be read), which is what the standby's hung-server check (``timing.activity_timeout``) looks for.
    """

    def __init__(
        self,
        spool: DirectorySpool,
        devices: Sequence[FaxDevice],
        node: str,
        clock: Clock,
        *,
        poll_s: float = 0.5,
        notify: Notify | None = None,
        on_event: Callable[..., object] | None = None,
    ) -> None:
        self.spool = spool
        self._notify = notify
        self.dispatcher = Dispatcher(
            spool, devices, node, clock, poll_s=poll_s, on_job=self._job_done, on_event=on_event
        )
        spool.on_received = self._fax_done

    @property
    def inbound(self) -> InboundSink:
        """Where devices deliver received faxes: the spool (each page on disk before it is acknowledged)."""
        return self.spool

    def set_guard(self, guard: Callable[[int], bool]) -> None:
        """Install the node's ``may_act``: asked before every claim and every page record."""
        self.dispatcher.guard = guard

    def set_notify(self, notify: Notify) -> None:
        self._notify = notify

    def recover(self, term: int) -> list[str]:
        """Raise the spool's term to ``term`` (older terms are refused from now on), then re-queue their work."""
        self.spool.advance_term(term)
        return self.spool.recover(term)

    def start(self, term: int) -> None:
        self.dispatcher.start(term)

    def begin_drain(self) -> None:
        self.dispatcher.halt()

    def stop(self) -> None:
        self.dispatcher.stop()

    @property
    def in_flight(self) -> int:
        return self.dispatcher.in_flight

    @property
    def activity(self) -> int:
        return self.dispatcher.activity

    @property
    def pending(self) -> int:
        """Due jobs waiting (never blocks: :attr:`Dispatcher.pending_estimate`)."""
        return self.dispatcher.pending_estimate

    @property
    def spool_problem(self) -> str:
        """Why the spool is failing right now ("" when it works)."""
        return self.dispatcher.spool_problem

    def _fax_done(self, fax: Inbound) -> None:
        if self._notify is not None:
            self._notify(
                "fax_received",
                fax_id=fax.id,
                device=fax.device,
                caller=fax.caller,
                pages=fax.pages,
                complete=fax.state == InboundState.RECEIVED,
            )

    def _job_done(self, job: Job) -> None:
        if self._notify is not None:
            payload: dict[str, Any] = {
                "job_id": job.id,
                "state": str(job.state),
                "term": job.term,
                "reason": job.reason,
            }
            self._notify("job_state_changed", **payload)
