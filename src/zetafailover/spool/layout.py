"""Names in the spool folder and the queue-index marker format (shared by the spool and its recovery)."""

from __future__ import annotations

from zetafailover.errors import ValidationError
from zetafailover.spool.jobs import validate_id

DOCUMENT_NAME = "document.tif"
_QUEUE, _JOBS, _INBOUND, _RECEIVING = "queue", "jobs", "inbound", "receiving"
_INFLIGHT_TABLE = "inflight.slots"
"""The in-flight index (:class:`~zetafailover.spool.records.InflightTable`): what recovery reads."""
_TERM, _TERM_LOCK, _TERM_GATE = "term", "term.lock", "term.gate"


DUE_NOW = 0.0
"""``next_try_at`` of a queued job (fresh, or re-queued after a failover): due at once on every node's clock."""

SKEW_GUARD_S = 3600.0
"""A retry due further in the future than this (and than its job's own ``max_delay_s``) was written by a clock
that is ahead: it is treated as due rather than left waiting for the skew."""

QUEUED, RETRY = "q", "r"
"""The two kinds of queue-index entry.

``q<submit ms>-<id>``: a queued job, due at once wherever it is claimed; the submit time only orders the queue
(first in, first out). ``r<due ms>-<id>``: a retry, due at its time. A queued job must never wait for a wall
clock: a node whose clock is behind the submitter's would otherwise leave it queued, and wall-clock steps must
change nothing. Names sort queued entries first, then retries by due time."""


def _marker(kind: str, at: float, job_id: str) -> str:
    """Queue-index entry name: ``q`` or ``r``, wall-clock milliseconds (14 digits), ``-``, the job id."""
    return f"{kind}{max(0, round(at * 1000)):014d}-{job_id}"


def _marker_parts(name: str) -> tuple[str, int, str] | None:
    """``(kind, ms, job id)`` of a queue-index entry, or None for a name that is not one."""
    head, sep, job_id = name.partition("-")
    kind, ms = head[:1], head[1:]
    if not sep or kind not in (QUEUED, RETRY) or len(ms) != 14 or not ms.isdigit():
        return None
    try:
        return kind, int(ms), validate_id(job_id)
    except ValidationError:
        return None
