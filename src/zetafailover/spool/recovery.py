"""Recovery after a takeover: what the new active does to the spool before it claims anything.

* Every job left ``dialing``/``sending`` under an older term is put back to ``queued`` with the reason
  ``failover``, keeping its confirmed-page count, so the next transmission starts at the first page the
  receiver did not confirm. Only the page that was in flight when the old active died can be sent twice.
* Every fax left ``receiving`` under an older term becomes ``partial`` (its stored pages are kept).
* Stale index entries (a marker whose job is no longer in flight: a crash between two steps) are removed.

Cost: reads only the ``inflight/`` and ``receiving/`` indexes and the jobs they name — linear in the number
of in-flight items, independent of the number of queued jobs. Idempotent: running it twice re-queues nothing
the second time. Term-fenced: the whole pass holds the term lock shared and checks ``term``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from zetafailover.errors import ValidationError
from zetafailover.spool import records as rec
from zetafailover.spool.jobs import IN_FLIGHT, InboundState, JobState, validate_id
from zetafailover.spool.layout import _INBOUND, _INFLIGHT, _JOBS, _QUEUE, _RECEIVING, _marker

if TYPE_CHECKING:
    from zetafailover.spool.directory import DirectorySpool

__all__ = ["recover"]


def recover(spool: DirectorySpool, term: int) -> list[str]:
    """Re-queue older terms' in-flight jobs and close older terms' receptions; see the module docstring."""
    requeued: list[str] = []
    with spool._fenced(term, "recover"):
        now = spool.clock.wall()
        with spool._dir(_INFLIGHT) as in_fd, spool._dir(_QUEUE) as q_fd:
            for name in sorted(os.listdir(in_fd)):
                try:
                    validate_id(name)
                except ValidationError:
                    continue  # temporary files and foreign entries are not ours to judge
                try:
                    with spool._locked(_JOBS, name) as job_fd:
                        top, body = rec.latest_record(job_fd)
                        state = body.get("state") if body else None
                        if body is None or state not in IN_FLIGHT:
                            rec.remove_entry(in_fd, name)  # crash between claim steps or after completion
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
                            next_try_at=now,
                            at=now,
                        )
                        rec.create_marker(q_fd, _marker(now, name))
                        spool._write(job_fd, top, new)
                        os.fsync(q_fd)
                        rec.remove_entry(in_fd, name)
                        requeued.append(name)
                except ValidationError:
                    rec.remove_entry(in_fd, name)  # the job folder is gone or is a planted symlink
        with spool._dir(_RECEIVING) as r_fd:
            for name in sorted(os.listdir(r_fd)):
                try:
                    validate_id(name, "inbound id")
                except ValidationError:
                    continue
                try:
                    with spool._locked(_INBOUND, name) as fd:
                        top, body = rec.latest_record(fd)
                        if body is None or body.get("state") != InboundState.RECEIVING:
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
                        spool._write(fd, top, new)
                        rec.remove_entry(r_fd, name)
                except ValidationError:
                    rec.remove_entry(r_fd, name)
    return requeued
