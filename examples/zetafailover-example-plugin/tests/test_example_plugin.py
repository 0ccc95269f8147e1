"""Tests of the example plugin, as a plugin author would write them.

Run from the repository root after ``pip install -e examples/zetafailover-example-plugin``::

    pytest examples/zetafailover-example-plugin/tests
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from zetafailover_example_plugin import ExampleDevice, Holder, LogFileLineSwitch, read_holder

from zetafailover.clock import FakeClock
from zetafailover.config import load_config, parse_config
from zetafailover.errors import ConfigError, DeviceError, LineSwitchError, StaleTermError
from zetafailover.interfaces import DeviceHealth, FaxDevice, LineSwitch, OutboundFax
from zetafailover.plugins import get_plugin_manager, list_plugins, make_device, make_line_switch, validate_config


def events(log: Path) -> list[str]:
    """The log's lines without their timestamps."""
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


class Spool:
    """Stands in for the spool: records what the device delivers."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, int, int]] = []

    def fax_received(self, device: str, caller: str, pages: Sequence[bytes], complete: bool, term: int) -> str:
        self.received.append((device, caller, len(pages), term))
        return f"R{len(self.received)}"


# ------------------------------------------------------------------------------------- through zetafailover


def test_found_through_the_entry_point() -> None:
    info = {i.name: i for i in list_plugins(get_plugin_manager())}["example"]
    assert info.device_drivers == ("example",)
    assert info.line_strategies == ("logfile",)


def test_built_from_a_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "fax1.toml"
    cfg_file.write_text(
        f"""
        [cluster]
        name = "fax"
        store = "memory://example-test"

        [node]
        name = "fax1"

        [[device]]
        driver = "example"
        name = "ex0"
        log = "{tmp_path / "ex0.log"}"

        [line]
        strategy = "logfile"
        log = "{tmp_path / "lines.log"}"
        """.replace("\n        ", "\n")
    )
    config = load_config(cfg_file)
    pm = get_plugin_manager()
    validate_config(pm, config)
    device = make_device(pm, config.devices[0], config.node, FakeClock())
    assert config.line is not None
    line = make_line_switch(pm, config.line, config.node, FakeClock())
    assert isinstance(device, FaxDevice)
    assert isinstance(line, LineSwitch)


@pytest.mark.parametrize(
    ("device", "key", "reason"),
    [
        ({"driver": "example"}, "device[0].log", "missing"),
        ({"driver": "example", "log": 7}, "device[0].log", "must be a file path"),
        ({"driver": "example", "log": "x.log", "channels": 0}, "device[0].channels", "from 1 to 30"),
        ({"driver": "example", "log": "x.log", "baud": 9600}, "device[0].baud", "unknown key"),
    ],
)
def test_validation_names_the_key(device: dict[str, object], key: str, reason: str) -> None:
    config = parse_config(
        {"cluster": {"name": "fax", "store": "memory://x"}, "node": {"name": "fax1"}, "device": [device]},
        source="fax1.toml",
    )
    with pytest.raises(ConfigError) as info:
        validate_config(get_plugin_manager(), config)
    assert info.value.key == key
    assert reason in info.value.reason


# -------------------------------------------------------------------------------------------- the device


def test_device_lifecycle_is_logged_in_order_and_idempotent(tmp_path: Path) -> None:
    log = tmp_path / "ex0.log"
    device = ExampleDevice("ex0", "fax1", log, FakeClock())
    device.open(None)
    assert device.monitor() is DeviceHealth.STOPPED
    device.start(2)
    device.start(2)  # idempotent
    assert device.monitor() is DeviceHealth.RUNNING
    device.stop()
    device.stop()  # idempotent
    device.start(3)
    device.close()
    assert events(log) == [
        "node=fax1 device=ex0 open",
        "node=fax1 device=ex0 start term=2",
        "node=fax1 device=ex0 stop",
        "node=fax1 device=ex0 start term=3",
        "node=fax1 device=ex0 stop",
        "node=fax1 device=ex0 close",
    ]


def test_device_refuses_an_older_term_and_sends_only_on_line(tmp_path: Path) -> None:
    device = ExampleDevice("ex0", "fax1", tmp_path / "ex0.log", FakeClock())
    device.open(None)
    fax = OutboundFax("J1", "+4930123456", ("p1.tif", "p2.tif", "p3.tif"), first_page=1, term=5)
    assert not device.send(fax, lambda page: None).ok  # off line
    device.start(5)
    with pytest.raises(StaleTermError):
        device.start(4)
    confirmed: list[int] = []
    outcome = device.send(fax, confirmed.append)
    assert (outcome.ok, outcome.pages_confirmed, confirmed) == (True, 3, [1, 2])  # counted from page 0
    stale = OutboundFax("J2", "+4930123456", ("p1.tif",), term=4)
    assert not device.send(stale, confirmed.append).ok
    assert [s.job_id for s in device.sent] == ["J1"]


def test_device_answers_only_while_on_line(tmp_path: Path) -> None:
    spool = Spool()
    device = ExampleDevice("ex0", "fax1", tmp_path / "ex0.log", FakeClock())
    device.open(spool)
    with pytest.raises(DeviceError, match="off line"):
        device.receive("+4940999", [b"page"])
    device.start(9)
    assert device.receive("+4940999", [b"page1", b"page2"]) == "R1"
    assert spool.received == [("ex0", "+4940999", 2, 9)]


def test_device_fails_to_open_when_its_log_cannot_be_written(tmp_path: Path) -> None:
    device = ExampleDevice("ex0", "fax1", tmp_path / "missing-dir" / "ex0.log", FakeClock())
    with pytest.raises(DeviceError, match="cannot write"):
        device.open(None)
    assert device.monitor() is DeviceHealth.FAILED


# ---------------------------------------------------------------------------------------- the line switch


def test_only_the_last_taker_may_answer(tmp_path: Path) -> None:
    log = tmp_path / "lines.log"
    on_fax1 = LogFileLineSwitch(log, FakeClock())
    on_fax2 = LogFileLineSwitch(log, FakeClock())  # the other node, same shared file
    assert not on_fax1.may_answer("fax1")
    on_fax1.take("fax1", 1)
    on_fax1.take("fax1", 1)  # idempotent
    assert on_fax2.may_answer("fax1")
    assert not on_fax2.may_answer("fax2")
    on_fax2.take("fax2", 2)
    assert read_holder(log) == Holder("fax2", 2)
    assert not on_fax1.may_answer("fax1")
    assert events(log) == ["take node=fax1 term=1", "take node=fax2 term=2"]


def test_a_stale_node_cannot_take_the_lines_back(tmp_path: Path) -> None:
    log = tmp_path / "lines.log"
    switch = LogFileLineSwitch(log, FakeClock())
    switch.take("fax2", 4)
    with pytest.raises(LineSwitchError, match="term 4 already has"):
        switch.take("fax1", 3)
    assert read_holder(log) == Holder("fax2", 4)


def test_release_only_by_the_holder(tmp_path: Path) -> None:
    log = tmp_path / "lines.log"
    switch = LogFileLineSwitch(log, FakeClock())
    switch.take("fax1", 1)
    switch.release("fax2", 1)  # not the holder: ignored
    switch.release("fax1", 0)  # an older term: ignored
    assert switch.may_answer("fax1")
    switch.release("fax1", 1)
    switch.release("fax1", 1)  # idempotent
    assert not switch.may_answer("fax1")
    assert events(log) == ["take node=fax1 term=1", "release node=fax1 term=1"]


def test_garbage_in_the_log_is_ignored(tmp_path: Path) -> None:
    log = tmp_path / "lines.log"
    log.write_text("not a line\n1.0 take node=fax1 term=x\n1.0 take node=fax1 term=2\n1.0 take term=9\n")
    assert read_holder(log) == Holder("fax1", 2)
