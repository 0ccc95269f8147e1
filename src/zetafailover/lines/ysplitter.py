"""The Y-splitter strategy: both servers' analog devices hang on one line; only the holder may answer.

Nothing is switched: every device on the line hears it ring, and the strategy decides who may pick up. The
passive node's devices are off line (never off-hook) and :meth:`YSplitterLineSwitch.may_answer` is False for
it; the new active may answer only once it has ``take``-n the lines, which the node does after fencing the old
active — a primary that died off-hook blocks the line until it is terminated (its modem then drops DTR and
hangs up), which is why fencing comes first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from zetafailover.lines._holder import Holder

__all__ = ["YSplitterLineSwitch"]

log = logging.getLogger(__name__)


class YSplitterLineSwitch:
    """A :class:`~zetafailover.interfaces.LineSwitch` for devices sharing analog lines through a Y-splitter.

    ``state`` (optional) is a file every node can read (on the shared folder): with it, ``take`` is a
    compare-and-set on the term across nodes and ``may_answer`` reflects a takeover by another node at once
    (a resumed old active never answers). Timing: ``take``/``release`` do one locked file update;
    ``may_answer`` one small file read (memory only without ``state``). Idempotent; lower terms are refused.
    """

    def __init__(self, state: Path | None = None, *, name: str = "ysplitter") -> None:
        self.name = name
        self.holder = Holder(state)

    def take(self, node: str, term: int) -> None:
        _, changed = self.holder.take(node, term, "ysplitter")
        if changed:
            log.info("ysplitter: %s answers the shared lines from term %d on", node, term)

    def release(self, node: str, term: int) -> None:
        if self.holder.release(node, term):
            log.info("ysplitter: %s stopped answering the shared lines (term %d)", node, term)

    def may_answer(self, node: str) -> bool:
        current = self.holder.current()
        return current is not None and current.node == node and not current.released
