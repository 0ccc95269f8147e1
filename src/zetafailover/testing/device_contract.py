"""The lifecycle contract every :class:`~zetafailover.interfaces.FaxDevice` must keep — built-in or a plugin's.

The node relies on these rules (``docs/writing-a-driver-plugin.md``, "The device"): a device opens **off line**;
``start(term)`` goes on line, is idempotent for the same term and refuses an older one with
:class:`~zetafailover.errors.StaleTermError`; ``stop()`` and ``close()`` are idempotent; ``monitor()`` never
blocks; ``send`` refuses (retryable, no exception) while off line and, on line, confirms pages in order from
``first_page``, reporting ``pages_confirmed`` counted from page 0.

Subclass :class:`FaxDeviceContract` in a test module and provide two fixtures; pytest then runs every contract
test against your driver::

    import pytest
    from zetafailover.testing.device_contract import FaxDeviceContract

    class TestAcmeCard(FaxDeviceContract):
        @pytest.fixture
        def device_factory(self, exchange):          # any fixtures your hardware (or its simulator) needs
            return lambda: AcmeCard("acme0", node="fax1", address=exchange.addresses.endpoints)

        @pytest.fixture
        def reachable_number(self, remote_fax):     # a number whose receiver confirms every page, or None
            return "5550199"

``device_factory()`` returns a new device that is **not opened**; the contract opens it (with no inbound sink),
and closes every device it made at the end of each test. With ``reachable_number`` ``None`` the two tests that
send a real fax are skipped (with that reason). Timing: lifecycle tests take well under a second against a
simulator; the send tests take as long as the driver needs for two small pages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zetafailover.errors import StaleTermError
from zetafailover.interfaces import DeviceHealth, FaxDevice, OutboundFax
from zetafailover.spool.tiff import write_tiff

__all__ = ["DeviceFactory", "FaxDeviceContract", "contract_document"]

DeviceFactory = Callable[[], FaxDevice]
"""``make()``: a new, unopened device of the driver under test."""

MONITOR_CALLS = 200
MONITOR_BOUND_S = 2.0
"""``monitor()`` is called this many times in a row and must finish within this bound in all (it never does
device I/O); generous, for a shared machine."""


def contract_document(path: Path, pages: int = 2) -> Path:
    """A small TIFF-F document (``pages`` pages of a few rows of stripes) for the send tests."""
    row_black = b"\xff" * 216
    row_white = bytes(216)
    rows = [row_black if i % 8 < 2 else row_white for i in range(40)]
    write_tiff(path, [rows] * pages, fine=False)
    return path


class FaxDeviceContract:
    """The contract tests; see the module docstring for the two fixtures a subclass provides."""

    @pytest.fixture
    def device_factory(self) -> DeviceFactory:
        raise NotImplementedError("provide a device_factory fixture: a callable returning a new, unopened device")

    @pytest.fixture
    def reachable_number(self) -> str | None:
        return None

    @pytest.fixture
    def make_device(self, device_factory: DeviceFactory) -> Iterator[DeviceFactory]:
        """The factory, with every device it made closed after the test (closing twice must be harmless)."""
        made: list[FaxDevice] = []

        def make() -> FaxDevice:
            device = device_factory()
            made.append(device)
            return device

        yield make
        for device in made:
            device.close()

    @pytest.fixture
    def opened(self, make_device: DeviceFactory) -> FaxDevice:
        device = make_device()
        device.open(None)
        return device

    # ------------------------------------------------------------------------------------------ lifecycle

    def test_describes_itself(self, make_device: DeviceFactory) -> None:
        device = make_device()
        assert isinstance(device.name, str)
        assert device.name
        assert isinstance(device.driver, str)
        assert device.driver
        assert isinstance(device.channels, int)
        assert device.channels >= 1

    def test_opens_off_line(self, opened: FaxDevice) -> None:
        assert opened.monitor() == DeviceHealth.STOPPED

    def test_start_goes_on_line_and_is_idempotent_for_the_same_term(self, opened: FaxDevice) -> None:
        opened.start(3)
        assert opened.monitor() == DeviceHealth.RUNNING
        opened.start(3)
        assert opened.monitor() == DeviceHealth.RUNNING

    def test_start_refuses_an_older_term_and_stays_on_line(self, opened: FaxDevice) -> None:
        opened.start(5)
        with pytest.raises(StaleTermError):
            opened.start(4)
        assert opened.monitor() == DeviceHealth.RUNNING

    def test_an_older_term_is_refused_after_a_stop_too(self, opened: FaxDevice) -> None:
        opened.start(5)
        opened.stop()
        with pytest.raises(StaleTermError):
            opened.start(4)
        assert opened.monitor() == DeviceHealth.STOPPED

    def test_stop_is_idempotent_and_goes_off_line(self, opened: FaxDevice) -> None:
        opened.stop()  # before any start
        assert opened.monitor() == DeviceHealth.STOPPED
        opened.start(1)
        opened.stop()
        assert opened.monitor() == DeviceHealth.STOPPED
        opened.stop()
        assert opened.monitor() == DeviceHealth.STOPPED

    def test_goes_on_line_again_under_a_higher_term(self, opened: FaxDevice) -> None:
        opened.start(1)
        opened.stop()
        opened.start(2)
        assert opened.monitor() == DeviceHealth.RUNNING

    def test_close_is_idempotent(self, make_device: DeviceFactory) -> None:
        device = make_device()
        device.open(None)
        device.start(1)
        device.stop()
        device.close()
        device.close()

    def test_monitor_never_blocks_even_while_a_send_runs(
        self, opened: FaxDevice, tmp_path: Path, reachable_number: str | None
    ) -> None:
        opened.start(1)
        sending = None
        if reachable_number is not None:
            doc = contract_document(tmp_path / "m.tif")
            fax = OutboundFax("contract-monitor", reachable_number, (str(doc),), term=1, page_count=2)
            sending = threading.Thread(target=opened.send, args=(fax, lambda page: None), daemon=True)
            sending.start()
        start = time.monotonic()
        for _ in range(MONITOR_CALLS):
            assert opened.monitor() in (DeviceHealth.RUNNING, DeviceHealth.STOPPED, DeviceHealth.FAILED)
        took = time.monotonic() - start
        assert took < MONITOR_BOUND_S, f"{MONITOR_CALLS} monitor() calls took {took:.2f} s"
        if sending is not None:
            sending.join(120)

    # ----------------------------------------------------------------------------------------------- send

    def test_send_while_off_line_is_refused_retryable_without_raising(self, opened: FaxDevice, tmp_path: Path) -> None:
        doc = contract_document(tmp_path / "doc.tif")
        confirmed: list[int] = []
        for state in ("opened", "stopped"):
            if state == "stopped":
                opened.start(1)
                opened.stop()
            fax = OutboundFax(f"contract-{state}", "5550199", (str(doc),), first_page=1, term=1, page_count=2)
            outcome = opened.send(fax, confirmed.append)
            assert not outcome.ok, f"{state}: {outcome}"
            assert outcome.retryable, f"{state}: {outcome}"
            assert outcome.pages_confirmed == 1, f"{state}: pages before first_page count as confirmed"
        assert confirmed == []

    def test_send_confirms_every_page_in_order(
        self, opened: FaxDevice, tmp_path: Path, reachable_number: str | None
    ) -> None:
        if reachable_number is None:
            pytest.skip("no reachable_number: this driver's contract run has no receiver to send to")
        opened.start(1)
        doc = contract_document(tmp_path / "s.tif")
        fax = OutboundFax("contract-send", reachable_number, (str(doc),), term=1, page_count=2)
        confirmed: list[int] = []
        outcome = opened.send(fax, confirmed.append)
        assert outcome.ok, outcome
        assert confirmed == [0, 1], (confirmed, outcome)
        assert outcome.pages_confirmed == 2, outcome

    def test_send_resumes_at_first_page(self, opened: FaxDevice, tmp_path: Path, reachable_number: str | None) -> None:
        if reachable_number is None:
            pytest.skip("no reachable_number: this driver's contract run has no receiver to send to")
        opened.start(1)
        doc = contract_document(tmp_path / "r.tif", pages=3)
        fax = OutboundFax("contract-resume", reachable_number, (str(doc),), first_page=2, term=1, page_count=3)
        confirmed: list[int] = []
        outcome = opened.send(fax, confirmed.append)
        assert outcome.ok, outcome
        assert confirmed == [2], (confirmed, outcome)
        assert outcome.pages_confirmed == 3, outcome
