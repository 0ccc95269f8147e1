"""One TOML file per node → validated settings.

Every error names the file, the key and the reason (:class:`~zetafailover.errors.ConfigError`); nothing is
guessed. A minimal file::

    [cluster]
    name = "fax"
    store = "/srv/fax/ha"          # a shared folder (the default store); or file:PATH, etcd://…
    profile = "standard"           # standard | fast | share | lab

    [node]
    name = "fax1"
    priority = 100                 # the highest-priority standby takes over first

    [terminator]
    kind = "pid"                   # pid | command | none

    [[device]]
    driver = "loopback"
    name = "lo0"

Relative paths are taken relative to the folder that holds the config file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zetafailover.core.timing import Timing, timing_from_profile
from zetafailover.errors import ConfigError

__all__ = ["NodeConfig", "SectionConfig", "load_config", "parse_config"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SECTIONS = {"cluster", "node", "timing", "terminator", "device", "line", "spool", "plugins"}


@dataclass(frozen=True, slots=True)
class SectionConfig:
    """A config section handed to a plugin factory: its kind (driver, strategy…) and its own keys."""

    kind: str
    name: str
    options: Mapping[str, Any]
    where: str
    """``file: key`` of the section, for error messages."""
    base: Path = field(default_factory=Path.cwd)
    """The folder of the config file: relative paths in ``options`` are relative to it."""

    def path(self, value: str) -> Path:
        """``value`` as a path, relative to the config file's folder unless absolute (``~`` expanded)."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A node's validated settings."""

    source: str
    cluster: str
    store_url: str
    timing: Timing
    profile: str
    node: str
    priority: int
    state_dir: Path
    terminator: SectionConfig
    devices: tuple[SectionConfig, ...] = ()
    line: SectionConfig | None = None
    spool_dir: Path | None = None
    plugin_modules: tuple[str, ...] = ()
    """Extra plugin modules to import and register (``[plugins] modules = [...]``), besides entry points."""
    raw: Mapping[str, Any] = field(default_factory=dict)


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate the TOML file at ``path``. Raises :class:`ConfigError` naming file and key."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read the config file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(p), "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "", f"not valid TOML: {exc}") from None
    return parse_config(data, source=str(p), base=p.resolve().parent)


def parse_config(data: Mapping[str, Any], source: str = "<config>", base: Path | None = None) -> NodeConfig:
    """Validate an already-parsed config mapping (see :func:`load_config`)."""
    base = base or Path.cwd()
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(source, key, f"unknown section; known sections: {', '.join(sorted(_SECTIONS))}")
    cluster = _table(data, "cluster", source)
    node = _table(data, "node", source)
    timing_overrides = dict(_table(data, "timing", source, required=False))

    cluster_name = _name(cluster, "cluster.name", source)
    profile = _str(cluster, "cluster.profile", source, default="standard")
    store_url = _store_url(_str(cluster, "cluster.store", source), base, source)
    _no_unknown(cluster, {"name", "profile", "store"}, "cluster", source)
    timing = timing_from_profile(profile, timing_overrides, source)

    node_name = _name(node, "node.name", source)
    priority = node.get("priority", 100)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 1_000_000:
        raise ConfigError(source, "node.priority", f"must be a whole number from 0 to 1000000, not {priority!r}")
    state_dir = _path(node, "node.state_dir", source, base, default=f"state-{node_name}")
    _no_unknown(node, {"name", "priority", "state_dir"}, "node", source)

    term_table = _table(data, "terminator", source, required=False)
    kind = _str(term_table, "terminator.kind", source, default="pid")
    terminator = SectionConfig(
        kind=kind,
        name=kind,
        options={k: v for k, v in term_table.items() if k != "kind"},
        where=f"{source}: terminator",
        base=base,
    )

    devices: list[SectionConfig] = []
    raw_devices = data.get("device", [])
    if not isinstance(raw_devices, list):
        raise ConfigError(source, "device", "must be an array of tables: write [[device]] sections")
    seen: set[str] = set()
    for i, dev in enumerate(raw_devices):
        where = f"device[{i}]"
        if not isinstance(dev, dict):
            raise ConfigError(source, where, "must be a table")
        driver = _str(dev, f"{where}.driver", source)
        name = _name(dev, f"{where}.name", source, default=f"{driver}{i}")
        if name in seen:
            raise ConfigError(source, f"{where}.name", f"device name {name!r} is used twice")
        seen.add(name)
        devices.append(
            SectionConfig(
                kind=driver,
                name=name,
                options={k: v for k, v in dev.items() if k not in ("driver", "name")},
                where=f"{source}: {where}",
                base=base,
            )
        )

    line: SectionConfig | None = None
    if "line" in data:
        line_table = _table(data, "line", source)
        strategy = _str(line_table, "line.strategy", source)
        line = SectionConfig(
            kind=strategy,
            name=strategy,
            options={k: v for k, v in line_table.items() if k != "strategy"},
            where=f"{source}: line",
            base=base,
        )

    spool_dir: Path | None = None
    if "spool" in data:
        spool = _table(data, "spool", source)
        _no_unknown(spool, {"path"}, "spool", source)
        spool_dir = _path(spool, "spool.path", source, base)

    plugin_modules: tuple[str, ...] = ()
    if "plugins" in data:
        plugins = _table(data, "plugins", source)
        _no_unknown(plugins, {"modules"}, "plugins", source)
        modules = plugins.get("modules", [])
        if not isinstance(modules, list) or not all(isinstance(m, str) and _MODULE.match(m) for m in modules):
            raise ConfigError(
                source, "plugins.modules", f"must be a list of importable module names (a.b.c), not {modules!r}"
            )
        plugin_modules = tuple(modules)

    return NodeConfig(
        source=source,
        cluster=cluster_name,
        store_url=store_url,
        timing=timing,
        profile=profile,
        node=node_name,
        priority=priority,
        state_dir=state_dir,
        terminator=terminator,
        devices=tuple(devices),
        line=line,
        spool_dir=spool_dir,
        plugin_modules=plugin_modules,
        raw=data,
    )


# ------------------------------------------------------------------------------------------------ helpers


def _table(data: Mapping[str, Any], key: str, source: str, required: bool = True) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise ConfigError(source, key, f"missing section [{key}]")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(source, key, f"must be a table ([{key}]), not {type(value).__name__}")
    return value


def _str(table: Mapping[str, Any], dotted: str, source: str, default: str | None = None) -> str:
    key = dotted.rsplit(".", 1)[-1]
    value = table.get(key, default)
    if value is None:
        raise ConfigError(source, dotted, "missing; it is required")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(source, dotted, f"must be a non-empty string, not {value!r}")
    return value


def _name(table: Mapping[str, Any], dotted: str, source: str, default: str | None = None) -> str:
    value = _str(table, dotted, source, default)
    if not _NAME.fullmatch(value):
        raise ConfigError(
            source, dotted, f"{value!r} is not a valid name: use letters, digits, '.', '_' or '-' (at most 63)"
        )
    return value


def _path(table: Mapping[str, Any], dotted: str, source: str, base: Path, default: str | None = None) -> Path:
    value = _str(table, dotted, source, default)
    if "\x00" in value:
        raise ConfigError(source, dotted, "a path must not contain NUL")
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _store_url(value: str, base: Path, source: str) -> str:
    if "://" in value and not value.startswith("file://"):
        return value  # etcd://…, memory://… — checked by the store factory
    if value.startswith("file://"):
        value = value[len("file://") :]
    elif value.startswith("file:"):
        value = value[len("file:") :]
    if not value or "\x00" in value:
        raise ConfigError(source, "cluster.store", "must name a folder or a store URL")
    p = Path(value).expanduser()
    return "file://" + str(p if p.is_absolute() else (base / p).resolve())


def _no_unknown(table: Mapping[str, Any], known: set[str], section: str, source: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(source, f"{section}.{key}", f"unknown key; known keys: {', '.join(sorted(known))}")
