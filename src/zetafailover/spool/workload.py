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
    and the properties return at once; ``stop`` waits for in-flight transmissions to return, which they do
    promptly once the node has taken its devices off line.
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
    ) -> None:
        self.spool = spool
        self._notify = notify
        self.dispatcher = Dispatcher(spool, devices, node, clock, poll_s=poll_s, on_job=self._job_done)
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
        return self.dispatcher.pending

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
