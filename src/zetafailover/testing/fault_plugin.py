"""A test-only plugin that lets the nemesis inject faults into a real node process, without FUSE or root tricks.

Register it in a node's config and point the store at it::

    [cluster]
    store = "faulty+file:///srv/test/shared?control=/srv/test/fax1.faults.json"

    [spool]
    path = "/srv/test/shared/spool"          # a faulty+file store is not a plain folder: name the spool

    [plugins]
    modules = ["zetafailover.testing.fault_plugin"]

The ``faulty+file`` scheme opens the ordinary shared-folder store and wraps it in a
:class:`~zetafailover.testing.faulty_store.FaultyStore`; the ``zetafailover_make_spool`` hook opens the node's
spool as a :class:`~zetafailover.testing.faulty_spool.ControlledSpool` reading the same control file. Before
every store or spool operation the wrapper reads the small JSON *control file* named by ``control=`` (written
atomically by :class:`~zetafailover.testing.nemesis.Nemesis`), so faults switch on and off while the node runs::

    {"store": {"mode": "read_only"}, "spool": {"mode": "slow", "delay": 0.5}, "wall_offset": 3600.0,
     "worker": {"kill": "a1b2"}}

Store modes (each only for this node; the other node's store is untouched):

* ``ok`` — no fault (also: no control file, or no ``store`` key);
* ``unreadable`` — every operation fails (permission denied on the shared folder);
* ``read_only`` — reads work, every write (acquire, renew, member record, switchover request) fails (EROFS);
* ``full`` — reads work, every write fails (ENOSPC);
* ``slow`` — every operation first sleeps ``delay`` seconds (the node's ``BoundedStore`` cuts it at
  ``store_timeout``, as it would a hung NFS server);
* ``stale`` — ``read`` keeps returning the last record it returned (an attribute cache that serves old data).

Spool modes (``spool.mode``: ``ok``, ``unreadable``, ``read_only``, ``full``, ``slow``) raise the ``OSError`` a
real folder would raise (EACCES, EROFS, ENOSPC) or sleep, and ``worker.kill`` makes the node's next page record
kill the dispatcher worker thread that makes it; see :mod:`zetafailover.testing.faulty_spool`. The shared
folder failing as a whole is the same mode in ``store`` and ``spool`` (``Nemesis.folder_fault``).

``wall_offset`` (seconds) shifts this process's wall clock (``time.time``) without touching the machine's
clock — an NTP step confined to one node. Only wall-clock stamps move (``written_at`` in records, ``ts`` in
event and device logs, the spool's ``at`` and due times); ``time.monotonic`` is untouched, so no failover
decision can see it (invariant 1). The offset takes effect at the node's next store operation (within one
heartbeat interval).

Limits: ``zetafailover status`` / ``switchover`` do not load ``[plugins] modules``, so run them against a config
with a plain store (the nemesis writes one). Submitters and the tests' own spool handles open a plain
``DirectorySpool`` and see no fault: only the node processes' view of the folder fails.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from zetafailover.clock import SystemClock
from zetafailover.config import NodeConfig
from zetafailover.core.timing import Timing
from zetafailover.errors import ConfigError, StoreUnavailableError
from zetafailover.interfaces import (
    Characteristic,
    Clock,
    HeartbeatRecord,
    HeartbeatStore,
    MemberRecord,
    StoreRead,
    SwitchoverRequest,
)
from zetafailover.plugins import hookimpl
from zetafailover.testing.control_file import ControlFile, parse_mode_section
from zetafailover.testing.faulty_spool import ControlledSpool
from zetafailover.testing.faulty_store import FaultyStore

__all__ = [
    "SCHEME",
    "STORE_MODES",
    "ControlledStore",
    "control_path_of",
    "faulty_store_url",
    "parse_control",
    "set_wall_offset",
    "wall_offset",
]

SCHEME = "faulty+file"
"""The store URL scheme this plugin provides."""

STORE_MODES = ("ok", "unreadable", "read_only", "full", "slow", "stale")
"""The store fault modes a control file may name."""

WRITE_OPERATIONS = ("acquire", "renew", "publish_member", "put_switchover")

_log = logging.getLogger("zetafailover.testing.fault_plugin")
_R = TypeVar("_R")


def faulty_store_url(folder: Path, control: Path) -> str:
    """The ``cluster.store`` URL for the shared folder ``folder`` with faults read from ``control``."""
    return f"{SCHEME}://{folder.resolve()}?control={control.resolve()}"


def _parse_url(url: str) -> tuple[Path, Path]:
    """``(folder, control file)`` of a ``faulty+file`` URL; ConfigError naming ``cluster.store`` if malformed."""
    parts = urlsplit(url)
    folder = unquote(parts.path)
    controls = parse_qs(parts.query).get("control", [])
    if not folder or not os.path.isabs(folder):
        raise ConfigError("<config>", "cluster.store", f"{url!r} names no absolute folder ({SCHEME}:///PATH?control=…)")
    if len(controls) != 1 or not os.path.isabs(controls[0]):
        raise ConfigError("<config>", "cluster.store", f"{url!r} needs exactly one absolute ?control=PATH")
    return Path(folder), Path(controls[0])


def control_path_of(store_url: str) -> Path | None:
    """The control file named by a ``faulty+file`` store URL, or None for any other store. Never blocks."""
    scheme, sep, _rest = store_url.partition("://")
    if not sep or scheme != SCHEME:
        return None
    return _parse_url(store_url)[1]


# ------------------------------------------------------------------------------------------ wall clock

_real_time: Callable[[], float] = time.time
_offset = [0.0]
"""The offset in force (a one-element list, changed in place)."""
_patch_lock = threading.Lock()


def _shifted_time() -> float:
    return _real_time() + _offset[0]


def set_wall_offset(seconds: float) -> None:
    """Shift this process's ``time.time`` by ``seconds`` from the real wall clock (0 restores it).

    Installs a replacement of :func:`time.time` on first use; :func:`time.monotonic` is never touched.
    Idempotent for the same value; never blocks.
    """
    with _patch_lock:
        _offset[0] = float(seconds)
        if time.time is not _shifted_time:
            time.time = _shifted_time


def wall_offset() -> float:
    """The wall-clock offset in force in this process (0.0 when none was set)."""
    return _offset[0]


# --------------------------------------------------------------------------------------- control file


def parse_control(data: Mapping[str, Any], source: str = "<control>") -> tuple[str, float, float]:
    """Check a control file's content; returns ``(mode, delay, wall_offset)``.

    Raises :class:`ValueError` naming ``source``, the key and the bad value.
    """
    mode, delay = parse_mode_section(data, "store", STORE_MODES, source)
    offset = data.get("wall_offset", 0.0)
    if isinstance(offset, bool) or not isinstance(offset, int | float) or abs(offset) > 400 * 86400:
        raise ValueError(f"{source}: wall_offset {offset!r} must be a number of seconds within ±400 days")
    return mode, delay, float(offset)


class _Unreadable(StoreUnavailableError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: [Errno {errno.EACCES}] permission denied on the shared folder")


class _ReadOnly(StoreUnavailableError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: [Errno {errno.EROFS}] read-only file system")


class _Full(StoreUnavailableError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: [Errno {errno.ENOSPC}] no space left on device")


class ControlledStore:
    """A :class:`FaultyStore` around ``inner`` whose faults come from a control file, re-read at every call.

    Timing: each operation first reads the control file (one small local read; a missing file means no fault),
    then behaves as :class:`FaultyStore` does (a ``slow`` mode sleeps ``delay`` seconds on the real clock).
    Atomicity: exactly the inner store's compare-and-swap; an injected failure happens before the inner call,
    so it leaves the store untouched. A control file that cannot be parsed is logged and the faults in force
    stay as they were. Thread-safe.
    """

    def __init__(self, inner: HeartbeatStore, control: Path, clock: Clock | None = None) -> None:
        self.inner = inner
        self.control = control
        self.faulty = FaultyStore(inner, clock=clock or SystemClock())
        self.characteristics: frozenset[Characteristic] = inner.characteristics
        self._lock = threading.Lock()
        self._applied: tuple[str, float, float] = ("ok", 0.0, 0.0)
        self._control = ControlFile(Path(control), parse_control)

    def __repr__(self) -> str:
        return f"ControlledStore({self.inner!r}, control={str(self.control)!r})"

    @property
    def mode(self) -> str:
        """The store fault mode in force (``ok`` when none)."""
        return self._applied[0]

    def refresh(self) -> None:
        """Re-read the control file and apply it if it changed. Never raises for a bad or missing file."""
        wanted = self._control.changed()
        if wanted is None:
            return
        with self._lock:
            if wanted == self._applied:
                return
            self._apply(*wanted)
            self._applied = wanted
        _log.warning("fault control %s: store mode %s, delay %g s, wall offset %+g s", self.control, *wanted)

    def _apply(self, mode: str, delay: float, offset: float) -> None:
        self.faulty.heal()
        if mode == "unreadable":
            self.faulty.fail("*", exc=_Unreadable)
        elif mode == "read_only":
            for op in WRITE_OPERATIONS:
                self.faulty.fail(op, exc=_ReadOnly)
        elif mode == "full":
            for op in WRITE_OPERATIONS:
                self.faulty.fail(op, exc=_Full)
        elif mode == "slow":
            self.faulty.set_delay("*", delay)
        elif mode == "stale":
            self.faulty.stale_reads(True)
        if offset != wall_offset():
            set_wall_offset(offset)

    def _call(self, fn: Callable[[], _R]) -> _R:
        self.refresh()
        return fn()

    # -------------------------------------------------------------------------------------- operations

    def read(self) -> StoreRead:
        """The inner ``read``, unless a fault applies."""
        return self._call(self.faulty.read)

    def acquire(self, expected_term: int, record: HeartbeatRecord) -> HeartbeatRecord:
        """The inner compare-and-swap ``acquire``, unless a fault applies."""
        return self._call(lambda: self.faulty.acquire(expected_term, record))

    def renew(self, record: HeartbeatRecord) -> HeartbeatRecord:
        """The inner compare-and-swap ``renew``, unless a fault applies."""
        return self._call(lambda: self.faulty.renew(record))

    def publish_member(self, member: MemberRecord) -> None:
        """The inner ``publish_member``, unless a fault applies."""
        self._call(lambda: self.faulty.publish_member(member))

    def read_members(self) -> Sequence[MemberRecord]:
        """The inner ``read_members``, unless a fault applies."""
        return self._call(self.faulty.read_members)

    def put_switchover(self, request: SwitchoverRequest) -> None:
        """The inner ``put_switchover``, unless a fault applies."""
        self._call(lambda: self.faulty.put_switchover(request))

    def read_switchover(self) -> SwitchoverRequest | None:
        """The inner ``read_switchover``, unless a fault applies."""
        return self._call(self.faulty.read_switchover)

    def close(self) -> None:
        """Close the inner store (never faulted). Idempotent."""
        self.faulty.close()


# ------------------------------------------------------------------------------------------------ hooks


@hookimpl
def zetafailover_store_schemes() -> list[str]:
    return [SCHEME]


@hookimpl
def zetafailover_make_store(url: str, cluster: str, timing: Timing, clock: Clock) -> HeartbeatStore | None:
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme != SCHEME:
        return None
    from zetafailover.stores.file import FileHeartbeatStore  # noqa: PLC0415

    folder, control = _parse_url(url)
    inner = FileHeartbeatStore(folder, cluster, lock_timeout=timing.store_timeout, clock=clock)
    store = ControlledStore(inner, control)
    store.refresh()
    return store


@hookimpl
def zetafailover_make_spool(config: NodeConfig, folder: Path, clock: Clock) -> ControlledSpool | None:
    """The node's spool as a :class:`ControlledSpool` on the store's control file (``faulty+file`` stores only)."""
    control = control_path_of(config.store_url)
    if control is None:
        return None
    return ControlledSpool(folder, node=config.node, control=control, clock=clock)
