"""Recovery after a takeover: what the new active does to the spool before it claims anything.

* Every job left ``dialing``/``sending`` under an older term is put back to ``queued`` with the reason
  ``failover``, keeping its confirmed-page count, so the next transmission starts at the first page the
  receiver did not confirm. Only the page that was in flight when the old active died can be sent twice.
* Every fax left ``receiving`` under an older term becomes ``partial`` (its stored pages are kept).
* Stale index entries (a slot or marker whose job is no longer in flight: a crash between two steps) are
  removed.

Cost: reads only the in-flight slot table (``inflight.slots``), the ``receiving/`` index and the items they
name — linear in the number of in-flight items (the table's size follows the peak number of jobs in flight),
independent of the number of queued jobs. Idempotent: running it twice re-queues nothing
the second time. Term-fenced: the whole pass holds the term lock shared and checks ``term``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from zetafailover.errors import ValidationError
from zetafailover.spool import records as rec
from zetafailover.spool.jobs import IN_FLIGHT, InboundState, JobState, validate_id
from zetafailover.spool.layout import _INBOUND, _JOBS, _QUEUE, _RECEIVING, DUE_NOW, QUEUED, _marker

if TYPE_CHECKING:
    from zetafailover.spool.directory import DirectorySpool

__all__ = ["recover"]


def recover(spool: DirectorySpool, term: int) -> list[str]:
    """Re-queue older terms' in-flight jobs and close older terms' receptions; see the module docstring."""
    requeued: list[str] = []
    table = spool._inflight
    with spool._fenced(term, "recover"):
        now = spool.clock.wall()
        with spool._dir(_QUEUE) as q_fd:
            for name in table.ids():
                try:
                    with spool._log(_JOBS, name) as (log, body, job_fd):
                        state = body.get("state") if body else None
                        if log is None or body is None or state not in IN_FLIGHT:
                            table.remove(name)  # crash between claim steps or after completion
                            continue
                        if int(body["term"]) >= term:
                            continue  # claimed under the current term: this node's own work
                        new = dict(body)
                        resume = int(body["pages_confirmed"])
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
                        os.fsync(q_fd)  # the queue entry is durable before the record that needs it
                        log.append(new)
                        table.remove(name)
                        requeued.append(name)
                except ValidationError:
                    table.remove(name)  # the job folder is gone or is a planted symlink
        with spool._dir(_RECEIVING) as r_fd:
            for name in sorted(os.listdir(r_fd)):
                try:
                    validate_id(name, "inbound id")
                except ValidationError:
                    continue
                try:
                    with spool._log(_INBOUND, name) as (log, body, _fd):
                        if log is None or body is None or body.get("state") != InboundState.RECEIVING:
                            rec.remove_entry(r_fd, name)
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
                        log.append(new)
                        rec.remove_entry(r_fd, name)
                except ValidationError:
                    rec.remove_entry(r_fd, name)
    return requeued
