"""The dispatcher: in the active node, claims due jobs onto free device channels and runs them.

One worker thread per device channel. Each worker claims the next due job (term-fenced), hands it to
:meth:`FaxDevice.send` starting at the first unconfirmed page, records each confirmed page durably through
``on_page`` before the device goes on to the next page, and completes the job (sent / retry / failed).
A :class:`~zetafailover.errors.StaleTermError` anywhere means the node has lost its term: the dispatcher
stops claiming at once and records nothing more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from zetafailover.errors import SelfFencedError, StaleTermError
from zetafailover.interfaces import Clock, FaxDevice, OutboundFax, SendOutcome
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import Job, JobStateError

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs the spool's outbound queue on ``devices`` for node ``node``.

    Timing: ``start`` returns at once (workers run in threads); ``stop`` blocks until every worker has
    finished its current call (as long as the device takes); ``drain(timeout)`` blocks at most ``timeout``
    seconds. Idle workers poll the spool every ``poll_s`` seconds (real time) or when :meth:`wake` is called.
    Atomicity: each job is claimed by exactly one worker (the spool's claim is exclusive); each page
    confirmation is durable before ``on_page`` returns to the device.
    """

    def __init__(
        self,
        spool: DirectorySpool,
        devices: Sequence[FaxDevice],
        node: str,
        clock: Clock,
        *,
        poll_s: float = 0.5,
        guard: Callable[[int], bool] | None = None,
        on_job: Callable[[Job], None] | None = None,
    ) -> None:
        self.guard = guard
        """Asked right before every claim and every page record: may this node still act under the term?
        (The node's ``may_act``: its self-fence deadline.) The spool's term check covers the rest."""
        self.on_job = on_job
        """Called with the job after each completion (for the ``job_state_changed`` hook)."""
        self._in_flight = 0
        self.spool = spool
        self.devices = tuple(devices)
        self.node = node
        self.clock = clock
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._claiming = False
        self._threads: list[threading.Thread] = []
        self._term = 0
        self._stale = False

    # ------------------------------------------------------------------------------------------ controls

    def start(self, term: int) -> None:
        """Begin claiming due jobs under ``term`` (one worker a channel). Idempotent while running."""
        with self._lock:
            if self._claiming:
                return
            self._term = term
            self._claiming = True
            self._stale = False
            self._threads = [
                threading.Thread(
                    target=self._worker, args=(dev, ch, term), name=f"dispatch-{dev.name}-{ch}", daemon=True
                )
                for dev in self.devices
                for ch in range(max(1, dev.channels))
            ]
            threads = list(self._threads)
        for t in threads:
            t.start()

    def wake(self) -> None:
        """Make idle workers look at the queue now (e.g. after a local submit). Never blocks."""
        with self._wake:
            self._wake.notify_all()

    def stop(self) -> None:
        """Stop claiming and wait for every worker to finish its current call."""
        self._halt()
        for t in list(self._threads):
            t.join()

    def halt(self) -> None:
        """Stop claiming new jobs; in-flight sends go on. Never blocks."""
        self._halt()

    @property
    def in_flight(self) -> int:
        """Transmissions under way right now."""
        return self._in_flight

    def drain(self, timeout: float) -> bool:
        """Stop claiming; let in-flight sends finish for up to ``timeout`` s. True if all finished."""
        self._halt()
        deadline = self.clock.monotonic() + max(0.0, timeout)
        for t in list(self._threads):
            t.join(max(0.0, deadline - self.clock.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @property
    def activity(self) -> int:
        """Rises at each confirmed page, completed job and received page/fax (the hung-server check reads it)."""
        return self.spool.activity

    @property
    def pending(self) -> int:
        """Number of due jobs waiting in the spool."""
        try:
            return self.spool.pending_count()
        except OSError:
            return 0

    @property
    def stale(self) -> bool:
        """True once a StaleTermError was seen: this node has lost its term."""
        return self._stale

    @property
    def claiming(self) -> bool:
        return self._claiming

    # ------------------------------------------------------------------------------------------ workers

    def _halt(self) -> None:
        with self._wake:
            self._claiming = False
            self._wake.notify_all()

    def _lost_term(self, exc: StaleTermError) -> None:
        log.warning("dispatcher on %s stops claiming: %s", self.node, exc)
        self._stale = True
        self._halt()

    def _worker(self, device: FaxDevice, channel: int, term: int) -> None:
        while self._claiming:
            if self.guard is not None and not self.guard(term):
                with self._wake:
                    if self._claiming:
                        self._wake.wait(self.poll_s)
                continue
            try:
                job = self.spool.claim(term, device.name)
            except StaleTermError as exc:
                self._lost_term(exc)
                return
            except Exception:
                log.exception("claim failed on %s channel %d", device.name, channel)
                job = None
            if job is None:
                with self._wake:
                    if self._claiming:
                        self._wake.wait(self.poll_s)
                continue
            with self._lock:
                self._in_flight += 1
            try:
                self._run(device, job, term)
            finally:
                with self._lock:
                    self._in_flight -= 1

    def _run(self, device: FaxDevice, job: Job, term: int) -> None:
        lost = False

        def on_page(index: int) -> None:
            nonlocal lost
            if self.guard is not None and not self.guard(term):
                lost = True
                raise SelfFencedError(term, f"recording page {index} of {job.id}")
            try:
                self.spool.page_confirmed(job.id, index, term)
            except StaleTermError as exc:
                lost = True
                self._lost_term(exc)
                raise

        try:
            document = self.spool.document_path(job.id)
            fax = OutboundFax(
                job_id=job.id,
                number=job.number,
                pages=(str(document),),
                first_page=job.pages_confirmed,
                term=term,
                page_count=job.pages,
            )
            outcome = device.send(fax, on_page)
        except StaleTermError as exc:
            self._lost_term(exc)
            return
        except Exception as exc:
            if lost:
                return
            log.warning("send of %s on %s failed: %s", job.id, device.name, exc)
            outcome = SendOutcome(ok=False, pages_confirmed=0, reason=f"device error: {exc}", retryable=True)
        if lost:
            return
        try:
            done = self.spool.complete(job.id, term, outcome.ok, outcome.reason, outcome.retryable)
            if self.on_job is not None:
                self.on_job(done)
        except StaleTermError as exc:
            self._lost_term(exc)
        except JobStateError as exc:
            log.warning("could not complete %s: %s", job.id, exc)
