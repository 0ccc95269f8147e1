"""The ``none`` terminator: fences nothing and says so.

For sites with no way to reach the old active (no shared host, no fencing agent). It never confirms, so a
takeover waits until the old active's self-fence deadline has provably passed (invariant 3, 4): slower,
and safe only as long as the old active's self-fence works (its monotonic clock, its off-line path).
"""

from __future__ import annotations

import logging

from zetafailover.interfaces import FenceResult, FenceTarget

__all__ = ["NullTerminator"]

_log = logging.getLogger(__name__)

EVIDENCE = "the none terminator is explicitly unsafe: takeover waits for the old active's self-fence deadline"


class NullTerminator:
    """A terminator that never fences and never confirms (``kind = "none"``, ``confirms = False``).

    Logs a warning when constructed. Timing: :meth:`terminate` returns at once. Atomicity: does nothing, so
    it is trivially idempotent.
    """

    kind: str = "none"
    confirms: bool = False

    def __init__(self) -> None:
        _log.warning(
            "terminator kind 'none': the old active's processes are never terminated; every takeover waits "
            "for its self-fence deadline, and safety rests on that self-fence alone"
        )

    def terminate(self, target: FenceTarget, timeout: float) -> FenceResult:
        """Return an unconfirmed result at once; ``target`` and ``timeout`` are not used."""
        return FenceResult(confirmed=False, method="none", evidence=EVIDENCE, duration_s=0.0)
