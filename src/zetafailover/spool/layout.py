"""Names in the spool folder and the queue-index marker format (shared by the spool and its recovery)."""

from __future__ import annotations

from zetafailover.errors import ValidationError
from zetafailover.spool.jobs import validate_id

DOCUMENT_NAME = "document.tif"
_QUEUE, _JOBS, _INBOUND, _RECEIVING = "queue", "jobs", "inbound", "receiving"
_INFLIGHT_TABLE = "inflight.slots"
"""The in-flight index (:class:`~zetafailover.spool.records.InflightTable`): what recovery reads."""
_TERM, _TERM_LOCK, _TERM_GATE = "term", "term.lock", "term.gate"


def _marker(due: float, job_id: str) -> str:
    """Queue-index entry name: due time in wall-clock milliseconds (14 digits, so names sort by due), the id."""
    return f"{max(0, round(due * 1000)):014d}-{job_id}"


def _marker_parts(name: str) -> tuple[int, str] | None:
    due, sep, job_id = name.partition("-")
    if not sep or len(due) != 14 or not due.isdigit():
        return None
    try:
        return int(due), validate_id(job_id)
    except ValidationError:
        return None
