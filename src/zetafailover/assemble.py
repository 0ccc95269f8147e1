"""From a validated config to a running node: the one place where implementations meet the core.

Every store, terminator, device and line strategy comes from the plugin manager, so the built-ins and a
third party's drivers are found the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pluggy

from zetafailover._process import current_identity
from zetafailover.clock import SystemClock
from zetafailover.config import NodeConfig
from zetafailover.core.events import EventLog
from zetafailover.core.node import BoundedStore, FailoverNode, Workload
from zetafailover.errors import ConfigError
from zetafailover.interfaces import Characteristic, Clock, FaxDevice, HeartbeatStore
from zetafailover.notify import PluginNotifier
from zetafailover.plugins import (
    get_plugin_manager,
    make_device,
    make_line_switch,
    make_spool,
    make_store,
    make_terminator,
    register_modules,
    validate_config,
)
from zetafailover.spool.workload import SpoolWorkload, spool_dir_of

__all__ = ["Assembly", "build_node", "open_store"]


@dataclass
class Assembly:
    """A node and the parts it was built from (closed together by :meth:`close`)."""

    node: FailoverNode
    notifier: PluginNotifier
    events: EventLog

    def close(self) -> None:
        self.notifier.close()
        self.events.close()
        self.node.store.close()


def open_store(
    config: NodeConfig, clock: Clock | None = None, pm: pluggy.PluginManager | None = None
) -> HeartbeatStore:
    """The heartbeat store named by ``config`` (for the CLI's read-only commands and for :func:`build_node`).

    Loads the config's ``[plugins] modules`` first (once each), so a store scheme that only such a module
    provides opens here just as it does in ``zetafailover run``. Raises :class:`ConfigError` for an unknown
    scheme or a store without an atomic compare-and-swap.
    """
    clock = clock or SystemClock()
    pm = pm or get_plugin_manager()
    register_modules(pm, config.plugin_modules, config.source)
    store = make_store(pm, config.store_url, config.cluster, config.timing, clock, source=config.source)
    if Characteristic.ATOMIC_CAS not in store.characteristics:
        raise ConfigError(
            config.source,
            "cluster.store",
            f"the store {config.store_url!r} offers no atomic compare-and-swap; a term cannot be won safely on it",
        )
    return store


def build_node(
    config: NodeConfig,
    *,
    clock: Clock | None = None,
    pm: pluggy.PluginManager | None = None,
    work: Workload | None = None,
) -> Assembly:
    """Build a :class:`FailoverNode` from ``config``: store, terminator, devices, line strategy, hooks, events.

    Raises :class:`~zetafailover.errors.ConfigError` for anything the config gets wrong (an unknown driver, a
    factory that refused its section, a plugin's validation); nothing is started.
    """
    clock = clock or SystemClock()
    pm = pm or get_plugin_manager()
    register_modules(pm, config.plugin_modules, config.source)
    validate_config(pm, config)
    store = open_store(config, clock, pm)
    terminator = make_terminator(pm, config.terminator, config.timing, clock)
    devices = [make_device(pm, section, config.node, clock) for section in config.devices]
    line = make_line_switch(pm, config.line, config.node, clock) if config.line is not None else None
    _make_private_dir(config.state_dir, config.source)
    events = EventLog(config.node, clock, config.state_dir / "events.jsonl")
    notifier = PluginNotifier(pm, config.timing.hook_timeout)
    if work is None and spool_dir_of(config) is not None:
        work = open_workload(config, devices, clock, notifier, pm=pm, events=events)
    node = FailoverNode(
        name=config.node,
        cluster=config.cluster,
        timing=config.timing,
        store=BoundedStore(store, config.timing.store_timeout, clock),
        terminator=terminator,
        clock=clock,
        priority=config.priority,
        devices=devices,
        line_switch=line,
        work=work,
        notifier=notifier,
        events=events,
        processes=(current_identity("node"),),
    )
    if isinstance(work, SpoolWorkload):
        work.set_guard(node.may_act)
    for device in devices:
        # Optional for drivers: a ``guard`` attribute they call with the term before answering or sending
        # (the node's self-fence deadline, checked at the moment of acting).
        if hasattr(device, "guard"):
            setattr(device, "guard", node.may_act)  # noqa: B010 - not every FaxDevice has one
    return Assembly(node=node, notifier=notifier, events=events)


def open_workload(
    config: NodeConfig,
    devices: Sequence[FaxDevice],
    clock: Clock,
    notifier: PluginNotifier | None = None,
    *,
    pm: pluggy.PluginManager | None = None,
    events: EventLog | None = None,
) -> SpoolWorkload:
    """The node's fax queue: the shared spool, dispatched onto this node's devices.

    The spool comes from :func:`~zetafailover.plugins.make_spool` (a plugin's ``zetafailover_make_spool``, else a
    plain :class:`~zetafailover.spool.directory.DirectorySpool`). With ``events``, the dispatcher reports spool
    faults and worker deaths in the node's event log.
    """
    folder = spool_dir_of(config)
    if folder is None:
        raise ConfigError(config.source, "spool.path", "missing: the store is not a shared folder, so name the spool")
    spool = make_spool(pm or get_plugin_manager(), config, folder, clock)
    return SpoolWorkload(
        spool,
        devices,
        config.node,
        clock,
        notify=notifier.notify if notifier else None,
        on_event=events.emit if events is not None else None,
    )


def _make_private_dir(path: Path, source: str) -> None:
    try:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(source, "node.state_dir", f"cannot create {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(source, "node.state_dir", f"{path} is not writable")
