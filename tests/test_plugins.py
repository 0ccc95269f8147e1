"""The plugin manager: built-ins and entry-point plugins found the same way, clear errors at start-up."""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pluggy
import pytest

from zetafailover import hookspecs
from zetafailover.clock import FakeClock
from zetafailover.config import NodeConfig, SectionConfig, parse_config
from zetafailover.core.timing import PROFILES
from zetafailover.errors import ConfigError, PluginError
from zetafailover.interfaces import DeviceHealth, FaxDevice, LineSwitch, OutboundFax
from zetafailover.plugins import (
    BUILTIN_PLUGIN_NAME,
    PluginManager,
    available,
    get_plugin_manager,
    hookimpl,
    list_plugins,
    make_device,
    make_line_switch,
    make_store,
    make_terminator,
    register_cli,
    section_error,
    validate_config,
)

TIMING = PROFILES["lab"]


def config(**sections: Any) -> NodeConfig:
    data: dict[str, Any] = {
        "cluster": {"name": "fax", "store": "memory://plugins-test", "profile": "lab"},
        "node": {"name": "fax1"},
    }
    data.update(sections)
    return parse_config(data, source="fax1.toml", base=Path("/nonexistent"))


def device_section(driver: str, **options: Any) -> SectionConfig:
    return config(device=[{"driver": driver, "name": "dev0", **options}]).devices[0]


@pytest.fixture
def pm() -> PluginManager:
    return get_plugin_manager(load_entrypoints=False)


class AcmeDevice:
    """A minimal FaxDevice for the tests' own plugins."""

    driver = "acme"

    def __init__(self, name: str) -> None:
        self.name = name
        self.channels = 1
        self.health = DeviceHealth.STOPPED

    def open(self, inbound: object) -> None:
        pass

    def start(self, term: int) -> None:
        self.health = DeviceHealth.RUNNING

    def stop(self) -> None:
        self.health = DeviceHealth.STOPPED

    def monitor(self) -> DeviceHealth:
        return self.health

    def send(self, fax: OutboundFax, on_page: object) -> object:
        raise NotImplementedError

    def close(self) -> None:
        pass


class AcmePlugin:
    @hookimpl
    def zetafailover_device_drivers(self) -> list[str]:
        return ["acme"]

    @hookimpl
    def zetafailover_make_device(self, section: SectionConfig) -> FaxDevice | None:
        return AcmeDevice(section.name) if section.kind == "acme" else None  # type: ignore[return-value]


# -------------------------------------------------------------------------------------------- hook specs


def test_every_hook_is_prefixed_documented_and_provider_hooks_are_firstresult(pm: PluginManager) -> None:
    specs = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("zetafailover")]
    assert len(specs) == 19  # 5 provider, 4 listing, 1 validation, 9 notification hooks
    for name in specs:
        caller = getattr(pm.hook, name)
        assert caller.spec is not None, name
        doc = caller.spec.function.__doc__ or ""
        firstresult = caller.spec.opts.get("firstresult", False)
        assert firstresult == name.startswith("zetafailover_make_"), name
        assert len(doc.strip()) > 40, name
        if firstresult:
            assert "firstresult" in doc, name
    for event in hookspecs.NOTIFICATION_EVENTS:
        doc = getattr(pm.hook, "zetafailover_" + event).spec.function.__doc__
        assert "Notification" in doc, event


# --------------------------------------------------------------------------------------------- built-ins


def test_builtins_are_registered_as_a_plugin_and_listed(pm: PluginManager) -> None:
    infos = {info.name: info for info in list_plugins(pm)}
    builtin = infos[BUILTIN_PLUGIN_NAME]
    assert builtin.device_drivers == ("loopback",)
    assert builtin.store_schemes == ("file", "memory")
    assert builtin.terminator_kinds == ("pid", "command", "none")
    assert builtin.line_strategies == ()
    assert builtin.distribution is None
    assert "zetafailover_make_device" in builtin.hooks
    drivers = available(pm, "zetafailover_device_drivers")
    assert "loopback" in drivers
    assert drivers == sorted(drivers)
    # the other built-in families register as plugins of their own, through the same manager
    assert "ysplitter" in available(pm, "zetafailover_line_strategies")
    assert "isdn" in drivers


def test_builtin_loopback_device_is_made_through_the_hook(pm: PluginManager, tmp_path: Path) -> None:
    pytest.importorskip("zetafailover.devices.loopback")
    section = device_section("loopback", channels=2, log=str(tmp_path / "lo.log"))
    device = make_device(pm, section, "fax1", FakeClock())
    assert isinstance(device, FaxDevice)
    assert (device.name, device.channels) == ("dev0", 2)


def test_builtin_stores_are_made_through_the_hook(pm: PluginManager, tmp_path: Path) -> None:
    pytest.importorskip("zetafailover.stores.memory")
    pytest.importorskip("zetafailover.stores.file")
    clock = FakeClock()
    memory = make_store(pm, f"memory://{uuid.uuid4().hex[:12]}", "fax", TIMING, clock)
    file = make_store(pm, f"file://{tmp_path}", "fax", TIMING, clock)
    try:
        assert type(memory).__name__ == "MemoryHeartbeatStore"
        assert type(file).__name__ == "FileHeartbeatStore"
    finally:
        memory.close()
        file.close()


@pytest.mark.parametrize(
    ("kind", "options", "module"),
    [
        ("pid", {"grace": 1}, "zetafailover.terminators.pid"),
        ("command", {"command": ["true"], "timeout": 2}, "zetafailover.terminators.command"),
        ("none", {}, "zetafailover.terminators.null"),
    ],
)
def test_builtin_terminators_are_made_through_the_hook(
    pm: PluginManager, kind: str, options: dict[str, Any], module: str
) -> None:
    pytest.importorskip(module)
    section = config(terminator={"kind": kind, **options}).terminator
    terminator = make_terminator(pm, section, TIMING, FakeClock())
    assert terminator.kind == kind


@pytest.mark.parametrize(
    ("sections", "key", "reason"),
    [
        ({"device": [{"driver": "loopback", "channels": 0}]}, "device[0].channels", "from 1 to 240"),
        ({"device": [{"driver": "loopback", "channels": True}]}, "device[0].channels", "from 1 to 240"),
        ({"device": [{"driver": "loopback", "colour": "red"}]}, "device[0].colour", "unknown key"),
        ({"device": [{"driver": "loopback", "log": ""}]}, "device[0].log", "file path"),
        ({"terminator": {"kind": "command", "command": []}}, "terminator.command", "non-empty list"),
        ({"terminator": {"kind": "command", "command": "kill -9 1"}}, "terminator.command", "no shell"),
        ({"terminator": {"kind": "command", "command": ["x", 1]}}, "terminator.command", "list of strings"),
        ({"terminator": {"kind": "command", "command": ["x"], "timeout": 0}}, "terminator.timeout", "greater than 0"),
        ({"terminator": {"kind": "pid", "grace": -1}}, "terminator.grace", "zero or more"),
        ({"terminator": {"kind": "pid", "grace": "3s"}}, "terminator.grace", "number of seconds"),
        ({"terminator": {"kind": "none", "grace": 1}}, "terminator.grace", "unknown key"),
    ],
)
def test_builtin_validation_names_the_file_key_and_reason(
    pm: PluginManager, sections: dict[str, Any], key: str, reason: str
) -> None:
    cfg = config(**sections)
    with pytest.raises(ConfigError) as info:
        validate_config(pm, cfg)
    assert (info.value.source, info.value.key) == ("fax1.toml", key)
    assert reason in info.value.reason
    # The factories refuse the same values when called without validation.
    build: Any = (
        (lambda: make_device(pm, cfg.devices[0], "fax1", FakeClock()))
        if "device" in sections
        else (lambda: make_terminator(pm, cfg.terminator, TIMING, FakeClock()))
    )
    with pytest.raises(ConfigError) as again:
        build()
    assert str(again.value) == str(info.value)


def test_builtin_validation_accepts_a_good_config(pm: PluginManager) -> None:
    validate_config(
        pm,
        config(
            device=[{"driver": "loopback", "channels": 30, "log": "lo.log"}],
            terminator={"kind": "command", "command": ["fence_agent", "--node", "fax2"], "timeout": 5},
        ),
    )


# ------------------------------------------------------------------------------------- errors at start-up


def test_unknown_driver_lists_the_available_drivers(pm: PluginManager) -> None:
    builtins = available(pm, "zetafailover_device_drivers")
    pm.register(AcmePlugin(), name="acme")
    with pytest.raises(ConfigError) as info:
        make_device(pm, device_section("modem9000"), "fax1", FakeClock())
    assert str(info.value) == (
        "fax1.toml: device[0].driver: unknown device driver 'modem9000'; available: "
        + ", ".join(sorted([*builtins, "acme"]))
    )


def test_unknown_strategy_scheme_and_kind_list_what_exists(pm: PluginManager) -> None:
    line = config(line={"strategy": "carrier-pigeon"}).line
    assert line is not None
    strategies = ", ".join(available(pm, "zetafailover_line_strategies")) or "none"
    with pytest.raises(
        ConfigError, match=rf"line\.strategy: unknown line-switch strategy 'carrier-pigeon'; available: {strategies}$"
    ):
        make_line_switch(pm, line, "fax1", FakeClock())
    schemes = ", ".join(available(pm, "zetafailover_store_schemes"))
    with pytest.raises(
        ConfigError, match=rf"fax1\.toml: cluster\.store: unknown store scheme 'zk'; available: {schemes}$"
    ):
        make_store(pm, "zk://host:2181", "fax", TIMING, FakeClock(), source="fax1.toml")
    terminator = config(terminator={"kind": "ipmi"}).terminator
    with pytest.raises(
        ConfigError, match=r"terminator\.kind: unknown terminator kind 'ipmi'; available: command, none, pid"
    ):
        make_terminator(pm, terminator, TIMING, FakeClock())


def test_a_factory_that_raises_is_named_with_its_cause(pm: PluginManager) -> None:
    class Broken:
        @hookimpl
        def zetafailover_device_drivers(self) -> list[str]:
            return ["broken"]

        @hookimpl
        def zetafailover_make_device(self, section: SectionConfig) -> FaxDevice | None:
            if section.kind != "broken":
                return None
            return self._open_port()

        def _open_port(self) -> FaxDevice:
            raise OSError(2, "No such file or directory", "/dev/ttyS9")

    pm.register(Broken(), name="broken-plugin")
    with pytest.raises(ConfigError) as info:
        make_device(pm, device_section("broken"), "fax1", FakeClock())
    message = str(info.value)
    assert message.startswith("fax1.toml: device[0].driver: device driver 'broken': ")
    assert "plugin 'broken-plugin'" in message
    assert "FileNotFoundError" in message
    assert "/dev/ttyS9" in message
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_a_config_error_from_a_factory_passes_through_unchanged(pm: PluginManager) -> None:
    refusal = ConfigError("fax1.toml", "device[0].port", "no such port")

    class Picky:
        @hookimpl
        def zetafailover_make_device(self, section: SectionConfig) -> FaxDevice | None:
            raise refusal

    pm.register(Picky(), name="picky")
    with pytest.raises(ConfigError) as info:
        make_device(pm, device_section("anything"), "fax1", FakeClock())
    assert info.value is refusal


def test_a_factory_returning_something_else_is_refused(pm: PluginManager) -> None:
    class Sloppy:
        @hookimpl
        def zetafailover_make_line_switch(self, section: SectionConfig) -> LineSwitch | None:
            return object()  # type: ignore[return-value]

    pm.register(Sloppy(), name="sloppy")
    line = config(line={"strategy": "sloppy"}).line
    assert line is not None
    with pytest.raises(ConfigError, match=r"not a LineSwitch \(missing: may_answer, name, release, take\)"):
        make_line_switch(pm, line, "fax1", FakeClock())


def test_a_plugin_validation_that_rejects_stops_start_up(pm: PluginManager) -> None:
    class Strict:
        @hookimpl
        def zetafailover_validate_config(self, config: NodeConfig) -> None:
            if config.line is None:
                raise ConfigError(config.source, "line", "this site needs a [line] section")

    pm.register(Strict(), name="strict")
    with pytest.raises(ConfigError, match=r"^fax1\.toml: line: this site needs a \[line\] section$"):
        validate_config(pm, config())


def test_a_plugin_validation_that_crashes_is_wrapped_with_the_plugin_name(pm: PluginManager) -> None:
    class Crashy:
        @hookimpl
        def zetafailover_validate_config(self, config: NodeConfig) -> None:
            raise KeyError("colour")

    pm.register(Crashy(), name="crashy")
    with pytest.raises(ConfigError) as info:
        validate_config(pm, config())
    assert str(info.value) == "fax1.toml: plugin 'crashy' failed to validate the config: KeyError: 'colour'"


def test_section_error_names_file_and_dotted_key() -> None:
    err = section_error(device_section("acme"), "port", "must be a serial device")
    assert str(err) == "fax1.toml: device[0].port: must be a serial device"


def test_a_listing_hook_that_raises_hides_nothing_else(pm: PluginManager) -> None:
    class BadList:
        @hookimpl
        def zetafailover_device_drivers(self) -> list[str]:
            raise RuntimeError("listing broke")

    builtins = available(pm, "zetafailover_device_drivers")
    pm.register(BadList(), name="badlist")
    pm.register(AcmePlugin(), name="acme")
    assert available(pm, "zetafailover_device_drivers") == sorted([*builtins, "acme"])
    info = {i.name: i for i in list_plugins(pm)}["badlist"]
    assert info.errors == ("zetafailover_device_drivers: RuntimeError: listing broke",)
    with pytest.raises(ConfigError, match=rf"available: {', '.join(sorted([*builtins, 'acme']))}$"):
        make_device(pm, device_section("nope"), "fax1", FakeClock())


# ---------------------------------------------------------------------------------------- entry points


def _fake_distribution(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees it: a .dist-info folder and its modules."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[zetafailover]\n{lines}\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


def test_entry_point_plugins_are_loaded_and_listed_with_their_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = f"zf_test_plugin_{uuid.uuid4().hex[:8]}"
    _fake_distribution(
        tmp_path,
        "zf-test-plugin",
        {"acme": mod},
        {
            mod: """
            from zetafailover.plugins import hookimpl

            @hookimpl
            def zetafailover_device_drivers():
                return ["acme"]

            @hookimpl
            def zetafailover_make_device(section):
                return None
            """
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, mod, raising=False)
    pm = get_plugin_manager()
    info = {i.name: i for i in list_plugins(pm)}["acme"]
    assert (info.distribution, info.version, info.device_drivers) == ("zf-test-plugin", "1.2.3", ("acme",))
    # Known now, but its factory declines: still a clear "unknown driver" error listing it.
    with pytest.raises(ConfigError, match=r"unknown device driver 'acme'; available: .*acme"):
        make_device(pm, device_section("acme"), "fax1", FakeClock())
    # A second load finds nothing new (already registered).
    assert pm.load_entrypoint_plugins() == 0
    # Built-ins come first in the listing.
    assert list_plugins(pm)[0].name == BUILTIN_PLUGIN_NAME


def test_a_plugin_that_fails_to_import_is_a_plugin_error_naming_the_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = f"zf_broken_plugin_{uuid.uuid4().hex[:8]}"
    _fake_distribution(tmp_path, "zf-broken-plugin", {"broken": mod}, {mod: "import does_not_exist_anywhere\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as info:
        get_plugin_manager()
    message = str(info.value)
    assert f"entry point 'broken' = '{mod}' of zf-broken-plugin 1.2.3 failed to load" in message
    assert "ModuleNotFoundError" in message
    assert "does_not_exist_anywhere" in message
    # Loading without entry points still works, so `zetafailover plugins` can run a reduced listing.
    assert get_plugin_manager(load_entrypoints=False).has_plugin(BUILTIN_PLUGIN_NAME)


def test_a_plugin_with_a_bad_hook_signature_is_a_plugin_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = f"zf_badsig_plugin_{uuid.uuid4().hex[:8]}"
    _fake_distribution(
        tmp_path,
        "zf-badsig",
        {"badsig": mod},
        {
            mod: """
            from zetafailover.plugins import hookimpl

            @hookimpl
            def zetafailover_make_device(section, modem_speed):
                return None
            """
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"entry point 'badsig' .* could not be registered: .*modem_speed"):
        get_plugin_manager()


# ----------------------------------------------------------------------------- the example plugin package


def _example_installed() -> bool:
    try:
        importlib.metadata.distribution("zetafailover-example-plugin")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_example = pytest.mark.skipif(
    not _example_installed(), reason="examples/zetafailover-example-plugin is not installed (pip install -e it)"
)


@needs_example
def test_the_example_plugin_is_found_through_its_entry_point() -> None:
    pm = get_plugin_manager()
    info = {i.name: i for i in list_plugins(pm)}["example"]
    assert (info.distribution, info.device_drivers, info.line_strategies) == (
        "zetafailover-example-plugin",
        ("example",),
        ("logfile",),
    )
    assert "zetafailover_role_changed" in info.hooks
    assert set(available(pm, "zetafailover_device_drivers")) >= {"example", "loopback"}


@needs_example
def test_the_example_driver_and_strategy_are_built_from_config(tmp_path: Path) -> None:
    pm = get_plugin_manager()
    cfg = config(
        device=[{"driver": "example", "name": "ex0", "log": str(tmp_path / "ex0.log")}],
        line={"strategy": "logfile", "log": str(tmp_path / "lines.log")},
    )
    validate_config(pm, cfg)
    clock = FakeClock()
    device = make_device(pm, cfg.devices[0], "fax1", clock)
    assert cfg.line is not None
    line = make_line_switch(pm, cfg.line, "fax1", clock)
    assert (device.driver, device.name, line.name) == ("example", "ex0", "logfile")
    device.open(None)
    device.start(3)
    line.take("fax1", 3)
    assert line.may_answer("fax1")
    assert not line.may_answer("fax2")
    device.stop()
    events = [ln.split(" ", 1)[1] for ln in (tmp_path / "ex0.log").read_text().splitlines()]
    assert events == ["node=fax1 device=ex0 open", "node=fax1 device=ex0 start term=3", "node=fax1 device=ex0 stop"]


@needs_example
def test_the_example_plugin_validation_rejects_a_missing_log() -> None:
    pm = get_plugin_manager()
    with pytest.raises(ConfigError, match=r"^fax1\.toml: device\[0\]\.log: missing; the 'example' plugin needs"):
        validate_config(pm, config(device=[{"driver": "example"}]))
    with pytest.raises(ConfigError, match=r"^fax1\.toml: line\.log: missing"):
        validate_config(pm, config(line={"strategy": "logfile"}))


# ------------------------------------------------------------------------------------------------- CLI


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zetafailover")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_plugins_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    builtin = next(p for p in listing if p["name"] == BUILTIN_PLUGIN_NAME)
    assert builtin["device_drivers"] == ["loopback"]
    assert builtin["store_schemes"] == ["file", "memory"]


def test_plugins_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{BUILTIN_PLUGIN_NAME}\n")
    assert "device drivers:   loopback" in out
    assert "terminator kinds: pid, command, none" in out


def test_plugins_command_reports_a_broken_plugin_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = f"zf_cli_broken_{uuid.uuid4().hex[:8]}"
    _fake_distribution(tmp_path, "zf-cli-broken", {"clibroken": mod}, {mod: "raise RuntimeError('half installed')\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _run_cli(["plugins"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zetafailover plugins: error: plugin entry point 'clibroken'")
    assert "RuntimeError: half installed" in err
    assert "Traceback" not in err


def test_pluggy_plain_manager_works_with_the_factories() -> None:
    """The factories accept any pluggy manager carrying the specs (e.g. one a product builds itself)."""
    plain = pluggy.PluginManager(hookspecs.PROJECT)
    plain.add_hookspecs(hookspecs)
    plain.register(AcmePlugin(), name="acme")
    device = make_device(plain, device_section("acme"), "fax1", FakeClock())
    assert device.name == "dev0"
    with pytest.raises(ConfigError, match=r"available: acme$"):
        make_device(plain, device_section("loopback"), "fax1", FakeClock())
