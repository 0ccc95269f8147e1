"""The durable fax spool: outbound jobs, inbound faxes, term fencing, recovery, TIFF-F and T.4 MH.

Public names: :class:`DirectorySpool`, :class:`Dispatcher`, the records in :mod:`.jobs`,
:func:`validate_number`, :func:`validate_tiff`, :func:`write_tiff`.
"""

from __future__ import annotations

from zetafailover.spool.directory import DirectorySpool, SpoolCorruptError
from zetafailover.spool.dispatcher import Dispatcher
from zetafailover.spool.jobs import (
    HistoryEntry,
    Inbound,
    InboundState,
    Job,
    JobState,
    JobStateError,
    SubmitOptions,
    UnknownJobError,
)
from zetafailover.spool.numbers import validate_number
from zetafailover.spool.tiff import PageInfo, TiffInfo, validate_tiff, write_tiff

__all__ = [
    "DirectorySpool",
    "Dispatcher",
    "HistoryEntry",
    "Inbound",
    "InboundState",
    "Job",
    "JobState",
    "JobStateError",
    "PageInfo",
    "SpoolCorruptError",
    "SubmitOptions",
    "TiffInfo",
    "UnknownJobError",
    "validate_number",
    "validate_tiff",
    "write_tiff",
]
