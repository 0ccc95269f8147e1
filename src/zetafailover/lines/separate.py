"""The separate-lines strategy: each server has its own lines.

Outbound needs nothing: the active sends on its own devices, hence its own lines. Inbound calls still ring
on the old active's lines, so at takeover the strategy tells the operator precisely which line to move — one
structured event (a JSON line in ``events`` and a WARNING log record) naming the numbers, the lines they ring
on now and the lines to move them to — or, when a PBX strategy is configured alongside, lets the PBX re-route
them and reports that instead.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zetafailover.errors import LineSwitchError
from zetafailover.interfaces import LineSwitch
from zetafailover.lines._holder import Holder

__all__ = ["SeparateLinesSwitch"]

log = logging.getLogger(__name__)


class SeparateLinesSwitch:
    """A :class:`~zetafailover.interfaces.LineSwitch` for servers with lines of their own.

    ``lines`` maps each node to its lines (descriptions an operator recognises: ``"analog 1 (port A3)"``);
    ``numbers`` are the fax numbers callers dial. Timing: ``take`` appends one fsynced line to ``events`` (and,
    with ``pbx``, takes as long as that strategy's bounded ``take``). Atomicity: term-checked through the
    holder (``state`` file when given); idempotent — the operator is told once per term.
    """

    def __init__(
        self,
        lines: Mapping[str, Sequence[str]],
        numbers: Sequence[str],
        *,
        events: Path | None = None,
        state: Path | None = None,
        pbx: LineSwitch | None = None,
        name: str = "separate",
    ) -> None:
        self.name = name
        self.lines = {k: tuple(v) for k, v in lines.items()}
        self.numbers = tuple(numbers)
        self.events = events
        self.pbx = pbx
        self.holder = Holder(state)
        self.last_event: dict[str, Any] | None = None

    def take(self, node: str, term: int) -> None:
        previous, changed = self.holder.take(node, term, "separate lines")
        if not changed:
            return
        from_node = previous.node if previous is not None and previous.node != node else ""
        from_lines = (
            list(self.lines.get(from_node, ()))
            if from_node
            else sorted({line for other, lines in self.lines.items() if other != node for line in lines})
        )
        to_lines = list(self.lines.get(node, ()))
        numbers = ", ".join(self.numbers) or "the fax numbers"
        event: dict[str, Any] = {
            "event": "move_lines",
            "node": node,
            "term": term,
            "from_node": from_node,
            "from_lines": from_lines,
            "to_lines": to_lines,
            "numbers": list(self.numbers),
            "at": time.time(),
            "outbound": f"outbound faxes now go out on {node}'s own lines: {', '.join(to_lines) or '?'}",
        }
        problem = ""
        if self.pbx is not None:
            try:
                self.pbx.take(node, term)
                event["action"] = "pbx"
                event["message"] = f"the PBX was told to route {numbers} to {node} (term {term}); nothing to move"
            except LineSwitchError as exc:
                problem = str(exc)
        if self.pbx is None or problem:
            event["action"] = "operator"
            event["message"] = (
                f"{node} is the active fax server now (term {term}). Move {numbers} from "
                f"{' + '.join(from_lines) or 'the old server'}{f' of {from_node}' if from_node else ''} to "
                f"{' + '.join(to_lines) or 'a line'} of {node}: until then incoming faxes ring on the old server."
                + (f" (The PBX could not be told: {problem})" if problem else "")
            )
        self.last_event = event
        log.warning("separate lines: %s", event["message"])
        if self.events is not None:
            self.events.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, (json.dumps(event) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        if problem:
            raise LineSwitchError(problem)

    def release(self, node: str, term: int) -> None:
        self.holder.release(node, term)
        if self.pbx is not None:
            self.pbx.release(node, term)

    def may_answer(self, node: str) -> bool:
        current = self.holder.current()
        return current is None or (current.node == node and not current.released)
