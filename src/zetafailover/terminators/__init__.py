"""The built-in :class:`~zetafailover.interfaces.ProcessTerminator` implementations.

``pid`` (:class:`PidTerminator`) fences processes of this host, ``command`` (:class:`CommandTerminator`) runs a
fencing agent, ``none`` (:class:`NullTerminator`) fences nothing and makes takeover wait for the old active's
self-fence deadline. They are built from a node's ``[terminator]`` section by the built-in plugin
(``zetafailover._builtin_plugins``). See ``docs/fencing.md``.
"""

from __future__ import annotations

from zetafailover.terminators.command import PLACEHOLDERS, CommandTerminator
from zetafailover.terminators.null import NullTerminator
from zetafailover.terminators.pid import PidTerminator

__all__ = ["PLACEHOLDERS", "CommandTerminator", "NullTerminator", "PidTerminator"]
