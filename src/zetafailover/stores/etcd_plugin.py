"""The plugin that provides the ``etcd://`` heartbeat store (:class:`~zetafailover.stores.etcd.EtcdHeartbeatStore`).

A built-in plugin module of its own (listed in ``zetafailover.plugins.BUILTIN_EXTRA_MODULES``), going through
the same hooks as any third-party store. The store module is imported only when an ``etcd://`` URL is used.

URL: ``etcd://HOST:PORT[,HOST:PORT…][/PREFIX][?timeout=SECONDS&ttl=SECONDS]`` — see ``docs/etcd.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zetafailover.plugins import hookimpl

if TYPE_CHECKING:
    from zetafailover.core.timing import Timing
    from zetafailover.interfaces import Clock, HeartbeatStore

__all__ = ["SCHEME", "zetafailover_make_store", "zetafailover_store_schemes"]

SCHEME = "etcd"


@hookimpl
def zetafailover_store_schemes() -> list[str]:
    return [SCHEME]


@hookimpl
def zetafailover_make_store(url: str, cluster: str, timing: Timing, clock: Clock) -> HeartbeatStore | None:
    """An :class:`EtcdHeartbeatStore` for ``etcd://…`` URLs (None for other schemes). No I/O.

    Each call gets 90 % of ``timing.store_timeout``; the lease TTL is ``ceil(timeout − margin)`` seconds.
    A malformed URL raises :class:`~zetafailover.errors.ValidationError` naming it and the reason.
    """
    del clock  # etcd keeps its own time for leases; the store measures deadlines on the monotonic clock
    if url.partition("://")[0] != SCHEME:
        return None
    from zetafailover.stores.etcd import EtcdHeartbeatStore  # noqa: PLC0415

    return EtcdHeartbeatStore.from_url(url, cluster, timing=timing)
