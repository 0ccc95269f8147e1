"""The directory spool: the durable fax queue on a (shared) folder.

Layout (see docs/spool.md)::

    <root>/term            the spool's current term, JSON, replaced atomically (``_atomic.atomic_write``)
    <root>/term.lock       lock file: shared by every transition, exclusive for ``advance_term``
    <root>/term.gate       turnstile in front of term.lock, so a takeover is never starved by busy transitions
    <root>/jobs/<id>/      one folder a job: document.tif + log (one record a transition, see records.py)
    <root>/queue/<due>-<id>   marker: job is queued / waiting to retry (due = wall-clock ms); the claim index
    <root>/inflight.slots  slot table: jobs that are (or may be) dialing/sending; the recovery index
    <root>/inbound/<id>/   one folder a received fax: page-0001.tif … + log
    <root>/receiving/<id>  marker: fax being received; the inbound recovery index

Durability: every method that changes state returns only after the change is on stable storage (new files
and their folders fsynced; appends to preallocated logs and slots fdatasynced).

Term fencing: every transition holds the term lock *shared* while it checks the term and
writes; ``advance_term`` holds it *exclusive* while it raises the term — so a transition either completes
before the new term exists or sees it and raises :class:`StaleTermError`. Transitions of different jobs run
in parallel (their fsyncs share journal commits); transitions of one job are serialised by an exclusive
``flock`` on the job's folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from zetafailover._atomic import atomic_write, read_regular_file
from zetafailover._flock import lock
from zetafailover.clock import SystemClock
from zetafailover.errors import StaleTermError, ValidationError, ZetafailoverError
from zetafailover.interfaces import Clock
from zetafailover.spool import records as rec
from zetafailover.spool.jobs import (
    DUE,
    IN_FLIGHT,
    TERMINAL,
    HistoryEntry,
    Inbound,
    InboundState,
    Job,
    JobState,
    JobStateError,
    SubmitOptions,
    UnknownJobError,
    new_id,
    page_name,
    validate_id,
)
from zetafailover.spool.layout import (
    _INBOUND,
    _INFLIGHT_TABLE,
    _JOBS,
    _QUEUE,
    _RECEIVING,
    _TERM,
    _TERM_GATE,
    _TERM_LOCK,
    DOCUMENT_NAME,
    DUE_NOW,
    QUEUED,
    RETRY,
    SKEW_GUARD_S,
    _marker,
    _marker_parts,
)
from zetafailover.spool.numbers import validate_number
from zetafailover.spool.recovery import recover as _recover
from zetafailover.spool.tiff import DEFAULT_MAX_PAGES, MAX_DOCUMENT_BYTES, validate_tiff_bytes

__all__ = ["DOCUMENT_NAME", "DirectorySpool", "SpoolCorruptError"]

_logger = logging.getLogger(__name__)


class SpoolCorruptError(ZetafailoverError):
    """A spool file that must be trustworthy (the term file, a job folder) is damaged or was replaced."""


class DirectorySpool:
    """A durable fax spool in the folder ``root`` (created if missing), used by node ``node``.

    Timing: every state-changing method blocks for its syncs — ``submit`` for fsyncs of the new document
    and names (journal commits) then one ``fdatasync``; claim, page confirmation and completion for one or
    two ``fdatasync`` of preallocated blocks (a cache flush, no journal commit; ~0.1–0.3 ms on a local disk,
    more on a network share) and for the term lock, which is held only for the duration of one
    transition (``advance_term`` waits for running transitions to finish). Reads never take the term lock.
    Atomicity: each transition is atomic (one new record file appears complete or not at all) and
    term-fenced; ``submit`` is atomic (a job exists only once its first record does). Thread-safe and
    multi-process-safe (``flock``); several handles on one folder may be used at once.
    """

    def __init__(
        self, root: Path, *, node: str, clock: Clock | None = None, max_pages: int = DEFAULT_MAX_PAGES
    ) -> None:
        self.root = Path(root)
        self.node = node
        self.clock: Clock = clock or SystemClock()
        self.max_pages = max_pages
        self._activity = 0
        self._activity_lock = threading.Lock()
        self.on_received: Callable[[Inbound], None] | None = None
        """Called with the fax after a reception ends (received or partial), outside every lock; for the
        ``fax_received`` hook. An exception it raises is logged and ignored."""
        self.root.mkdir(mode=rec.DIR_MODE, parents=True, exist_ok=True)
        created = False
        for sub in (_JOBS, _QUEUE, _INBOUND, _RECEIVING):
            p = self.root / sub
            try:
                os.mkdir(p, rec.DIR_MODE)
            except FileExistsError:
                st = os.lstat(p)
                if not stat.S_ISDIR(st.st_mode):
                    raise SpoolCorruptError(
                        f"{p}: expected a folder, found something else (a planted symlink?)"
                    ) from None
            else:
                created = True
        self._inflight = rec.InflightTable(self.root / _INFLIGHT_TABLE)
        try:
            created = self._inflight.create() or created
        except OSError as exc:
            raise SpoolCorruptError(f"{self.root / _INFLIGHT_TABLE}: cannot create it ({exc})") from None
        if created:
            with self._dir() as root_fd:
                os.fsync(root_fd)

    # ------------------------------------------------------------------------------------------ plumbing

    @property
    def activity(self) -> int:
        """Progress counter of this handle: rises at each confirmed page, completed job, received page/fax."""
        return self._activity

    def _bump(self) -> None:
        with self._activity_lock:
            self._activity += 1

    @contextlib.contextmanager
    def _dir(self, *parts: str) -> Iterator[int]:
        fd = rec.open_dir(self.root.joinpath(*parts))
        try:
            yield fd
        finally:
            os.close(fd)

    def current_term(self) -> int:
        """The spool's current term (0 for a new spool). Reads one small file; never blocks on locks."""
        path = self.root / _TERM
        try:
            raw = read_regular_file(path, 4096)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SpoolCorruptError(f"{path} is a symlink; refusing to trust it") from None
            raise
        except ValueError as exc:
            raise SpoolCorruptError(f"{path}: {exc}") from None
        try:
            term = json.loads(raw)["term"]
        except (ValueError, KeyError, TypeError):
            raise SpoolCorruptError(f"{path}: not a valid term record") from None
        if isinstance(term, bool) or not isinstance(term, int) or term < 0:
            raise SpoolCorruptError(f"{path}: term {term!r} is not a whole number")
        return term

    @contextlib.contextmanager
    def _term_lock(self, exclusive: bool) -> Iterator[None]:
        """The term lock, with writer preference.

        ``flock`` alone lets a steady stream of shared holders starve an exclusive waiter (a takeover would
        wait for the old active to go idle), so every locker first passes a turnstile (``term.gate``, taken
        exclusively): a transition holds it only while it takes the shared lock; ``advance_term`` holds it
        until it has the exclusive lock, so no new transition slips in ahead of a waiting takeover.
        """
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        gate = os.open(self.root / _TERM_GATE, os.O_RDWR | os.O_CREAT | nofollow, 0o644)
        try:
            fd = os.open(self.root / _TERM_LOCK, os.O_RDWR | os.O_CREAT | nofollow, 0o644)
        except BaseException:
            os.close(gate)
            raise
        try:
            try:
                lock(gate)
                lock(fd, exclusive=exclusive)
            finally:
                os.close(gate)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _fenced(self, term: int, what: str) -> Iterator[int]:
        """Hold the term lock shared and check ``term``; yields the current term."""
        _check_term_value(term)
        with self._term_lock(exclusive=False):
            current = self.current_term()
            if term < current:
                raise StaleTermError(term, current, what)
            yield current

    @contextlib.contextmanager
    def _locked(self, kind: str, item_id: str, *, wait: bool = True) -> Iterator[int]:
        """Open ``<kind>/<id>`` without following symlinks and hold its exclusive flock; yields the dir fd.

        With ``wait=False`` raises :class:`BlockingIOError` at once if another transition holds the flock.
        """
        with self._open_item(kind, item_id) as fd:
            lock(fd, wait=wait)  # released when the descriptor is closed
            yield fd

    @contextlib.contextmanager
    def _log(
        self, kind: str, item_id: str, *, wait: bool = True
    ) -> Iterator[tuple[rec.RecordLog | None, dict[str, Any] | None, int]]:
        """Hold ``<kind>/<id>``'s flock and open its log for appending; yields (log, latest body, dir fd)."""
        with self._locked(kind, item_id, wait=wait) as fd, rec.RecordLog.open(fd, writable=True) as log:
            yield log, (log.latest() if log is not None else None), fd

    # ------------------------------------------------------------------------------------------------ term

    def advance_term(self, term: int) -> None:
        """Raise the spool's term to ``term`` (a node that has just won ``term`` calls this first).

        Atomicity: holds the term lock exclusively, so it waits for running transitions and no transition
        with a lower term can start afterwards. Idempotent for the current term; raises
        :class:`StaleTermError` when the spool already has a higher term. Timing: one atomic write (2 fsyncs).
        """
        _check_term_value(term)
        with self._term_lock(exclusive=True):
            current = self.current_term()
            if term < current:
                raise StaleTermError(term, current, "advance_term")
            if term == current:
                return
            data = json.dumps({"term": term, "node": self.node, "at": self.clock.wall()}).encode() + b"\n"
            atomic_write(self.root / _TERM, data)

    # ------------------------------------------------------------------------------------------- outbound

    def submit(self, document: Path, number: str, options: SubmitOptions | None = None) -> str:
        """Accept an outbound fax; return its job id once the job and a copy of its document are durable.

        The number and the document are validated first; on any error nothing is written. Not term-fenced
        (a user's submission is accepted by any node). Timing: fsyncs of the document and of three folders
        (the new names), then one ``fdatasync`` of the first record.
        """
        opts = options or SubmitOptions()
        dialled = validate_number(number)
        src = Path(document)
        data = _read_document(src)
        info = validate_tiff_bytes(data, str(src), max_pages=self.max_pages)
        now = self.clock.wall()

        def first_record(job_id: str) -> dict[str, Any]:
            return {
                "kind": "job",
                "id": job_id,
                "state": str(JobState.QUEUED),
                "number": dialled,
                "pages": info.page_count,
                "pages_confirmed": 0,
                "attempts": 0,
                "failures": 0,
                "options": _options_json(opts),
                "term": 0,
                "node": self.node,
                "device": "",
                "reason": "",
                "why": "submitted" + (f" by {opts.submitter}" if opts.submitter else ""),
                "submitted_at": now,
                "at": now,
                "next_try_at": DUE_NOW,
            }

        return self._create_item(
            _JOBS,
            "J",
            now,
            index=_QUEUE,
            entry=lambda job_id: _marker(QUEUED, now, job_id),
            first_record=first_record,
            document=data,
        )

    def claim(self, term: int, device: str) -> Job | None:
        """Take the next due job (queued, or retry_wait whose time has come) into ``dialing`` for ``device``.

        Term-fenced (raises :class:`StaleTermError`). Atomicity: a job is claimed by exactly one caller (job
        flock + state check). Timing: lists the queue index (linear in the number of queued jobs) and writes
        one record. Returns None when nothing is due.
        """
        with self._fenced(term, "claim"):
            now = self.clock.wall()
            with self._dir(_QUEUE) as q_fd:
                names = sorted(os.listdir(q_fd))
                for name in names:
                    parts = _marker_parts(name)
                    if parts is None:
                        continue
                    kind, due_ms, job_id = parts
                    ahead_s = due_ms / 1000 - now
                    if kind == RETRY and 0 < ahead_s <= SKEW_GUARD_S:
                        break  # a retry whose time has not come (retries sort by due time): nothing later is due
                    # due, or so far ahead that a clock ahead of ours wrote it: _try_claim decides by the job
                    job = self._try_claim(job_id, name, q_fd, term=term, device=device, now=now)
                    if job is not None:
                        return job
        return None

    def _try_claim(self, job_id: str, marker: str, q_fd: int, *, term: int, device: str, now: float) -> Job | None:
        try:
            # Never wait for a job another transition holds: a concurrent claimer is taking it (or it is in
            # flight, or being cancelled); if it is still due afterwards, a later claim finds it.
            with self._log(_JOBS, job_id, wait=False) as (log, body, _fd):
                state = body.get("state") if body is not None else None
                if state in TERMINAL:
                    rec.remove_entry(q_fd, marker)  # stale index entry (sent, failed, cancelled)
                    return None
                if body is None:
                    # A submit in progress writes the marker just before the record, so an entry without a record
                    # is skipped, never removed: its age cannot be judged without trusting some node's wall
                    # clock, and removing a live submit's entry would strand the job. A submit killed in between
                    # leaves a harmless orphan (no acknowledged job is behind it).
                    return None
                if state not in DUE:
                    return None  # in flight: its completion may be about to re-queue it under this very entry
                next_try = float(body.get("next_try_at", 0))
                max_delay = float(body.get("options", {}).get("max_delay_s", 0) or 0)
                if next_try > now and next_try - now <= max(max_delay, SKEW_GUARD_S):
                    return None  # a retry not yet due (beyond that, its due time came from a clock ahead of ours)
                new = dict(body)
                new.update(
                    state=str(JobState.DIALING),
                    attempts=int(body["attempts"]) + 1,
                    term=term,
                    node=self.node,
                    device=device,
                    reason="",
                    why=f"claimed by {self.node} for {device}, from page {int(body['pages_confirmed']) + 1}",
                    at=now,
                )
                assert log is not None
                self._inflight.add(job_id)  # durable before the record that puts the job in flight
                log.append(new)
                rec.remove_entry(q_fd, marker)
                return self._job(new)
        except BlockingIOError:
            return None
        except ValidationError:  # the job folder vanished or was replaced by a symlink: drop the index entry
            rec.remove_entry(q_fd, marker)
            return None

    def page_confirmed(self, job_id: str, page_index: int, term: int) -> Job:
        """Record durably that the receiver confirmed zero-based page ``page_index`` of an in-flight job.

        Term-fenced. Idempotent for a page already recorded; a page out of order raises
        :class:`JobStateError`. For a job cancelled meanwhile, records nothing. Timing: one record write.
        """
        with self._fenced(term, "page_confirmed"), self._log(_JOBS, job_id) as (log, body, _fd):
            job = self._require(body, job_id)
            if job.state == JobState.CANCELLED:
                return job
            if job.state not in IN_FLIGHT:
                raise JobStateError(f"job {job_id} is {job.state}, not in flight; page {page_index} not recorded")
            if job.term != term:
                raise JobStateError(f"job {job_id} was claimed under term {job.term}, not {term}")
            if isinstance(page_index, bool) or not isinstance(page_index, int) or not 0 <= page_index < job.pages:
                raise ValidationError(f"page index {page_index!r} is not a page of job {job_id} (0…{job.pages - 1})")
            if page_index < job.pages_confirmed:
                return job
            if page_index > job.pages_confirmed:
                raise JobStateError(
                    f"job {job_id}: page {page_index} confirmed before page {job.pages_confirmed}; not recorded"
                )
            assert body is not None
            new = dict(body)
            new.update(
                state=str(JobState.SENDING),
                pages_confirmed=page_index + 1,
                why=f"page {page_index + 1} of {job.pages} confirmed",
                at=self.clock.wall(),
            )
            assert log is not None
            log.append(new)
        self._bump()
        return self._job(new)

    def complete(self, job_id: str, term: int, ok: bool, reason: str = "", retryable: bool = True) -> Job:
        """End the in-flight attempt: ``sent``, or ``retry_wait`` (backoff) while tries remain, else ``failed``.

        Term-fenced. Idempotent on a job already in a terminal state (returns it unchanged). Timing: one
        record write (plus the queue marker for a retry).
        """
        reason = _clean_reason(reason)
        with self._fenced(term, "complete"), self._log(_JOBS, job_id) as (log, body, job_fd):
            job = self._require(body, job_id)
            if job.state in TERMINAL:
                return job
            if job.state not in IN_FLIGHT:
                raise JobStateError(f"job {job_id} is {job.state}, not in flight; cannot complete it")
            if job.term != term:
                raise JobStateError(f"job {job_id} was claimed under term {job.term}, not {term}")
            assert body is not None
            assert log is not None
            now = self.clock.wall()
            new = dict(body)
            new.update(at=now, term=term, node=self.node)
            if ok:
                new.update(state=str(JobState.SENT), pages_confirmed=job.pages, reason="", why="sent")
                log.append(new)
            else:
                failures = job.failures + 1
                new.update(failures=failures, reason=reason or "failed")
                if retryable and failures < job.options.max_attempts:
                    due = now + job.options.delay_after(failures)
                    new.update(
                        state=str(JobState.RETRY_WAIT),
                        next_try_at=due,
                        why=f"try {failures} of {job.options.max_attempts} failed: {reason or 'failed'}; retry later",
                    )
                    with self._dir(_QUEUE) as q_fd:
                        rec.link_entry(job_fd, q_fd, _marker(RETRY, due, job_id))
                        os.fsync(q_fd)  # the queue entry is durable before the record that needs it
                    log.append(new)
                else:
                    why = "not retryable" if not retryable else f"no tries left ({failures})"
                    new.update(state=str(JobState.FAILED), why=f"failed ({why}): {reason or 'failed'}")
                    log.append(new)
            self._inflight.remove(job_id)
        self._bump()
        return self._job(new)

    def cancel(self, job_id: str, why: str = "cancelled by user") -> Job:
        """Cancel a job that has not ended: it becomes ``cancelled`` and is never (re)tried.

        A call already in progress is not interrupted (a device cannot be stopped mid-page through the
        interface); its later page and completion reports are ignored. Idempotent for a cancelled job;
        raises :class:`JobStateError` for a job that is already sent or failed. Not term-fenced (a user action).
        """
        with self._log(_JOBS, job_id) as (log, body, _fd):
            job = self._require(body, job_id)
            if job.state == JobState.CANCELLED:
                return job
            if job.state in TERMINAL:
                raise JobStateError(f"job {job_id} is already {job.state}; it cannot be cancelled")
            assert body is not None
            assert log is not None
            new = dict(body)
            new.update(state=str(JobState.CANCELLED), why=_clean_reason(why), at=self.clock.wall(), node=self.node)
            log.append(new)
            self._inflight.remove(job_id)
        return self._job(new)

    def get(self, job_id: str) -> Job:
        """The job's current snapshot. Raises :class:`UnknownJobError` / :class:`ValidationError` for bad ids."""
        with self._open_item(_JOBS, job_id) as fd:
            _top, body = rec.latest_record(fd)
            return self._require(body, job_id)

    def history(self, job_id: str) -> list[HistoryEntry]:
        """Every transition of a job (or of an inbound fax, given its id), oldest first."""
        kind = _INBOUND if validate_id(job_id, "id").startswith("R") else _JOBS
        with self._open_item(kind, job_id) as fd:
            out = [
                HistoryEntry(
                    seq=int(b["seq"]),
                    state=str(b["state"]),
                    term=int(b["term"]),
                    node=str(b["node"]),
                    at=float(b["at"]),
                    why=str(b.get("why", "")),
                    pages_confirmed=int(b.get("pages_confirmed", b.get("pages", 0))),
                )
                for b in rec.read_all_records(fd)
            ]
        if not out:
            raise UnknownJobError(f"id {job_id!r}: no such job or fax in {self.root}")
        return out

    def jobs(self, state: JobState | str | None = None) -> list[Job]:
        """Every job (optionally only those in ``state``), oldest first. Linear in the number of jobs."""
        want = JobState(state) if state is not None else None
        out: list[Job] = []
        with self._dir(_JOBS) as jobs_fd:
            for name in sorted(os.listdir(jobs_fd)):
                try:
                    validate_id(name)
                    fd = rec.open_dir(name, dir_fd=jobs_fd)
                except (ValidationError, OSError):
                    continue
                try:
                    _top, body = rec.latest_record(fd)
                finally:
                    os.close(fd)
                if body is None:
                    continue  # an interrupted submit: never acknowledged
                job = self._job(body)
                if want is None or job.state == want:
                    out.append(job)
        return out

    def pending_count(self) -> int:
        """How many queue entries are due now (cheap: lists the queue index only)."""
        limit = round(self.clock.wall() * 1000)
        with self._dir(_QUEUE) as q_fd:
            return sum(
                1 for n in os.listdir(q_fd) if (p := _marker_parts(n)) is not None and (p[0] == QUEUED or p[1] <= limit)
            )

    def document_path(self, job_id: str) -> Path:
        """Where the spool keeps the job's document (a regular file; never a symlink)."""
        path = self.root / _JOBS / validate_id(job_id) / DOCUMENT_NAME
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ValidationError(f"{path} is not a regular file (a planted symlink?); refusing to send it")
        return path

    # -------------------------------------------------------------------------------------------- inbound

    def begin_receive(self, device: str, caller: str, term: int) -> str:
        """Start storing an incoming fax; returns its inbound id. Term-fenced. Durable when it returns."""
        device, caller = _clean_label(device, "device"), _clean_label(caller, "caller")
        with self._fenced(term, "begin_receive"):
            now = self.clock.wall()

            def first_record(fax_id: str) -> dict[str, Any]:
                return {
                    "kind": "inbound",
                    "id": fax_id,
                    "state": str(InboundState.RECEIVING),
                    "device": device,
                    "caller": caller,
                    "pages": 0,
                    "term": term,
                    "node": self.node,
                    "reason": "",
                    "why": f"call from {caller or 'unknown'} answered on {device}",
                    "started_at": now,
                    "at": now,
                }

            return self._create_item(
                _INBOUND, "R", now, index=_RECEIVING, entry=lambda fax_id: fax_id, first_record=first_record
            )

    def receive_page(self, inbound_id: str, page_bytes: bytes, term: int) -> int:
        """Store one received page durably; returns the page count. Only then may the driver confirm (MCF).

        The bytes are kept as they came (a TIFF-F page is expected; anything else is kept too, never lost).
        Term-fenced. Timing: two small fsync rounds (page file, record).
        """
        if not isinstance(page_bytes, bytes | bytearray):
            raise ValidationError(f"page of {inbound_id}: expected bytes, not {type(page_bytes).__name__}")
        with self._fenced(term, "receive_page"), self._log(_INBOUND, inbound_id) as (log, body, fd):
            fax = self._require_inbound(body, inbound_id)
            if fax.state != InboundState.RECEIVING:
                raise JobStateError(f"fax {inbound_id} is {fax.state}; no more pages can be added")
            name = page_name(fax.pages)
            with contextlib.suppress(FileNotFoundError):  # a page left by a writer killed before its record
                os.unlink(name, dir_fd=fd)
            rec.write_new_file(fd, name, bytes(page_bytes))  # fsynced
            os.fsync(fd)  # its name too, before the record that counts it
            assert body is not None
            assert log is not None
            new = dict(body)
            new.update(pages=fax.pages + 1, why=f"page {fax.pages + 1} received", at=self.clock.wall(), term=term)
            log.append(new)
        self._bump()
        return fax.pages + 1

    def finish_receive(self, inbound_id: str, complete: bool, term: int, reason: str = "") -> Inbound:
        """End a reception: ``received`` (complete, at least one page) or ``partial`` — never deleted.

        Term-fenced; idempotent on a fax already finished.
        """
        with self._fenced(term, "finish_receive"), self._log(_INBOUND, inbound_id) as (log, body, _fd):
            fax = self._require_inbound(body, inbound_id)
            if fax.state != InboundState.RECEIVING:
                return fax
            assert body is not None
            assert log is not None
            ok = complete and fax.pages > 0
            state = InboundState.RECEIVED if ok else InboundState.PARTIAL
            why = "received" if ok else f"partial: {_clean_reason(reason) or 'call ended early'}"
            new = dict(body)
            new.update(state=str(state), why=why, reason="" if ok else why, at=self.clock.wall(), term=term)
            log.append(new)
            with self._dir(_RECEIVING) as r_fd:
                rec.remove_entry(r_fd, inbound_id)
        self._bump()
        done = self._inbound(new)
        if self.on_received is not None:
            try:
                self.on_received(done)
            except Exception:
                _logger.exception("on_received callback failed for %s", inbound_id)
        return done

    def fax_received(self, device: str, caller: str, pages: Sequence[bytes], complete: bool, term: int) -> str:
        """:class:`~zetafailover.interfaces.InboundSink`: store a whole received fax; returns its id."""
        fax_id = self.begin_receive(device, caller, term)
        for page in pages:
            self.receive_page(fax_id, page, term)
        self.finish_receive(fax_id, complete, term)
        return fax_id

    def received(self, state: InboundState | str | None = None) -> list[Inbound]:
        """Every inbound fax (optionally only in ``state``), oldest first."""
        want = InboundState(state) if state is not None else None
        out: list[Inbound] = []
        with self._dir(_INBOUND) as in_fd:
            for name in sorted(os.listdir(in_fd)):
                try:
                    validate_id(name, "inbound id")
                    fd = rec.open_dir(name, dir_fd=in_fd)
                except (ValidationError, OSError):
                    continue
                try:
                    _top, body = rec.latest_record(fd)
                finally:
                    os.close(fd)
                if body is None:
                    continue
                fax = self._inbound(body)
                if want is None or fax.state == want:
                    out.append(fax)
        return out

    def get_inbound(self, inbound_id: str) -> Inbound:
        """One inbound fax's current snapshot."""
        with self._open_item(_INBOUND, inbound_id) as fd:
            _top, body = rec.latest_record(fd)
            return self._require_inbound(body, inbound_id)

    # ------------------------------------------------------------------------------------------- recovery

    def recover(self, term: int) -> list[str]:
        """After winning ``term``: re-queue jobs left in flight by older terms; mark old receptions partial.

        See :mod:`zetafailover.spool.recovery`. Term-fenced. Cost grows with the number of in-flight jobs
        and receptions (it reads only the in-flight indexes), never with the queue size. Idempotent.
        Returns the ids of the re-queued jobs.
        """
        return _recover(self, term)

    # ------------------------------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _open_item(self, kind: str, item_id: str) -> Iterator[int]:
        what = "job id" if kind == _JOBS else "inbound id"
        validate_id(item_id, what)
        path = self.root / kind / item_id
        try:
            fd = rec.open_dir(path)
        except FileNotFoundError:
            raise UnknownJobError(
                f"{what} {item_id!r}: no such {'job' if kind == _JOBS else 'fax'} in {self.root}"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ValidationError(f"{path} is not a real folder (a planted symlink?); refusing to use it") from None
            raise
        try:
            yield fd
        finally:
            os.close(fd)

    def _create_item(
        self,
        kind: str,
        prefix: str,
        now: float,
        *,
        index: str,
        entry: Callable[[str], str],
        first_record: Callable[[str], dict[str, Any]],
        document: bytes | None = None,
    ) -> str:
        """Create a new job or inbound fax under ``kind`` durably, listed in ``index`` as ``entry(id)``.

        The folder is invisible until its log holds an intact first record, so nothing needs a temporary
        name: the document (if any), the still empty preallocated log and the index entry (a hard link to the
        log) are written in place; then the document and every new name are made durable (fsync of the
        document, the index folder, the item's folder and ``kind``), so the index entry is durable before the
        record that needs it and a job whose first record is on disk has its document on disk; only then the
        first record is written and synced (``fdatasync``). Returns the new id.
        """
        with self._dir(kind) as parent_fd:
            item_id = _make_item_dir(parent_fd, prefix, now)
            item_fd = rec.open_dir(item_id, dir_fd=parent_fd)
            try:
                if document is not None:
                    rec.write_new_file(item_fd, DOCUMENT_NAME, document, durable=False)
                log_fd = rec.create_log(item_fd, None)
                try:
                    with self._dir(index) as index_fd:
                        rec.link_entry(item_fd, index_fd, entry(item_id))
                        if document is not None:
                            doc_fd = os.open(DOCUMENT_NAME, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=item_fd)
                            try:
                                os.fsync(doc_fd)
                            finally:
                                os.close(doc_fd)
                        os.fsync(index_fd)
                    os.fsync(item_fd)
                    os.fsync(parent_fd)
                    rec.RecordLog.fresh(log_fd).append(first_record(item_id))
                finally:
                    os.close(log_fd)
            finally:
                os.close(item_fd)
        return item_id

    def _require(self, body: dict[str, Any] | None, job_id: str) -> Job:
        if body is None or body.get("kind") != "job" or body.get("id") != job_id:
            raise UnknownJobError(f"job id {job_id!r}: no such job in {self.root} (no intact record)")
        return self._job(body)

    def _require_inbound(self, body: dict[str, Any] | None, fax_id: str) -> Inbound:
        if body is None or body.get("kind") != "inbound" or body.get("id") != fax_id:
            raise UnknownJobError(f"inbound id {fax_id!r}: no such fax in {self.root} (no intact record)")
        return self._inbound(body)

    def _job(self, b: dict[str, Any]) -> Job:
        o = b.get("options", {})
        opts = SubmitOptions(
            max_attempts=int(o.get("max_attempts", 3)),
            retry_delay_s=float(o.get("retry_delay_s", 300.0)),
            backoff=float(o.get("backoff", 2.0)),
            max_delay_s=float(o.get("max_delay_s", 3600.0)),
            submitter=str(o.get("submitter", "")),
        )
        return Job(
            id=str(b["id"]),
            state=JobState(b["state"]),
            number=str(b["number"]),
            pages=int(b["pages"]),
            pages_confirmed=int(b["pages_confirmed"]),
            attempts=int(b["attempts"]),
            failures=int(b["failures"]),
            max_attempts=opts.max_attempts,
            term=int(b["term"]),
            node=str(b["node"]),
            device=str(b["device"]),
            reason=str(b["reason"]),
            submitted_at=float(b["submitted_at"]),
            updated_at=float(b["at"]),
            next_try_at=float(b["next_try_at"]),
            seq=int(b["seq"]),
            document=self.root / _JOBS / str(b["id"]) / DOCUMENT_NAME,
            options=opts,
        )

    def _inbound(self, b: dict[str, Any]) -> Inbound:
        return Inbound(
            id=str(b["id"]),
            state=InboundState(b["state"]),
            device=str(b["device"]),
            caller=str(b["caller"]),
            pages=int(b["pages"]),
            term=int(b["term"]),
            node=str(b["node"]),
            reason=str(b["reason"]),
            started_at=float(b["started_at"]),
            updated_at=float(b["at"]),
            seq=int(b["seq"]),
            folder=self.root / _INBOUND / str(b["id"]),
        )

    def _bulk_create_queued(self, document: Path, number: str, count: int) -> list[str]:
        """BENCHMARK ONLY: create ``count`` queued jobs quickly, **without fsync** and sharing one document
        (hard links). Not durable, not for production; used to build a 100,000-job queue for the recovery
        benchmark in seconds."""
        data = _read_document(Path(document))
        info = validate_tiff_bytes(data, str(document), max_pages=self.max_pages)
        dialled = validate_number(number)
        now = self.clock.wall()
        shared = self.root / ".bench-document-0.tif"
        shared.write_bytes(data)
        ids: list[str] = []
        with self._dir(_JOBS) as jobs_fd, self._dir(_QUEUE) as q_fd:
            for n in range(count):
                if n and n % 50_000 == 0:  # file systems cap hard links per file (ext4: 65,000)
                    shared = self.root / f".bench-document-{n}.tif"
                    shared.write_bytes(data)
                job_id = new_id("J", now)
                os.mkdir(job_id, rec.DIR_MODE, dir_fd=jobs_fd)
                os.link(shared, self.root / _JOBS / job_id / DOCUMENT_NAME)
                body = {
                    "kind": "job", "id": job_id, "state": "queued", "number": dialled, "pages": info.page_count,
                    "pages_confirmed": 0, "attempts": 0, "failures": 0, "options": _options_json(SubmitOptions()),
                    "term": 0, "node": self.node, "device": "", "reason": "", "why": "bulk (benchmark)",
                    "submitted_at": now, "at": now, "next_try_at": DUE_NOW, "seq": 0,
                }  # fmt: skip
                fd = rec.open_dir(job_id, dir_fd=jobs_fd)
                try:
                    os.close(rec.create_log(fd, body, prealloc=0))
                    rec.link_entry(fd, q_fd, _marker(QUEUED, now, job_id))
                finally:
                    os.close(fd)
                ids.append(job_id)
        return ids


def _check_term_value(term: object) -> None:
    if isinstance(term, bool) or not isinstance(term, int) or term < 0:
        raise ValidationError(f"term {term!r} must be a whole number ≥ 0")


def _options_json(o: SubmitOptions) -> dict[str, Any]:
    return {
        "max_attempts": o.max_attempts,
        "retry_delay_s": o.retry_delay_s,
        "backoff": o.backoff,
        "max_delay_s": o.max_delay_s,
        "submitter": o.submitter,
    }


def _clean_reason(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in str(text))[:500]


def _clean_label(text: str, what: str) -> str:
    if not isinstance(text, str) or len(text) > 200:
        raise ValidationError(f"{what} {str(text)[:40]!r} must be text of at most 200 characters")
    return _clean_reason(text)


def _read_document(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValidationError(f"{path}: not a regular file")
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the document: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValidationError(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


def _make_item_dir(parent_fd: int, prefix: str, now: float) -> str:
    """Create a fresh, uniquely named item folder (a job or an inbound fax) under ``parent_fd``; returns its id."""
    while True:
        item_id = new_id(prefix, now)
        try:
            os.mkdir(item_id, rec.DIR_MODE, dir_fd=parent_fd)
            return item_id
        except FileExistsError:
            continue
