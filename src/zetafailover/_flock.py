"""``flock(2)`` for the spool and the line holder, and a clear error where the platform has none.

``import zetafailover`` works everywhere; only the parts that lock files (the directory spool, the line
holder) need a POSIX system, and where ``fcntl`` is missing (Windows) they raise
:class:`~zetafailover.errors.UnsupportedPlatformError` when first used instead of failing at import.
"""

from __future__ import annotations

from zetafailover.errors import UnsupportedPlatformError

__all__ = ["lock"]

try:
    from fcntl import LOCK_EX, LOCK_NB, LOCK_SH, flock
except ImportError:  # Windows
    _HAVE_FLOCK = False
else:
    _HAVE_FLOCK = True


def lock(fd: int, *, exclusive: bool = True, wait: bool = True) -> None:
    """Take ``fd``'s ``flock``, exclusive or shared, until every descriptor of its open file description is
    closed. Blocks unless ``wait`` is false; then raises :class:`BlockingIOError` at once if another open file
    description holds a conflicting lock. Raises :class:`UnsupportedPlatformError` where there is no flock."""
    if not _HAVE_FLOCK:
        raise UnsupportedPlatformError(
            "the fax spool and the line holder lock files with flock(2), which this platform (Windows) does not "
            "have; run the node on Linux or another POSIX system (docs/deployment.md, notes for Windows servers)"
        )
    op = LOCK_EX if exclusive else LOCK_SH
    flock(fd, op if wait else op | LOCK_NB)
