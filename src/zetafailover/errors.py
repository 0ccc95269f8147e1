"""One exception tree for the whole library.

Every error the library raises on purpose derives from :class:`ZetafailoverError`, so a fax product can
catch the library's failures with one ``except`` clause. User mistakes (a bad config value, a bad phone
number, a bad document) are :class:`ConfigError` / :class:`ValidationError` and carry a message that names
the file, the field and the reason; the command line prints that message without a traceback.
"""

from __future__ import annotations


class ZetafailoverError(Exception):
    """Root of every exception raised by zetafailover."""


class ValidationError(ZetafailoverError, ValueError):
    """Input from outside (a number, a document, an id, a record) was rejected at the edge."""


class ConfigError(ValidationError):
    """A configuration file or value is invalid.

    ``source`` is the file (or ``"<profile>"``), ``key`` the dotted key, ``reason`` why it was refused.
    """

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {reason}")


class TimingError(ConfigError):
    """The timing rule ``heartbeat_interval + 2 × store_timeout + margin ≤ timeout`` does not hold."""


class TimingMismatchError(ZetafailoverError):
    """Another node of the cluster publishes a different timing hash; the nodes must share one timing."""


class StoreError(ZetafailoverError):
    """A heartbeat store operation failed. Never evidence that the active node is dead."""


class StoreUnavailableError(StoreError):
    """The store could not be reached or did not answer within ``store_timeout``."""


class CorruptRecordError(StoreError):
    """A record was torn, truncated, empty, of another cluster or otherwise unreadable.

    Treated as *no new evidence*: neither a sign of life nor of death.
    """


class TermConflictError(StoreError):
    """A compare-and-swap on the term failed: somebody else holds or has won the term."""


class LostTermError(TermConflictError):
    """A renew failed because this node no longer holds the term it renews."""


class StaleTermError(ZetafailoverError):
    """A side effect was stamped with a term lower than the current one and was refused (invariant 5)."""

    def __init__(self, offered: int, current: int, what: str = "transition") -> None:
        self.offered = offered
        self.current = current
        super().__init__(f"{what} refused: term {offered} is older than the current term {current}")


class SelfFencedError(StaleTermError):
    """A side effect was refused locally: this node is past its self-fence deadline (invariant 4)."""

    def __init__(self, term: int, what: str = "action") -> None:
        ZetafailoverError.__init__(
            self, f"{what} refused: this node has not renewed its term {term} in time and has fenced itself"
        )
        self.offered = term
        self.current = term


class FenceError(ZetafailoverError):
    """The old active could not be fenced and its self-fence deadline has not provably passed."""


class DeviceError(ZetafailoverError):
    """A fax device failed to open, start, stop or send."""


class LineSwitchError(ZetafailoverError):
    """A line-switch strategy failed to move the lines."""


class SwitchoverRefusedError(ZetafailoverError):
    """A manual switchover was refused; the message says why (e.g. no healthy standby)."""


class PluginError(ZetafailoverError):
    """A plugin could not be loaded, or no plugin provides what the configuration asks for."""


class UnsupportedPlatformError(ZetafailoverError):
    """A part needs an operating-system feature this platform lacks (e.g. ``flock(2)`` on Windows)."""
