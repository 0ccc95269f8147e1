"""Every ``zetafailover_*`` hook, in one place, grouped by when it runs.

Plugins implement these with :data:`zetafailover.plugins.hookimpl`; the built-in drivers, stores and
terminators are plugins themselves (``zetafailover._builtin_plugins``), registered through the same
:class:`pluggy.PluginManager` as a third party's.

Three kinds of hook:

* **provider hooks** (``firstresult=True``): *make me a device / line switch / store / terminator for this
  config*. Each implementation returns ``None`` when the name is not its own, so pluggy asks the next one;
  the first non-``None`` result wins. They run at start-up, on the caller's thread, before the node takes
  part in the cluster; they may block for as long as building the object takes (opening nothing: devices are
  opened later by the node).
* **listing hooks** (plain): each implementation returns the names it provides; the results are
  concatenated so an error can list everything that exists, and ``zetafailover plugins`` can show who
  provides what. They must be cheap and never block.
* **notification hooks** (plain): the core reports what already happened, *after* the safety-critical step
  they describe (invariant 9). They are delivered by :class:`zetafailover.notify.PluginNotifier` on one
  worker thread, in order, each implementation separately and bounded by ``timing.hook_timeout``; a hook that
  raises or hangs is logged with its plugin's name and skipped. Their return value is ignored, and nothing a
  notification hook does can veto or delay term acquisition, fencing, device start, line switching or spool
  recovery.

Implementations may declare only the arguments they need (pluggy passes the rest by name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from zetafailover.config import NodeConfig, SectionConfig
    from zetafailover.core.timing import Timing
    from zetafailover.interfaces import (
        Clock,
        FaxDevice,
        FenceResult,
        HeartbeatStore,
        LineSwitch,
        ProcessTerminator,
        Transition,
    )
    from zetafailover.spool.directory import DirectorySpool

__all__ = ["NOTIFICATION_EVENTS", "PROJECT", "hookspec"]

PROJECT = "zetafailover"
"""The pluggy project name and the entry-point group third-party plugins register under."""

hookspec = pluggy.HookspecMarker(PROJECT)

NOTIFICATION_EVENTS = (
    "role_changed",
    "term_won",
    "peer_fenced",
    "devices_online",
    "lines_switched",
    "spool_recovered",
    "job_state_changed",
    "fax_received",
    "device_health_changed",
)
"""Event names accepted by :meth:`zetafailover.interfaces.Notifier.notify`: each is a hook name below without
the ``zetafailover_`` prefix."""


# ----------------------------------------------------------------------------------- start-up: validation


@hookspec
def zetafailover_validate_config(config: NodeConfig) -> None:
    """Check the parts of ``config`` that belong to this plugin; raise to refuse it.

    Notification-style (every implementation runs; return value ignored). Called once at start-up, after the
    core has parsed and validated the file and before any provider hook runs, so a bad value stops the node
    before it touches a store or a device. Look only at sections whose ``kind`` is yours
    (``config.devices[i].kind``, ``config.line.kind``, ``config.terminator.kind``).

    Raise :class:`zetafailover.errors.ConfigError` with the section's file, the dotted key and the reason
    (``ConfigError(source, "device[0].log", "missing; it is required")``); it is shown to the user as is. Any
    other exception is wrapped into a ConfigError naming the plugin.

    :param config: the node's validated settings.
    """


# ------------------------------------------------------------------------------- start-up: provider hooks


@hookspec(firstresult=True)
def zetafailover_make_device(section: SectionConfig, node: str, clock: Clock) -> FaxDevice | None:
    """Build the fax device described by one ``[[device]]`` section, or return ``None`` if it is not yours.

    ``firstresult``: the first implementation that returns an object wins. Called at start-up, once per
    section, on every node (active or passive). Do not open the hardware here: the node calls
    :meth:`~zetafailover.interfaces.FaxDevice.open` later and ``start(term)`` only after the term is won and
    the old active fenced.

    :param section: ``section.kind`` is the driver name (``driver = "..."``), ``section.name`` the device
        name, ``section.options`` the section's other keys, ``section.where`` its place for error messages.
    :param node: this node's name.
    :param clock: the clock to read all time from (a fake one in tests).
    :returns: a :class:`~zetafailover.interfaces.FaxDevice`, or ``None`` when ``section.kind`` is not a driver
        this plugin provides. Raise :class:`~zetafailover.errors.ConfigError` for a bad option.
    """


@hookspec(firstresult=True)
def zetafailover_make_line_switch(section: SectionConfig, node: str, clock: Clock) -> LineSwitch | None:
    """Build the line-switch strategy described by the ``[line]`` section, or return ``None``.

    ``firstresult``. Called at start-up on every node, when the config has a ``[line]`` section.

    :param section: ``section.kind`` is the strategy name (``strategy = "..."``), ``section.options`` the
        section's other keys.
    :param node: this node's name.
    :param clock: the clock to read all time from.
    :returns: a :class:`~zetafailover.interfaces.LineSwitch`, or ``None`` when the strategy is not yours.
    """


@hookspec(firstresult=True)
def zetafailover_make_store(url: str, cluster: str, timing: Timing, clock: Clock) -> HeartbeatStore | None:
    """Build the heartbeat store for ``url``, or return ``None`` if its scheme is not yours.

    ``firstresult``. Called at start-up and by the command line (``status``, ``switchover``).

    :param url: the store URL from ``cluster.store`` (``file:///srv/fax/ha``, ``memory://test``,
        ``etcd://host:2379``); a plain folder has already been turned into a ``file://`` URL.
    :param cluster: the cluster name; a store keeps each cluster's records apart.
    :param timing: the cluster's timing (``store_timeout`` bounds every store call).
    :param clock: the clock to read all time from.
    :returns: a :class:`~zetafailover.interfaces.HeartbeatStore`, or ``None`` for a scheme that is not yours.
    """


@hookspec(firstresult=True)
def zetafailover_make_terminator(section: SectionConfig, timing: Timing, clock: Clock) -> ProcessTerminator | None:
    """Build the process terminator described by the ``[terminator]`` section, or return ``None``.

    ``firstresult``. Called at start-up on every node (any node may have to fence another).

    :param section: ``section.kind`` is the terminator kind (``kind = "..."``), ``section.options`` the other
        keys.
    :param timing: the cluster's timing (``fence_timeout`` bounds a terminate call).
    :param clock: the clock to read all time from.
    :returns: a :class:`~zetafailover.interfaces.ProcessTerminator`, or ``None`` for a kind that is not yours.
    """


@hookspec(firstresult=True)
def zetafailover_make_spool(config: NodeConfig, folder: Path, clock: Clock) -> DirectorySpool | None:
    """Open the node's spool on ``folder``, or return ``None`` to leave it to the next plugin or the core.

    ``firstresult``. Called once at start-up, on every node that has a spool, after the store is open. When every
    implementation returns ``None`` (the usual case: no plugin implements it) the core opens a plain
    :class:`~zetafailover.spool.directory.DirectorySpool`. A plugin returns a ``DirectorySpool`` (or a subclass of
    it: one that audits, or one that injects faults for tests, as ``zetafailover.testing.fault_plugin`` does); it
    must keep every durability and term-fencing promise of the class, because the failover guarantees rest on
    them. Anything else is refused with a :class:`~zetafailover.errors.ConfigError` naming ``spool.path``.

    :param config: the node's validated settings (``config.node`` is the name to open the spool as).
    :param folder: the spool folder (``[spool] path``, or ``spool/`` inside a shared-folder store).
    :param clock: the clock to read all time from.
    :returns: a :class:`~zetafailover.spool.directory.DirectorySpool`, or ``None``.
    """


# -------------------------------------------------------------------------------- start-up: listing hooks


@hookspec
def zetafailover_device_drivers() -> list[str]:
    """The device driver names this plugin provides (``driver = "..."`` in ``[[device]]``).

    Plain hook; results of all plugins are concatenated. Never blocks.
    """
    raise NotImplementedError  # pragma: no cover - a spec is never called


@hookspec
def zetafailover_line_strategies() -> list[str]:
    """The line-switch strategy names this plugin provides (``strategy = "..."`` in ``[line]``).

    Plain hook; results concatenated. Never blocks.
    """
    raise NotImplementedError  # pragma: no cover - a spec is never called


@hookspec
def zetafailover_store_schemes() -> list[str]:
    """The store URL schemes this plugin provides (``file``, ``memory``, ``etcd``…), without ``://``.

    Plain hook; results concatenated. Never blocks.
    """
    raise NotImplementedError  # pragma: no cover - a spec is never called


@hookspec
def zetafailover_terminator_kinds() -> list[str]:
    """The terminator kinds this plugin provides (``kind = "..."`` in ``[terminator]``).

    Plain hook; results concatenated. Never blocks.
    """
    raise NotImplementedError  # pragma: no cover - a spec is never called


# ------------------------------------------------------------------ notifications: the node's role changes


@hookspec
def zetafailover_role_changed(transition: Transition) -> None:
    """The node's state changed (passive → activating → active → standing down → passive…).

    Notification. Called after the new state is in force (after the term CAS that made it, after devices
    went off line when standing down). ``transition.phases`` holds the durations of the takeover phases.
    """


# ----------------------------------------------------- notifications: takeover phases, in the order they run


@hookspec
def zetafailover_term_won(node: str, term: int) -> None:
    """``node`` won ``term`` by compare-and-swap on the store (phase 1 of a takeover).

    Notification, called after the CAS succeeded and before fencing; the fencing itself does not wait for it.
    """


@hookspec
def zetafailover_peer_fenced(node: str, term: int, result: FenceResult) -> None:
    """The old active was fenced, or its self-fence deadline passed (phase 2).

    Notification, called after fencing finished. ``node`` is the node that fenced (the new active) under
    ``term``; ``result.confirmed`` is False when the takeover relied on the self-fence deadline instead.
    """


@hookspec
def zetafailover_devices_online(node: str, term: int, devices: list[str]) -> None:
    """``node``'s devices went on line under ``term`` (phase 3). ``devices`` names the ones that started.

    Notification, called after every device's ``start(term)`` returned.
    """


@hookspec
def zetafailover_lines_switched(node: str, term: int) -> None:
    """The line-switch strategy routed the lines to ``node`` under ``term`` (phase 4).

    Notification, called after :meth:`~zetafailover.interfaces.LineSwitch.take` returned.
    """


@hookspec
def zetafailover_spool_recovered(node: str, term: int, requeued: list[str]) -> None:
    """The new active re-queued the jobs that were in flight on the old one (phase 5, the last).

    Notification. ``requeued`` holds the job ids put back in the queue with the reason ``failover``.
    """


# ---------------------------------------------------------------------- notifications: work and devices


@hookspec
def zetafailover_job_state_changed(job_id: str, state: str, term: int, reason: str) -> None:
    """An outbound job moved to ``state`` (``queued``, ``sending``, ``sent``, ``failed``, ``cancelled``…).

    Notification, called after the transition is durable in the spool (stamped with ``term``). ``reason``
    says why (``failover``, the last error…), or is empty.
    """


@hookspec
def zetafailover_fax_received(fax_id: str, device: str, caller: str, pages: int, complete: bool) -> None:
    """A fax was received on ``device`` from ``caller`` and stored as ``fax_id``.

    Notification, called after every page is on disk. ``complete`` is False when the call dropped before the
    sender finished (the pages received so far are kept).
    """


@hookspec
def zetafailover_device_health_changed(node: str, device: str, health: str) -> None:
    """``monitor()`` of ``device`` on ``node`` reported a new health (``running``, ``stopped``, ``failed``).

    Notification, called after the node has acted on the change.
    """
