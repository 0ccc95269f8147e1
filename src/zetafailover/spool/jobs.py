"""The spool's records: job and inbound-fax states, their snapshots, history entries and ids.

Every record here is a frozen snapshot read from disk; the spool never hands out anything mutable.
"""

from __future__ import annotations

import enum
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zetafailover.errors import ValidationError, ZetafailoverError

__all__ = [
    "IN_FLIGHT",
    "TERMINAL",
    "HistoryEntry",
    "Inbound",
    "InboundState",
    "Job",
    "JobState",
    "JobStateError",
    "SubmitOptions",
    "UnknownJobError",
    "new_id",
    "validate_id",
]


class JobState(enum.StrEnum):
    """The life of an outbound fax job (see docs/spool.md for the diagram)."""

    QUEUED = "queued"
    DIALING = "dialing"
    SENDING = "sending"
    RETRY_WAIT = "retry_wait"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobState.SENT, JobState.FAILED, JobState.CANCELLED})
"""States a job never leaves."""
IN_FLIGHT = frozenset({JobState.DIALING, JobState.SENDING})
"""States in which a node is (or was, before it died) working the job; re-queued by recovery."""
DUE = frozenset({JobState.QUEUED, JobState.RETRY_WAIT})
"""States from which a job may be claimed (once its ``next_try_at`` has come)."""


class InboundState(enum.StrEnum):
    """The life of a received fax: ``receiving → received`` or ``receiving → partial`` (never deleted)."""

    RECEIVING = "receiving"
    RECEIVED = "received"
    PARTIAL = "partial"


class JobStateError(ZetafailoverError):
    """A transition is not allowed from the job's current state (e.g. completing a job that is not in flight)."""


class UnknownJobError(ValidationError):
    """No job or inbound fax with this id exists in the spool."""


_ID = re.compile(r"^[JR][0-9]{8}T[0-9]{6}-[0-9a-f]{10}$")


def validate_id(value: object, what: str = "job id") -> str:
    """Return ``value`` if it is a well-formed spool id, else raise :class:`ValidationError` naming it.

    Ids are checked by this strict pattern before they ever become part of a path (no ``/``, no ``..``).
    """
    if not isinstance(value, str) or not _ID.match(value):
        raise ValidationError(
            f"{what} {value!r} is not valid: expected J or R, a UTC stamp and 10 hex digits "
            "(like J20250101T120000-0123456789)"
        )
    return value


def new_id(prefix: str, wall: float) -> str:
    """A fresh id: ``prefix`` (J outbound, R inbound), the UTC time, 40 random bits. Sorts by creation second."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(max(0.0, wall)))
    return f"{prefix}{stamp}-{secrets.token_hex(5)}"


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """How a job is retried. ``retry_delay_s × backoff^(failures-1)`` (capped at ``max_delay_s``) between tries."""

    max_attempts: int = 3
    retry_delay_s: float = 300.0
    backoff: float = 2.0
    max_delay_s: float = 3600.0
    submitter: str = ""

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or not (1 <= self.max_attempts <= 100)
        ):
            raise ValidationError(f"max_attempts {self.max_attempts!r} must be a whole number from 1 to 100")
        for name in ("retry_delay_s", "backoff", "max_delay_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 86400 * 7:
                raise ValidationError(f"{name} {v!r} must be a number of seconds from 0 to 604800")
        if len(self.submitter) > 200 or any(ord(c) < 32 for c in self.submitter):
            raise ValidationError(f"submitter {self.submitter[:40]!r} must be printable text of at most 200 characters")

    def delay_after(self, failures: int) -> float:
        """Seconds to wait before the next try after ``failures`` failed tries."""
        return float(min(self.max_delay_s, self.retry_delay_s * self.backoff ** max(0, failures - 1)))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One transition of a job or an inbound fax: what, who, under which term, when (wall, for people), why."""

    seq: int
    state: str
    term: int
    node: str
    at: float
    why: str
    pages_confirmed: int


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of an outbound job as its latest durable record says."""

    id: str
    state: JobState
    number: str
    pages: int
    pages_confirmed: int
    """Pages the receiver confirmed so far; the next transmission starts at this zero-based page index."""
    attempts: int
    """Times the job was claimed."""
    failures: int
    """Tries that ended in failure (a failover re-queue is not a failure)."""
    max_attempts: int
    term: int
    """Term of the latest transition."""
    node: str
    device: str
    reason: str
    submitted_at: float
    updated_at: float
    next_try_at: float
    seq: int
    document: Path
    options: SubmitOptions

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (for the CLI's ``--json``)."""
        return {
            "id": self.id,
            "state": str(self.state),
            "number": self.number,
            "pages": self.pages,
            "pages_confirmed": self.pages_confirmed,
            "attempts": self.attempts,
            "failures": self.failures,
            "max_attempts": self.max_attempts,
            "term": self.term,
            "node": self.node,
            "device": self.device,
            "reason": self.reason,
            "submitted_at": self.submitted_at,
            "updated_at": self.updated_at,
            "next_try_at": self.next_try_at,
        }


@dataclass(frozen=True, slots=True)
class Inbound:
    """A snapshot of a received (or being received) fax."""

    id: str
    state: InboundState
    device: str
    caller: str
    pages: int
    term: int
    node: str
    reason: str
    started_at: float
    updated_at: float
    seq: int
    folder: Path

    @property
    def page_files(self) -> tuple[Path, ...]:
        """The page files in order (``page-0001.tif`` …)."""
        return tuple(self.folder / page_name(i) for i in range(self.pages))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": str(self.state),
            "device": self.device,
            "caller": self.caller,
            "pages": self.pages,
            "term": self.term,
            "node": self.node,
            "reason": self.reason,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "folder": str(self.folder),
        }


def page_name(index: int) -> str:
    """File name of the zero-based inbound page ``index``."""
    return f"page-{index + 1:04d}.tif"
