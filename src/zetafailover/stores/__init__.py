"""Heartbeat stores: where the heartbeat, the term, the member records and the switchover request live.

* :class:`FileHeartbeatStore` — a folder every node sees (the default; ``file:///srv/fax/ha``);
* :class:`MemoryHeartbeatStore` — in memory, shared by handles on one :class:`MemoryBackend` (tests and
  simulations; ``memory://name``).

Every store passes the same contract suite, :class:`zetafailover.testing.store_contract.HeartbeatStoreContract`.
"""

from __future__ import annotations

from zetafailover.errors import ValidationError
from zetafailover.interfaces import Clock, HeartbeatStore
from zetafailover.stores.file import FileHeartbeatStore
from zetafailover.stores.memory import MemoryBackend, MemoryHeartbeatStore, memory_backend

__all__ = ["FileHeartbeatStore", "MemoryBackend", "MemoryHeartbeatStore", "memory_backend", "open_store_url"]


def open_store_url(url: str, cluster: str, *, lock_timeout: float = 2.0, clock: Clock | None = None) -> HeartbeatStore:
    """Open the store named by ``url`` for ``cluster``: ``file:///abs/path`` or ``memory://name``.

    Only the two stores built into this module; a node's store (any scheme a plugin provides, etcd included)
    is opened from its config by :func:`zetafailover.open_store`.

    Raises :class:`~zetafailover.errors.ValidationError` for an unknown scheme or a malformed URL, and
    :class:`~zetafailover.errors.StoreUnavailableError` when a store folder cannot be created. Timing: the
    file store may create its folder (one mkdir); nothing else blocks.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "file":
        return FileHeartbeatStore.from_url(url, cluster, lock_timeout=lock_timeout, clock=clock)
    if scheme == "memory":
        return MemoryHeartbeatStore.from_url(url, cluster)
    raise ValidationError(f"store URL {url!r}: unknown scheme {scheme!r}; known schemes: file, memory")
