"""Every shipped fax device driver — and the example plugin's — keeps the one FaxDevice lifecycle contract."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from zetafailover.clock import SystemClock
from zetafailover.devices.loopback import LoopbackDevice
from zetafailover.interfaces import FaxDevice
from zetafailover.testing.device_contract import DeviceFactory, FaxDeviceContract
from zetafailover.testing.exchange import RemoteFaxMachine

REMOTE_NUMBER = "5550199"  # the default exchange plan's trunk for a RemoteFaxMachine (pytest plugin)


class TestLoopbackDevice(FaxDeviceContract):
    @pytest.fixture
    def device_factory(self, tmp_path: Path) -> DeviceFactory:
        return lambda: LoopbackDevice("lo0", channels=2, log_path=tmp_path / "lo0.jsonl")

    @pytest.fixture
    def reachable_number(self) -> str | None:
        return REMOTE_NUMBER  # the loopback "sends" to any valid number and confirms every page


@pytest.mark.skipif(
    importlib.util.find_spec("zetafailover_example_plugin") is None,
    reason="the example plugin is not installed (pip install -e examples/zetafailover-example-plugin)",
)
class TestExamplePluginDevice(FaxDeviceContract):
    @pytest.fixture
    def device_factory(self, tmp_path: Path) -> DeviceFactory:
        from zetafailover_example_plugin.device import ExampleDevice

        return lambda: ExampleDevice("ex0", "fax1", tmp_path / "ex0.log", SystemClock())

    @pytest.fixture
    def reachable_number(self) -> str | None:
        return REMOTE_NUMBER


class TestIsdnDevice(FaxDeviceContract):
    @pytest.fixture
    def device_factory(self, isdn_card: Callable[..., object], remote_fax: RemoteFaxMachine) -> DeviceFactory:
        card = isdn_card("contract", "bri")

        def make() -> FaxDevice:
            device = card.device("fax1", "card0", page_seconds=0.0)  # type: ignore[attr-defined]
            assert isinstance(device, FaxDevice)
            return device

        return make

    @pytest.fixture
    def reachable_number(self, remote_fax: RemoteFaxMachine) -> str | None:
        return REMOTE_NUMBER


@pytest.mark.skipif(sys.platform == "win32", reason="simulated modems need POSIX pseudo-terminals")
class TestModemDevice(FaxDeviceContract):
    @pytest.fixture
    def device_factory(self, sim_modem: Callable[..., object], remote_fax: RemoteFaxMachine) -> DeviceFactory:
        from zetafailover.devices.modem.class2 import Timeouts
        from zetafailover.devices.modem.driver import ModemDevice

        modem = sim_modem("contract")
        fast = Timeouts(command=3.0, dial=20.0, answer=20.0, page=20.0, page_start=20.0)
        return lambda: ModemDevice("m0", "fax1", modem.path, timeouts=fast)  # type: ignore[attr-defined]

    @pytest.fixture
    def reachable_number(self, remote_fax: RemoteFaxMachine) -> str | None:
        return REMOTE_NUMBER
