"""The built-in stores, terminators and device drivers, registered as the plugin ``zetafailover.builtin``.

They go through exactly the hooks a third-party plugin uses (nothing built in is special). Implementation
modules are imported inside the hook bodies, so loading the plugin manager imports none of them and a
config that uses only third-party drivers never imports the built-in ones.

Provided:

* stores: ``file://PATH`` (a shared folder), ``memory://NAME`` (in-process, for tests);
* terminators: ``pid`` (``grace``, ``reboot_confirms``), ``command`` (``command`` as an argument list,
  ``timeout``, ``env``), ``none``;
* device drivers: ``loopback`` (``channels`` 1..240, ``log``, ``page_seconds``).

Other built-in families register modules of their own through the same manager
(:data:`zetafailover.plugins.BUILTIN_EXTRA_MODULES`): the line strategies (``zetafailover.lines.plugin``), the
ISDN card driver (``zetafailover.devices.isdn_plugin``), and the etcd store and modem driver when present.

Every option is checked in :func:`zetafailover_validate_config` at start-up and again in the factory, so a
factory called directly refuses bad values too. Errors name the file, the key and the reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zetafailover.errors import ConfigError
from zetafailover.plugins import hookimpl, section_error

if TYPE_CHECKING:
    from zetafailover.config import NodeConfig, SectionConfig
    from zetafailover.core.timing import Timing
    from zetafailover.interfaces import Clock, FaxDevice, HeartbeatStore, ProcessTerminator

STORE_SCHEMES = ("file", "memory")
TERMINATOR_KINDS = ("pid", "command", "none")
DEVICE_DRIVERS = ("loopback",)
LINE_STRATEGIES: tuple[str, ...] = ()

_MAX_CHANNELS = 240
"""A loopback device simulates at most what one card carries (an E1 PRI has 30; a rack of them, 240)."""

_TERMINATOR_KEYS = {"pid": {"grace", "reboot_confirms"}, "command": {"command", "timeout", "env"}, "none": set()}
_LOOPBACK_KEYS = {"channels", "log", "page_seconds"}


# ---------------------------------------------------------------------------------------------- listing


@hookimpl
def zetafailover_store_schemes() -> list[str]:
    return list(STORE_SCHEMES)


@hookimpl
def zetafailover_terminator_kinds() -> list[str]:
    return list(TERMINATOR_KINDS)


@hookimpl
def zetafailover_device_drivers() -> list[str]:
    return list(DEVICE_DRIVERS)


@hookimpl
def zetafailover_line_strategies() -> list[str]:
    return list(LINE_STRATEGIES)


# ------------------------------------------------------------------------------------------- validation


@hookimpl
def zetafailover_validate_config(config: NodeConfig) -> None:
    """Check the options of every built-in terminator and device section of ``config``."""
    if config.terminator.kind in TERMINATOR_KINDS:
        _terminator_options(config.terminator)
    for section in config.devices:
        if section.kind == "loopback":
            _loopback_options(section)


# ------------------------------------------------------------------------------------------------ stores


@hookimpl
def zetafailover_make_store(url: str, cluster: str, timing: Timing, clock: Clock) -> HeartbeatStore | None:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    if scheme == "file":
        from zetafailover.stores.file import FileHeartbeatStore  # noqa: PLC0415

        if not rest:
            raise ConfigError("<config>", "cluster.store", f"{url!r} names no folder")
        return FileHeartbeatStore(Path(rest), cluster, lock_timeout=timing.store_timeout, clock=clock)
    if scheme == "memory":
        from zetafailover.stores.memory import MemoryHeartbeatStore, memory_backend  # noqa: PLC0415

        if not rest:
            raise ConfigError("<config>", "cluster.store", f"{url!r} names no memory store (memory://NAME)")
        return MemoryHeartbeatStore(cluster, memory_backend(rest))
    return None


# ------------------------------------------------------------------------------------------- terminators


@hookimpl
def zetafailover_make_terminator(section: SectionConfig, timing: Timing, clock: Clock) -> ProcessTerminator | None:
    if section.kind not in TERMINATOR_KINDS:
        return None
    options = _terminator_options(section)
    if section.kind == "pid":
        from zetafailover.terminators.pid import PidTerminator  # noqa: PLC0415

        return PidTerminator(grace=options["grace"], clock=clock, reboot_confirms=options["reboot_confirms"])
    if section.kind == "command":
        from zetafailover.terminators.command import CommandTerminator  # noqa: PLC0415

        return CommandTerminator(argv=options["command"], timeout=options["timeout"], env=options["env"])
    from zetafailover.terminators.null import NullTerminator  # noqa: PLC0415

    return NullTerminator()


def _terminator_options(section: SectionConfig) -> dict[str, Any]:
    """The validated options of a built-in terminator section (defaults filled in)."""
    opts = section.options
    _no_unknown(section, _TERMINATOR_KEYS[section.kind], f"the {section.kind!r} terminator")
    if section.kind == "pid":
        reboot_confirms = opts.get("reboot_confirms", False)
        if not isinstance(reboot_confirms, bool):
            raise section_error(section, "reboot_confirms", f"must be true or false, not {reboot_confirms!r}")
        return {"grace": _seconds(section, "grace", default=3.0), "reboot_confirms": reboot_confirms}
    if section.kind == "command":
        argv = opts.get("command")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) for a in argv)
            or not argv[0].strip()
            or any("\x00" in a for a in argv)
        ):
            raise section_error(
                section,
                "command",
                f"must be a non-empty list of strings (the program and its arguments, no shell), not {argv!r}",
            )
        env = opts.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise section_error(section, "env", f'must be a table of strings (NAME = "value"), not {env!r}')
        return {
            "command": list(argv),
            "timeout": _seconds(section, "timeout", default=None, positive=True),
            "env": dict(env),
        }
    return {}


# ----------------------------------------------------------------------------------------------- devices


@hookimpl
def zetafailover_make_device(section: SectionConfig, clock: Clock) -> FaxDevice | None:
    if section.kind != "loopback":
        return None
    options = _loopback_options(section)
    from zetafailover.devices.loopback import LoopbackDevice  # noqa: PLC0415

    return LoopbackDevice(
        name=section.name,
        channels=options["channels"],
        log_path=options["log"],
        clock=clock,
        page_seconds=options["page_seconds"],
    )


def _loopback_options(section: SectionConfig) -> dict[str, Any]:
    """The validated options of a ``loopback`` device section (defaults filled in)."""
    opts = section.options
    _no_unknown(section, _LOOPBACK_KEYS, "the 'loopback' driver")
    channels = opts.get("channels", 1)
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= _MAX_CHANNELS:
        raise section_error(section, "channels", f"must be a whole number from 1 to {_MAX_CHANNELS}, not {channels!r}")
    log = opts.get("log")
    if log is not None and (not isinstance(log, str) or not log.strip() or "\x00" in log):
        raise section_error(section, "log", f"must be a file path, not {log!r}")
    return {
        "channels": channels,
        "log": section.path(log) if log is not None else None,
        "page_seconds": _seconds(section, "page_seconds", default=0.0),
    }


# ---------------------------------------------------------------------------------------------- helpers


def _no_unknown(section: SectionConfig, known: set[str], what: str) -> None:
    for name in section.options:
        if name not in known:
            listed = ", ".join(sorted(known)) if known else "none"
            raise section_error(section, name, f"unknown key for {what}; known keys: {listed}")


def _seconds(section: SectionConfig, key: str, *, default: float | None, positive: bool = False) -> float | None:
    value = section.options.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
        raise section_error(section, key, f"must be a number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise section_error(section, key, f"must be {'greater than 0' if positive else 'zero or more'}, not {value}")
    return float(value)
