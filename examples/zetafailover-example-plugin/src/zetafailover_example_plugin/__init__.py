"""A worked example of a zetafailover plugin: the ``example`` device driver and the ``logfile`` line strategy.

This module is the plugin: ``pyproject.toml`` names it in the ``zetafailover`` entry-point group, and
zetafailover's plugin manager registers it, so every ``@hookimpl`` function below becomes a hook
implementation. Use it from a node's config file::

    [[device]]
    driver = "example"
    name = "ex0"
    log = "/var/log/fax/ex0.log"

    [line]
    strategy = "logfile"
    log = "/srv/fax/lines.log"      # a file every node can read and write
"""

from __future__ import annotations

import logging
from pathlib import Path

from zetafailover.config import NodeConfig, SectionConfig
from zetafailover.interfaces import Clock, FaxDevice, LineSwitch, Transition
from zetafailover.plugins import hookimpl, section_error
from zetafailover_example_plugin.device import ExampleDevice, SentFax
from zetafailover_example_plugin.lines import Holder, LogFileLineSwitch, read_holder

__all__ = ["DRIVER", "STRATEGY", "ExampleDevice", "Holder", "LogFileLineSwitch", "SentFax", "read_holder"]

DRIVER = "example"
STRATEGY = "logfile"

_DEVICE_KEYS = {"log", "channels"}
_LINE_KEYS = {"log"}
_log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- what this plugin provides


@hookimpl
def zetafailover_device_drivers() -> list[str]:
    return [DRIVER]


@hookimpl
def zetafailover_line_strategies() -> list[str]:
    return [STRATEGY]


# ---------------------------------------------------------------------------- checking the config


@hookimpl
def zetafailover_validate_config(config: NodeConfig) -> None:
    """Refuse a bad ``example`` device or ``logfile`` line section at start-up, naming file and key."""
    for section in config.devices:
        if section.kind == DRIVER:
            _check_device(section)
    if config.line is not None and config.line.kind == STRATEGY:
        _check_line(config.line)


def _check_device(section: SectionConfig) -> tuple[Path, int]:
    _no_unknown(section, _DEVICE_KEYS)
    log = _log_path(section)
    channels = section.options.get("channels", 1)
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 30:
        raise section_error(section, "channels", f"must be a whole number from 1 to 30, not {channels!r}")
    return log, channels


def _check_line(section: SectionConfig) -> Path:
    _no_unknown(section, _LINE_KEYS)
    return _log_path(section)


def _log_path(section: SectionConfig) -> Path:
    log = section.options.get("log")
    if log is None:
        raise section_error(section, "log", f"missing; the {section.kind!r} plugin needs a log file")
    if not isinstance(log, str) or not log.strip() or "\x00" in log:
        raise section_error(section, "log", f"must be a file path, not {log!r}")
    return section.path(log)  # relative to the config file's folder, like the shipped drivers' paths


def _no_unknown(section: SectionConfig, known: set[str]) -> None:
    for key in section.options:
        if key not in known:
            raise section_error(section, key, f"unknown key; known keys: {', '.join(sorted(known))}")


# ------------------------------------------------------------------------------- making the objects


@hookimpl
def zetafailover_make_device(section: SectionConfig, node: str, clock: Clock) -> FaxDevice | None:
    if section.kind != DRIVER:
        return None  # not ours: let the next plugin try
    log, channels = _check_device(section)  # checked again: the factory may be called without validation
    return ExampleDevice(name=section.name, node=node, log_path=log, clock=clock, channels=channels)


@hookimpl
def zetafailover_make_line_switch(section: SectionConfig, node: str, clock: Clock) -> LineSwitch | None:
    if section.kind != STRATEGY:
        return None
    return LogFileLineSwitch(_check_line(section), clock)


# -------------------------------------------------------------------------------------- notifications


@hookimpl
def zetafailover_role_changed(transition: Transition) -> None:
    """Runs on zetafailover's notifier thread, after the change; must be quick and may not block failover."""
    _log.info(
        "%s: %s -> %s (term %d, %s)",
        transition.node,
        transition.from_state,
        transition.to_state,
        transition.term,
        transition.reason,
    )
