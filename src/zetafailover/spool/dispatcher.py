"""The dispatcher: in the active node, claims due jobs onto free device channels and runs them.

One worker thread per device channel. Each worker claims the next due job (term-fenced), hands it to
:meth:`FaxDevice.send` starting at the first unconfirmed page, records each confirmed page durably through
``on_page`` before the device goes on to the next page, and completes the job (sent / retry / failed).
A :class:`~zetafailover.errors.StaleTermError` anywhere means the node has lost its term: the dispatcher
stops claiming at once and records nothing more.

Spool faults and worker deaths (``docs/design/0009-spool-faults-and-worker-death.md``) never lose a job nor
complete one twice:

* a spool call that fails (``OSError``, a damaged file: anything but a stale term or a job-state conflict) is
  a *spool fault*. It is reported once (``spool_fault`` event); from then on the channels probe the spool
  together at most once per back-off (``poll_s`` doubling up to :attr:`Dispatcher.max_backoff_s`) instead of
  claiming, until a call succeeds (``spool_ok``);
* a job is *held* by its channel from its claim until its completion is recorded. A transmission interrupted
  by a spool fault (a page that could not be recorded ends the call) keeps the job held, in flight in the spool
  under this term: once the spool answers, the channel sends it again from its first unrecorded page, in the
  same attempt. A completion that fails is retried with the same outcome until it is recorded;
* a worker thread that dies (any exception escaping it, ``BaseException`` included) is replaced by the
  supervisor thread (``worker_died`` event); the replacement resumes the job the dead worker held from its
  first unrecorded page. A job interrupted :data:`MAX_STRIKES` times is completed as one failed try, so that
  neither a job nor a device that kills its worker every time can loop for ever;
* a held job the dispatcher stops with (the node stands down, or drains without resending) stays in flight in
  the spool, and the next takeover's recovery re-queues it (``failover``) from its first unconfirmed page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zetafailover.errors import SelfFencedError, StaleTermError
from zetafailover.interfaces import Clock, FaxDevice, OutboundFax, SendOutcome
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import IN_FLIGHT, Job, JobStateError

__all__ = ["MAX_STRIKES", "Dispatcher"]

log = logging.getLogger(__name__)

MAX_STRIKES = 5
"""Interruptions (spool faults mid-call, worker deaths) after which a job's attempt is completed as failed."""

_Key = tuple[int, int]
"""A channel: (index of the device, channel number)."""


@dataclass(slots=True)
class _Held:
    """A job a channel owns from its claim until its completion is recorded."""

    job: Job
    outcome: SendOutcome | None = None
    """None: (re)send from the first unrecorded page; else the outcome still to be recorded."""
    strikes: int = 0


class Dispatcher:
    """Runs the spool's outbound queue on ``devices`` for node ``node``.

    Timing: ``start`` returns at once (workers and a supervisor run in threads); ``stop`` blocks until every
    worker has finished its current call (as long as the device, or one spool call, takes); ``drain(timeout)``
    blocks at most ``timeout`` seconds. Idle workers poll the spool every ``poll_s`` seconds (real time) or when
    :meth:`wake` is called; while the spool fails, the channels probe it at most once per back-off. The
    properties never block (:attr:`pending` reads the spool; :attr:`pending_estimate` does not).
    Atomicity: each job is claimed by exactly one worker (the spool's claim is exclusive) and completed once;
    each page confirmation is durable before ``on_page`` returns to the device.
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
        on_event: Callable[..., object] | None = None,
    ) -> None:
        self.guard = guard
        """Asked right before every claim and every page record: may this node still act under the term?
        (The node's ``may_act``: its self-fence deadline.) The spool's term check covers the rest."""
        self.on_job = on_job
        """Called with the job after each completion (for the ``job_state_changed`` hook)."""
        self.on_event = on_event
        """Called as ``on_event(kind, term, **fields)`` for ``spool_fault``, ``spool_ok`` and ``worker_died``
        (the node's ``EventLog.emit``). An exception it raises is logged and ignored."""
        self.spool = spool
        self.devices = tuple(devices)
        self.node = node
        self.clock = clock
        self.poll_s = poll_s
        self.max_backoff_s = max(poll_s, 1.0)
        """The longest wait between two probes of a failing spool."""
        self.worker_deaths = 0
        """Worker threads that died and were replaced since this dispatcher was made."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._claiming = False
        self._running = False
        self._channels: dict[_Key, tuple[FaxDevice, int]] = {
            (i, ch): (dev, ch) for i, dev in enumerate(self.devices) for ch in range(max(1, dev.channels))
        }
        self._threads: dict[_Key, threading.Thread] = {}
        self._supervisor: threading.Thread | None = None
        self._held: dict[_Key, _Held] = {}
        self._died: dict[_Key, str] = {}
        self._term = 0
        self._stale = False
        self._spool_error = ""
        self._spool_failures = 0
        self._next_probe = 0.0
        self._pending = 0
        self._pending_unknown = False
        self._pending_at: float | None = None

    # ------------------------------------------------------------------------------------------ controls

    def start(self, term: int) -> None:
        """Begin claiming due jobs under ``term`` (one worker a channel, one supervisor). Idempotent while running."""
        with self._lock:
            if self._claiming:
                return
            self._term = term
            self._claiming = True
            self._running = True
            self._stale = False
            self._held.clear()
            self._died.clear()
            self._threads = {key: self._new_worker(key, term) for key in self._channels}
            self._supervisor = threading.Thread(
                target=self._supervise, args=(term,), name=f"dispatch-supervisor-{self.node}", daemon=True
            )
            threads = [*self._threads.values(), self._supervisor]
        for t in threads:
            t.start()

    def wake(self) -> None:
        """Make idle workers look at the queue now (e.g. after a local submit). Never blocks."""
        with self._wake:
            self._wake.notify_all()

    def stop(self) -> None:
        """Stop claiming, stop retrying completions, and wait for every worker to finish its current call.

        A job still held (its completion not recorded, or its resend not begun) stays in flight in the spool
        for the next takeover's recovery.
        """
        with self._wake:
            self._claiming = False
            self._running = False
            self._wake.notify_all()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join()
        for t in list(self._threads.values()):
            if t is not threading.current_thread():
                t.join()

    def halt(self) -> None:
        """Stop claiming new jobs (and resending interrupted ones); in-flight sends go on. Never blocks."""
        self._halt()

    @property
    def in_flight(self) -> int:
        """Jobs held by a live worker: being transmitted, or waiting for the spool to record their outcome."""
        with self._lock:
            return sum(1 for key in self._held if (t := self._threads.get(key)) is not None and t.is_alive())

    def drain(self, timeout: float) -> bool:
        """Stop claiming; let in-flight sends finish for up to ``timeout`` s. True if all finished."""
        self._halt()
        deadline = self.clock.monotonic() + max(0.0, timeout)
        for t in list(self._threads.values()):
            t.join(max(0.0, deadline - self.clock.monotonic()))
        return not any(t.is_alive() for t in self._threads.values())

    @property
    def activity(self) -> int:
        """Rises at each confirmed page, completed job and received page/fax (the hung-server check reads it)."""
        return self.spool.activity

    @property
    def pending(self) -> int:
        """Number of due jobs waiting in the spool (reads the queue index: blocks for one spool read)."""
        try:
            return self.spool.pending_count()
        except OSError:
            return 0

    @property
    def pending_estimate(self) -> int:
        """:attr:`pending` as last read by the supervisor (every ``poll_s`` while running). Never blocks.

        When that read failed the figure is at least 1: there may be work this node cannot even count, and the
        standby's hung-server check should see it waiting.
        """
        return max(self._pending, 1) if self._pending_unknown else self._pending

    @property
    def spool_problem(self) -> str:
        """The last spool fault while the spool is failing; "" when it works."""
        return self._spool_error

    @property
    def stale(self) -> bool:
        """True once a StaleTermError was seen: this node has lost its term."""
        return self._stale

    @property
    def claiming(self) -> bool:
        return self._claiming

    # -------------------------------------------------------------------------------------- supervision

    def _new_worker(self, key: _Key, term: int) -> threading.Thread:
        device, channel = self._channels[key]
        return threading.Thread(
            target=self._worker, args=(key, term), name=f"dispatch-{device.name}-{channel}", daemon=True
        )

    def _supervise(self, term: int) -> None:
        """Replace dead workers and refresh :attr:`pending_estimate`, every ``poll_s`` while claiming."""
        while True:
            with self._wake:
                if not self._claiming or self._supervisor is not threading.current_thread():
                    return
                dead = [key for key, t in self._threads.items() if key in self._died or not t.is_alive()]
            for key in dead:
                self._replace(key, term)
            self._refresh_pending()
            with self._wake:
                if not self._claiming or self._died:
                    continue
                self._wake.wait(self.poll_s)

    def _replace(self, key: _Key, term: int) -> None:
        old = self._threads[key]
        old.join(5.0)  # it is on its way out (the exception is unwinding); never wait for ever
        device, channel = self._channels[key]
        with self._wake:
            if not self._claiming:
                return
            why = self._died.pop(key, "") or "the worker thread ended"
            held = self._held.get(key)
            if held is not None:
                held.strikes += 1
                if held.strikes >= MAX_STRIKES and held.outcome is None:
                    held.outcome = SendOutcome(
                        False, held.job.pages_confirmed, f"worker died {held.strikes} times: {why}", retryable=True
                    )
            thread = self._new_worker(key, term)
            self._threads[key] = thread
            self.worker_deaths += 1
        job = held.job.id if held is not None else ""
        log.error(
            "dispatcher worker for %s channel %d died (%s) holding %s; restarting it",
            device.name,
            channel,
            why,
            job or "no job",
        )
        self._event("worker_died", term, device=device.name, channel=channel, job=job, error=why)
        thread.start()

    def _refresh_pending(self) -> None:
        now = time.monotonic()
        if self._pending_at is not None and now - self._pending_at < self.poll_s:
            return
        self._pending_at = now
        try:
            self._pending = self.spool.pending_count()
            self._pending_unknown = False
        except Exception:
            self._pending_unknown = True

    def _event(self, kind: str, term: int, **fields: object) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, term, **fields)
        except Exception:
            log.exception("the dispatcher's event callback failed for %s", kind)

    # ------------------------------------------------------------------------------------- spool health

    def _backoff(self) -> float:
        return min(self.poll_s * 2.0 ** min(max(self._spool_failures - 1, 0), 10), self.max_backoff_s)

    def _spool_failed(self, what: str, exc: BaseException, term: int) -> None:
        with self._wake:
            first = not self._spool_error
            self._spool_error = f"{what}: {type(exc).__name__}: {exc}"
            self._spool_failures += 1
            self._next_probe = max(self._next_probe, time.monotonic() + self._backoff())
        if first:
            log.warning("the spool fails on %s (%s: %s); probing it instead of claiming", self.node, what, exc)
            self._event("spool_fault", term, operation=what, error=f"{type(exc).__name__}: {exc}")

    def _spool_ok(self, term: int) -> None:
        if not self._spool_error:
            return
        with self._wake:
            was, failures = self._spool_error, self._spool_failures
            if not was:
                return
            self._spool_error = ""
            self._spool_failures = 0
            self._next_probe = 0.0
            self._wake.notify_all()
        log.warning("the spool works again on %s after %d failed calls", self.node, failures)
        self._event("spool_ok", term, failures=failures, last_error=was)

    def _probe_wait(self) -> bool:
        """While the spool fails: True after waiting (not this worker's turn to probe), False to go ahead."""
        with self._wake:
            if not self._spool_error:
                return False
            now = time.monotonic()
            if now >= self._next_probe:
                self._next_probe = now + self._backoff()  # this worker probes; the others wait for its answer
                return False
            if self._running:
                self._wake.wait(self._next_probe - now)
            return True

    def _idle(self, seconds: float) -> None:
        with self._wake:
            if self._claiming:
                self._wake.wait(seconds)

    # ------------------------------------------------------------------------------------------ workers

    def _halt(self) -> None:
        with self._wake:
            self._claiming = False
            self._wake.notify_all()

    def _lost_term(self, exc: StaleTermError) -> None:
        log.warning("dispatcher on %s stops claiming: %s", self.node, exc)
        self._stale = True
        self._halt()

    def _release(self, key: _Key) -> None:
        with self._wake:
            self._held.pop(key, None)

    def _worker(self, key: _Key, term: int) -> None:
        try:
            self._work(key, term)
        except BaseException as exc:
            with self._wake:
                self._died[key] = f"{type(exc).__name__}: {exc}"
                self._wake.notify_all()
            raise

    def _work(self, key: _Key, term: int) -> None:
        device, _channel = self._channels[key]
        while True:
            held = self._held.get(key)
            if held is not None and held.outcome is not None:
                if not self._running:
                    break
                if not self._probe_wait():
                    self._complete(key, held, term)
                continue
            if not self._claiming:
                break
            if self.guard is not None and not self.guard(term):
                self._idle(self.poll_s)
                continue
            if self._probe_wait():
                continue
            if held is not None:
                self._resume(key, device, held, term)
                continue
            try:
                job = self.spool.claim(term, device.name)
            except StaleTermError as exc:
                self._lost_term(exc)
                break
            except Exception as exc:
                self._spool_failed("claim", exc, term)
                continue
            self._spool_ok(term)
            if job is None:
                self._idle(self.poll_s)
                continue
            held = _Held(job)
            with self._wake:
                self._held[key] = held
            self._attempt(key, device, held, term)
        left = self._held.get(key)
        if left is not None:
            log.warning(
                "dispatcher on %s stops with job %s in flight; the next takeover's recovery re-queues it",
                self.node,
                left.job.id,
            )
            self._release(key)

    def _resume(self, key: _Key, device: FaxDevice, held: _Held, term: int) -> None:
        """Send a held job again from its first unrecorded page (after a spool fault or a worker's death)."""
        try:
            job = self.spool.get(held.job.id)
        except Exception as exc:
            self._spool_failed("get", exc, term)
            return
        self._spool_ok(term)
        if job.state not in IN_FLIGHT or job.term != term:
            log.warning("held job %s is %s under term %d now; nothing to resume", job.id, job.state, job.term)
            self._release(key)
            return
        held.job = job
        log.warning("resuming job %s on %s from page %d", job.id, device.name, job.pages_confirmed + 1)
        self._attempt(key, device, held, term)

    def _attempt(self, key: _Key, device: FaxDevice, held: _Held, term: int) -> None:
        job = held.job
        lost = False
        interrupted: Exception | None = None

        def on_page(index: int) -> None:
            nonlocal lost, interrupted
            if interrupted is not None:
                raise RuntimeError(f"page {index} of {job.id} not recorded: the spool failed on an earlier page")
            if self.guard is not None and not self.guard(term):
                lost = True
                raise SelfFencedError(term, f"recording page {index} of {job.id}")
            try:
                self.spool.page_confirmed(job.id, index, term)
            except StaleTermError as exc:
                lost = True
                self._lost_term(exc)
                raise
            except JobStateError:
                raise
            except Exception as exc:
                interrupted = exc
                self._spool_failed("page_confirmed", exc, term)
                raise
            self._spool_ok(term)

        try:
            document = self.spool.document_path(job.id)
        except Exception as exc:
            self._spool_failed("document_path", exc, term)
            return  # still held: resumed once the spool answers
        fax = OutboundFax(
            job_id=job.id,
            number=job.number,
            pages=(str(document),),
            first_page=job.pages_confirmed,
            term=term,
            page_count=job.pages,
        )
        try:
            outcome = device.send(fax, on_page)
        except StaleTermError as exc:
            self._lost_term(exc)
            self._release(key)
            return
        except Exception as exc:
            if lost:
                self._release(key)
                return
            if interrupted is None:
                log.warning("send of %s on %s failed: %s", job.id, device.name, exc)
                outcome = SendOutcome(
                    ok=False, pages_confirmed=job.pages_confirmed, reason=f"device error: {exc}", retryable=True
                )
        if lost:
            self._release(key)
            return
        if interrupted is not None:  # the call ended (or the device carried on) without its pages recorded
            held.strikes += 1
            if held.strikes < MAX_STRIKES:
                return  # still held: resumed from the first unrecorded page once the spool answers
            outcome = SendOutcome(
                False, job.pages_confirmed, f"interrupted {held.strikes} times: {interrupted}", retryable=True
            )
        held.outcome = outcome
        self._complete(key, held, term)

    def _complete(self, key: _Key, held: _Held, term: int) -> None:
        outcome = held.outcome
        assert outcome is not None
        try:
            done = self.spool.complete(held.job.id, term, outcome.ok, outcome.reason, outcome.retryable)
        except StaleTermError as exc:
            self._lost_term(exc)
            self._release(key)
            return
        except JobStateError as exc:
            log.warning("could not complete %s: %s", held.job.id, exc)
            self._release(key)
            return
        except Exception as exc:
            self._spool_failed("complete", exc, term)
            return  # still held: the same outcome is recorded once the spool answers
        self._spool_ok(term)
        self._release(key)
        if self.on_job is not None:
            try:
                self.on_job(done)
            except Exception:
                log.exception("the job callback failed for %s", done.id)
