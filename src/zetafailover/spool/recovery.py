"""Recovery after a takeover: what the new active does to the spool before it claims anything.

* Every job left ``dialing``/``sending`` under an older term is put back to ``queued`` with the reason
  ``failover``, keeping its confirmed-page count, so the next transmission starts at the first page the
  receiver did not confirm. Only the page that was in flight when the old active died can be sent twice.
* Every fax left ``receiving`` under an older term becomes ``partial`` (its stored pages are kept).
* Stale index entries (a slot or marker whose job is no longer in flight: a crash between two steps) are
  removed.

Cost: reads only the in-flight slot table (``inflight.slots``), the ``receiving/`` index and the items they
name — linear in the number of in-flight items (the table's size follows the peak number of jobs in flight),
independent of the number of queued jobs. Items are recovered in batches of up to ``BATCH`` under their locks:
one ``fsync`` of ``queue/`` makes the whole batch's queue entries durable before any of their records is
written, then each record is written and the logs are synced one after the other, then the batch's slots are
cleared in one pass of the table — so a takeover with many jobs in flight pays one folder sync per batch, not
one per job. Idempotent: running it twice re-queues nothing the second time. Term-fenced: the whole pass holds
the term lock shared and checks ``term``.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from zetafailover.errors import ValidationError
from zetafailover.spool import records as rec
from zetafailover.spool.jobs import IN_FLIGHT, InboundState, JobState, validate_id
from zetafailover.spool.layout import _INBOUND, _JOBS, _QUEUE, _RECEIVING, DUE_NOW, QUEUED, _marker

if TYPE_CHECKING:
    from zetafailover.spool.directory import DirectorySpool

__all__ = ["BATCH", "recover"]

BATCH = 128
"""In-flight items recovered under one set of locks (each holds two open descriptors while its batch runs)."""


def recover(spool: DirectorySpool, term: int) -> list[str]:
    """Re-queue older terms' in-flight jobs and close older terms' receptions; see the module docstring."""
    requeued: list[str] = []
    with spool._fenced(term, "recover"):
        now = spool.clock.wall()
        jobs = spool._inflight.ids()
        for start in range(0, len(jobs), BATCH):
            requeued += _requeue(spool, jobs[start : start + BATCH], term, now)
        with spool._dir(_RECEIVING) as r_fd:
            faxes = []
            for name in sorted(os.listdir(r_fd)):
                try:
                    faxes.append(validate_id(name, "inbound id"))
                except ValidationError:
                    continue
            for start in range(0, len(faxes), BATCH):
                _close_receptions(spool, r_fd, faxes[start : start + BATCH], term, now)
    return requeued


def _requeue(spool: DirectorySpool, names: list[str], term: int, now: float) -> list[str]:
    """One batch of slots: re-queue the jobs an older term left in flight; clear the slots that are stale."""
    stale: list[str] = []
    todo: list[tuple[str, rec.RecordLog, dict[str, Any]]] = []
    with contextlib.ExitStack() as held, spool._dir(_QUEUE) as q_fd:
        for name in sorted(names):  # one global lock order: two recoveries holding batches never deadlock
            try:
                log, body, job_fd = held.enter_context(spool._log(_JOBS, name))
            except ValidationError:
                stale.append(name)  # the job folder is gone or is a planted symlink
                continue
            state = body.get("state") if body else None
            if log is None or body is None or state not in IN_FLIGHT:
                stale.append(name)  # crash between claim steps or after completion
                continue
            if int(body["term"]) >= term:
                continue  # claimed under the current term: this node's own work
            resume = int(body["pages_confirmed"])
            new = dict(body)
            new.update(
                state=str(JobState.QUEUED),
                reason="failover",
                why=(
                    f"failover: {body['node']} (term {body['term']}) left it {state}; "
                    f"resume at page {resume + 1} of {body['pages']}"
                ),
                term=term,
                node=spool.node,
                device="",
                next_try_at=DUE_NOW,
                at=now,
            )
            rec.link_entry(job_fd, q_fd, _marker(QUEUED, now, name))
            todo.append((name, log, new))
        if todo:
            os.fsync(q_fd)  # every queue entry is durable before the records that need them
            for _name, log, new in todo:
                log.append(new, durable=False)
            for _name, log, _new in todo:
                log.sync()
        spool._inflight.remove(*stale, *(name for name, _log, _new in todo))
    return [name for name, _log, _new in todo]


def _close_receptions(spool: DirectorySpool, r_fd: int, names: list[str], term: int, now: float) -> None:
    """One batch of ``receiving/`` entries: an older term's reception becomes ``partial``; stale entries go."""
    done: list[str] = []
    logs: list[rec.RecordLog] = []
    with contextlib.ExitStack() as held:
        for name in sorted(names):  # one global lock order (see _requeue)
            try:
                log, body, _fd = held.enter_context(spool._log(_INBOUND, name))
            except ValidationError:
                done.append(name)
                continue
            if log is None or body is None or body.get("state") != InboundState.RECEIVING:
                done.append(name)
                continue
            if int(body["term"]) >= term:
                continue
            new = dict(body)
            new.update(
                state=str(InboundState.PARTIAL),
                reason="failover",
                why=f"partial: failover while {body['node']} (term {body['term']}) was receiving",
                term=term,
                at=now,
            )
            log.append(new, durable=False)
            logs.append(log)
            done.append(name)
        for log in logs:
            log.sync()  # the records are durable before their index entries go
        for name in done:
            rec.remove_entry(r_fd, name)
