"""The plugin manager: built-in implementations and third-party plugins, found the same way.

:func:`get_plugin_manager` registers the hook specs (:mod:`zetafailover.hookspecs`), the built-in drivers,
stores and terminators (as the plugin ``zetafailover.builtin``), then every plugin named in the
``zetafailover`` entry-point group. The factory functions (:func:`make_device`, :func:`make_line_switch`,
:func:`make_store`, :func:`make_terminator`) turn a config section into an object through the provider hooks
and turn every failure into a :class:`~zetafailover.errors.ConfigError` that names the section, the plugin and
the cause, so that a bad config stops the node at start-up with one clear line.

A third-party plugin is a module with functions decorated by :data:`hookimpl`::

    from zetafailover.plugins import hookimpl

    @hookimpl
    def zetafailover_device_drivers() -> list[str]:
        return ["acme"]

    @hookimpl
    def zetafailover_make_device(section, node, clock):
        if section.kind != "acme":
            return None
        return AcmeDevice(section.name, ...)

and an entry point in its ``pyproject.toml``::

    [project.entry-points.zetafailover]
    acme = "acme_zetafailover"

Timing: everything here runs at start-up on the caller's thread and blocks for as long as the plugins'
imports and factories take; nothing here runs on the failover path.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from zetafailover import hookspecs
from zetafailover.errors import ConfigError, PluginError
from zetafailover.interfaces import FaxDevice, HeartbeatStore, LineSwitch, ProcessTerminator

if TYPE_CHECKING:
    from pathlib import Path

    from zetafailover.config import NodeConfig, SectionConfig
    from zetafailover.core.timing import Timing
    from zetafailover.interfaces import Clock
    from zetafailover.spool.directory import DirectorySpool

__all__ = [
    "BUILTIN_PLUGIN_NAME",
    "ENTRYPOINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "available",
    "get_plugin_manager",
    "hookimpl",
    "list_plugins",
    "make_device",
    "make_line_switch",
    "make_spool",
    "make_store",
    "make_terminator",
    "register_cli",
    "register_modules",
    "section_error",
    "validate_config",
]

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)
"""Decorate a plugin's hook implementations with this: ``@hookimpl`` or ``@hookimpl(tryfirst=True)``."""

ENTRYPOINT_GROUP = hookspecs.PROJECT
"""The entry-point group third-party plugins register under."""

BUILTIN_PLUGIN_NAME = "zetafailover.builtin"
"""The name the built-in implementations are registered under."""

BUILTIN_EXTRA_MODULES: tuple[str, ...] = (
    "zetafailover.stores.etcd_plugin",
    "zetafailover.lines.plugin",
    "zetafailover.devices.isdn_plugin",
    "zetafailover.devices.modem_plugin",
)
"""Further built-in plugin modules (each holds the ``@hookimpl`` functions of one built-in family)."""


class PluginManager(pluggy.PluginManager):
    """A :class:`pluggy.PluginManager` that remembers which distribution each entry-point plugin came from.

    ``origins`` maps a plugin name to ``(distribution name, version)``. Loading is the only thing that
    differs from pluggy's own: a plugin that fails to import or register raises :class:`PluginError` naming
    the entry point and the cause, never a bare traceback.
    """

    def __init__(self, project_name: str = hookspecs.PROJECT) -> None:
        super().__init__(project_name)
        self.origins: dict[str, tuple[str, str]] = {}

    def load_entrypoint_plugins(self, group: str = ENTRYPOINT_GROUP) -> int:
        """Import and register every plugin of the entry-point ``group``; return how many were loaded.

        Plugins already registered (or blocked) under an entry point's name are skipped, as pluggy does.
        Raises :class:`PluginError` naming the entry point, its distribution and the cause when one fails.
        Blocks for the plugins' imports.
        """
        count = 0
        for ep in _entry_points(group):
            if self.has_plugin(ep.name) or self.is_blocked(ep.name):
                continue
            dist = _dist_of(ep)
            origin = f"entry point {ep.name!r} = {ep.value!r}" + (f" of {dist[0]} {dist[1]}" if dist else "")
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(f"plugin {origin} failed to load: {_describe(exc)}") from exc
            try:
                self.register(plugin, name=ep.name)
            except Exception as exc:
                raise PluginError(f"plugin {origin} could not be registered: {_describe(exc)}") from exc
            if dist:
                self.origins[ep.name] = dist
            count += 1
        return count


def get_plugin_manager(load_entrypoints: bool = True) -> PluginManager:
    """A plugin manager with the hook specs, the built-ins and (unless told not to) the installed plugins.

    Raises :class:`PluginError` when an installed plugin fails to import or register. Blocks for the imports.
    """
    import zetafailover._builtin_plugins as _builtin_plugins  # noqa: PLC0415, PLR0402 (it imports this module)

    pm = PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(_builtin_plugins, name=BUILTIN_PLUGIN_NAME)
    for module_name in BUILTIN_EXTRA_MODULES:
        # Built-ins with a module of hooks of their own (registered like any plugin, under their module name).
        pm.register(importlib.import_module(module_name), name=module_name)
    if load_entrypoints:
        pm.load_entrypoint_plugins(ENTRYPOINT_GROUP)
    return pm


def register_modules(pm: pluggy.PluginManager, modules: Sequence[str], source: str = "<config>") -> None:
    """Import and register plugin modules named in the config (``[plugins] modules``), once each.

    Raises :class:`ConfigError` naming ``plugins.modules`` and the module when the import or registration fails.
    """
    for name in modules:
        if pm.has_plugin(name):
            continue
        try:
            module = importlib.import_module(name)
            pm.register(module, name=name)
        except Exception as exc:
            raise ConfigError(
                source, "plugins.modules", f"cannot load plugin module {name!r}: {type(exc).__name__}: {exc}"
            ) from None


# -------------------------------------------------------------------------------------------- factories


def make_device(pm: pluggy.PluginManager, section: SectionConfig, node: str, clock: Clock) -> FaxDevice:
    """Build the device for one ``[[device]]`` section through ``zetafailover_make_device``.

    Raises :class:`ConfigError` naming ``section.where`` when no plugin provides the driver (listing the
    drivers that exist) or when the plugin's factory fails (naming the plugin and the cause).
    """
    device: FaxDevice = _provide(
        pm,
        "zetafailover_make_device",
        FaxDevice,
        {"section": section, "node": node, "clock": clock},
        what="device driver",
        name=section.kind,
        listing="zetafailover_device_drivers",
        where=section.where,
        key="driver",
    )
    return device


def make_line_switch(pm: pluggy.PluginManager, section: SectionConfig, node: str, clock: Clock) -> LineSwitch:
    """Build the line-switch strategy for the ``[line]`` section through ``zetafailover_make_line_switch``.

    Errors as :func:`make_device`.
    """
    switch: LineSwitch = _provide(
        pm,
        "zetafailover_make_line_switch",
        LineSwitch,
        {"section": section, "node": node, "clock": clock},
        what="line-switch strategy",
        name=section.kind,
        listing="zetafailover_line_strategies",
        where=section.where,
        key="strategy",
    )
    return switch


def make_store(
    pm: pluggy.PluginManager, url: str, cluster: str, timing: Timing, clock: Clock, *, source: str = "<config>"
) -> HeartbeatStore:
    """Build the heartbeat store for ``url`` through ``zetafailover_make_store``.

    ``source`` (the config file) only goes into error messages, which name the key ``cluster.store``.
    """
    scheme = url.split("://", 1)[0] if "://" in url else url
    store: HeartbeatStore = _provide(
        pm,
        "zetafailover_make_store",
        HeartbeatStore,
        {"url": url, "cluster": cluster, "timing": timing, "clock": clock},
        what="store scheme",
        name=scheme,
        listing="zetafailover_store_schemes",
        where=f"{source}: cluster",
        key="store",
    )
    return store


def make_terminator(
    pm: pluggy.PluginManager, section: SectionConfig, timing: Timing, clock: Clock
) -> ProcessTerminator:
    """Build the process terminator for the ``[terminator]`` section through ``zetafailover_make_terminator``.

    Errors as :func:`make_device`.
    """
    terminator: ProcessTerminator = _provide(
        pm,
        "zetafailover_make_terminator",
        ProcessTerminator,
        {"section": section, "timing": timing, "clock": clock},
        what="terminator kind",
        name=section.kind,
        listing="zetafailover_terminator_kinds",
        where=section.where,
        key="kind",
    )
    return terminator


def make_spool(pm: pluggy.PluginManager, config: NodeConfig, folder: Path, clock: Clock) -> DirectorySpool:
    """Open the node's spool on ``folder``: a plugin's (``zetafailover_make_spool``), else a plain DirectorySpool.

    A plugin that raises, or returns something that is not a ``DirectorySpool``, becomes a
    :class:`~zetafailover.errors.ConfigError` naming ``spool.path`` and the plugin. Timing: the plugin's factory,
    or creating the spool's folders (a few ``mkdir`` and one ``fsync`` on a new spool).
    """
    from zetafailover.spool.directory import DirectorySpool  # noqa: PLC0415 - the spool is not needed to load plugins

    caller = pm.hook.zetafailover_make_spool
    try:
        spool = caller(config=config, folder=folder, clock=clock)
    except ConfigError:
        raise
    except Exception as exc:
        culprit = _culprit(pm, caller.get_hookimpls(), exc)
        raise ConfigError(config.source, "spool.path", f"{folder}: {culprit} failed: {_describe(exc)}") from exc
    if spool is None:
        return DirectorySpool(folder, node=config.node, clock=clock)
    if not isinstance(spool, DirectorySpool):
        raise ConfigError(
            config.source,
            "spool.path",
            f"{folder}: the plugin factory returned a {type(spool).__module__}.{type(spool).__qualname__}, "
            "which is not a DirectorySpool",
        )
    return spool


def validate_config(pm: pluggy.PluginManager, config: NodeConfig) -> None:
    """Run every plugin's ``zetafailover_validate_config`` on ``config``.

    Each implementation runs separately, in pluggy's call order; a :class:`ConfigError` it raises passes
    through unchanged, any other exception becomes a ConfigError naming the plugin and the cause.
    """
    for impl in _call_order(pm.hook.zetafailover_validate_config.get_hookimpls()):
        try:
            impl.function(**_kwargs_for(impl, {"config": config}))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                config.source,
                "",
                f"plugin {_plugin_label(pm, impl.plugin_name)} failed to validate the config: {_describe(exc)}",
            ) from exc


def section_error(section: SectionConfig, key: str, reason: str) -> ConfigError:
    """A :class:`ConfigError` for ``key`` of ``section``, naming the file and the dotted key.

    For plugins: ``raise section_error(section, "log", "missing; it is required")`` gives
    ``fax1.toml: device[0].log: missing; it is required``.
    """
    source, dotted = _split_where(section.where, key)
    return ConfigError(source, dotted, reason)


# ----------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin, as ``zetafailover plugins`` shows it."""

    name: str
    distribution: str | None
    """The installed distribution it came from (entry-point plugins only)."""
    version: str | None
    device_drivers: tuple[str, ...]
    line_strategies: tuple[str, ...]
    store_schemes: tuple[str, ...]
    terminator_kinds: tuple[str, ...]
    hooks: tuple[str, ...]
    """Every ``zetafailover_*`` hook it implements."""
    errors: tuple[str, ...] = ()
    """Listing hooks of this plugin that raised, with the cause."""


def list_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with what it provides, built-ins first, then by name. Never raises for a plugin."""
    origins: dict[str, tuple[str, str]] = dict(pm.origins) if isinstance(pm, PluginManager) else {}
    for plugin, distinfo in pm.list_plugin_distinfo():
        plugin_name = pm.get_name(plugin)
        if plugin_name and plugin_name not in origins:
            origins[plugin_name] = (str(distinfo.project_name), str(distinfo.version))
    listings: dict[str, dict[str, tuple[str, ...]]] = {}
    errors: dict[str, list[str]] = {}
    for hook in _LISTING_HOOKS:
        for plugin_name, names, error in _listing_by_plugin(pm, hook):
            listings.setdefault(plugin_name, {})[hook] = names
            if error:
                errors.setdefault(plugin_name, []).append(f"{hook}: {error}")
    infos: list[PluginInfo] = []
    for plugin_name, plugin in pm.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        dist = origins.get(plugin_name)
        provided = listings.get(plugin_name, {})
        infos.append(
            PluginInfo(
                name=plugin_name,
                distribution=dist[0] if dist else None,
                version=dist[1] if dist else None,
                device_drivers=provided.get("zetafailover_device_drivers", ()),
                line_strategies=provided.get("zetafailover_line_strategies", ()),
                store_schemes=provided.get("zetafailover_store_schemes", ()),
                terminator_kinds=provided.get("zetafailover_terminator_kinds", ()),
                hooks=hooks,
                errors=tuple(errors.get(plugin_name, ())),
            )
        )
    infos.sort(key=lambda info: (info.name != BUILTIN_PLUGIN_NAME, info.name))
    return infos


def available(pm: pluggy.PluginManager, listing_hook: str) -> list[str]:
    """The sorted, de-duplicated names all plugins report through ``listing_hook`` (e.g. the device drivers).

    Each implementation is asked separately, so one that raises does not hide the others.
    """
    names: set[str] = set()
    for _plugin, provided, _error in _listing_by_plugin(pm, listing_hook):
        names.update(provided)
    return sorted(names)


# -------------------------------------------------------------------------------------------------- CLI


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plugins`` subcommand (``zetafailover plugins [--json]``); its handler is ``args.func``."""
    parser = subparsers.add_parser(
        "plugins",
        help="list the plugins found and what they provide",
        description="List the built-in and installed plugins with the drivers, line strategies, store schemes "
        "and terminator kinds each provides.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_plugins_command)


def _plugins_command(args: argparse.Namespace) -> int:
    try:
        infos = list_plugins(get_plugin_manager())
    except PluginError as exc:
        print(f"zetafailover plugins: error: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps([asdict(info) for info in infos], indent=2))
        return 0
    for info in infos:
        origin = f"  ({info.distribution} {info.version})" if info.distribution else ""
        print(f"{info.name}{origin}")
        for label, names in (
            ("device drivers", info.device_drivers),
            ("line strategies", info.line_strategies),
            ("store schemes", info.store_schemes),
            ("terminator kinds", info.terminator_kinds),
        ):
            if names:
                print(f"    {label + ':':<18}{', '.join(names)}")
        others = [h for h in info.hooks if h not in _PROVIDER_AND_LISTING_HOOKS]
        if others:
            print(f"    {'other hooks:':<18}{', '.join(h.removeprefix('zetafailover_') for h in others)}")
        for error in info.errors:
            print(f"    error: {error}")
    return 0


# ---------------------------------------------------------------------------------------------- helpers

_LISTING_HOOKS = (
    "zetafailover_device_drivers",
    "zetafailover_line_strategies",
    "zetafailover_store_schemes",
    "zetafailover_terminator_kinds",
)
_PROVIDER_AND_LISTING_HOOKS = frozenset(
    {
        *_LISTING_HOOKS,
        "zetafailover_make_device",
        "zetafailover_make_line_switch",
        "zetafailover_make_store",
        "zetafailover_make_terminator",
    }
)


def _provide(
    pm: pluggy.PluginManager,
    hook_name: str,
    protocol: Any,
    kwargs: Mapping[str, Any],
    *,
    what: str,
    name: str,
    listing: str,
    where: str,
    key: str,
) -> Any:
    """Call the firstresult hook ``hook_name``; map None and failures to ConfigError (see :func:`make_device`)."""
    source, dotted = _split_where(where, key)
    caller = getattr(pm.hook, hook_name)
    try:
        result = caller(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:
        culprit = _culprit(pm, caller.get_hookimpls(), exc)
        raise ConfigError(source, dotted, f"{what} {name!r}: {culprit} failed: {_describe(exc)}") from exc
    if result is None:
        names = available(pm, listing)
        known = ", ".join(names) if names else "none"
        raise ConfigError(source, dotted, f"unknown {what} {name!r}; available: {known}")
    if not isinstance(result, protocol):
        missing = [m for m in _protocol_members(protocol) if not hasattr(result, m)]
        raise ConfigError(
            source,
            dotted,
            f"{what} {name!r}: the plugin factory returned a {type(result).__module__}.{type(result).__qualname__}, "
            f"which is not a {protocol.__name__} (missing: {', '.join(missing) or '?'})",
        )
    return result


def _protocol_members(protocol: type) -> list[str]:
    members: set[str] = set()
    for klass in protocol.__mro__:
        if klass is object or klass.__name__ in ("Protocol", "Generic"):
            continue
        members.update(n for n in vars(klass) if not n.startswith("_"))
        members.update(getattr(klass, "__annotations__", {}))
    return sorted(members)


def _split_where(where: str, key: str) -> tuple[str, str]:
    """``"fax1.toml: device[0]"`` and ``"driver"`` → ``("fax1.toml", "device[0].driver")``."""
    source, sep, section = where.rpartition(": ")
    if not sep:
        return where, key
    return source, f"{section}.{key}" if section else key


def _culprit(pm: pluggy.PluginManager, impls: Iterable[pluggy.HookImpl], exc: BaseException) -> str:
    """Name the plugin whose hook implementation raised ``exc``, found by walking its traceback."""
    codes = {}
    for impl in impls:
        code = getattr(_unwrap(impl.function), "__code__", None)
        if code is not None:
            codes[code] = impl.plugin_name
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        plugin_name = codes.get(tb.tb_frame.f_code)
        if plugin_name is not None:
            return f"the factory of plugin {_plugin_label(pm, plugin_name)}"
        tb = tb.tb_next
    return "a plugin factory"


def _unwrap(function: Callable[..., Any]) -> Callable[..., Any]:
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    return function


def _plugin_label(pm: pluggy.PluginManager, plugin_name: str) -> str:
    origin = pm.origins.get(plugin_name) if isinstance(pm, PluginManager) else None
    return f"{plugin_name!r} ({origin[0]} {origin[1]})" if origin else repr(plugin_name)


def _listing_by_plugin(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, tuple[str, ...], str]]:
    """``(plugin name, names it lists, error)`` for every implementation of a listing hook."""
    rows: list[tuple[str, tuple[str, ...], str]] = []
    for impl in _call_order(getattr(pm.hook, hook_name).get_hookimpls()):
        try:
            result: Any = impl.function()
            if result is None:
                names: tuple[str, ...] = ()
            elif isinstance(result, list | tuple) and all(isinstance(n, str) for n in result):
                names = tuple(result)
            else:
                raise TypeError(f"must return a list of names, not {result!r}")
            rows.append((impl.plugin_name, names, ""))
        except Exception as exc:
            rows.append((impl.plugin_name, (), _describe(exc)))
    return rows


def _call_order(impls: list[pluggy.HookImpl]) -> list[pluggy.HookImpl]:
    """Implementations in the order pluggy calls them (last registered first, ``tryfirst`` first); no wrappers."""
    return [impl for impl in reversed(impls) if not (impl.wrapper or impl.hookwrapper)]


def _kwargs_for(impl: pluggy.HookImpl, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``payload`` that ``impl`` declares (pluggy passes arguments by name)."""
    return {name: payload[name] for name in (*impl.argnames, *impl.kwargnames) if name in payload}


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line (pluggy's validation messages span several)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=group), key=lambda ep: ep.name)


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str] | None:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None
    try:
        return str(dist.metadata["Name"]), str(dist.version)
    except Exception:  # a broken METADATA file must not hide the real error
        return None
