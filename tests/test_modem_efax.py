"""efax — a real fax program, not written by us — against our simulated modems, in Class 2.0, 2 and 1.

efax sends through simulated modem A and the exchange to modem B, where our driver receives; our driver sends
through A to B, where ``efax -r`` receives. Pages must match pixel for pixel (efax adds a 20-row header band
to what it sends and receives; ``-h " "`` keeps it blank). Skipped when efax is not installed
(``apt-get install efax``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from zetafailover.devices.modem import ModemDevice, Timeouts
from zetafailover.interfaces import OutboundFax
from zetafailover.spool import t4
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import ExchangeServer
from zetafailover.testing.modem import SimulatedModem

EFAX = shutil.which("efax")
pytestmark = pytest.mark.skipif(EFAX is None, reason="efax is not installed (apt-get install efax)")
HEADER_ROWS = 20
PLAN = {
    "lines": [
        {"name": "line-a", "kind": "analog", "number": "5550001"},
        {"name": "line-b", "kind": "analog", "number": "5550002"},
    ],
    "ring_interval": 1.0,
}
FAST = Timeouts(command=5, dial=30, answer=30, page=30, page_start=30)
# efax's ``-o`` option: ``0`` forces Class 2.0, ``2`` Class 2, ``1`` Class 1 (efax runs T.30 itself). Receiving in
# Class 2 efax also gets ``r``: our simulated modem delivers received data in the direct bit order the Class 2
# specification asks for, which efax's manual says "a very few Class 2 modems" do (most reverse it, and efax
# reverses it back unless told ``-or``).
EFAX_CLASSES = pytest.mark.parametrize("efax_class", ["0", "2", "1"], ids=["class2.0", "class2", "class1"])
EFAX_RX_OPTION = {"0": "-o0", "2": "-o2r", "1": "-o1"}


class Sink:
    def __init__(self) -> None:
        self.faxes: list[tuple[str, list[bytes], bool]] = []

    def fax_received(self, device: str, caller: str, pages: Sequence[bytes], complete: bool, term: int) -> str:
        self.faxes.append((caller, list(pages), complete))
        return "in1"


@pytest.fixture
def modems(tmp_path: Path) -> Iterator[tuple[SimulatedModem, SimulatedModem]]:
    with ExchangeServer(PLAN) as xs:
        log = tmp_path / "modems.log"
        # efax divides by the page's transfer time in whole seconds: a page must take over a second.
        a = SimulatedModem(xs.addresses.endpoints, "line-a", label="A", transcript=log, min_page_seconds=1.1)
        b = SimulatedModem(xs.addresses.endpoints, "line-b", label="B", transcript=log, min_page_seconds=1.1)
        try:
            yield a, b
        finally:
            a.close()
            b.close()


def pages(tmp_path: Path) -> list[Path]:
    out = []
    for i, text in enumerate((["efax peer test", "page one"], ["page two", "0123456789"])):
        path = tmp_path / f"page.{i + 1:03d}"
        path.write_bytes(text_document(None, [text]))
        out.append(path)
    return out


def efax_rows(path: Path) -> list[bytes]:
    """Rows of a page efax wrote (TIFF, one strip, FillOrder 1 or 2)."""
    return read_page_rows(path)


@EFAX_CLASSES
def test_efax_sends_to_our_driver(
    modems: tuple[SimulatedModem, SimulatedModem], tmp_path: Path, efax_class: str
) -> None:
    a, b = modems
    sink = Sink()
    device = ModemDevice("b", "n2", b.path, timeouts=FAST)
    files = pages(tmp_path)
    try:
        device.open(sink)
        device.start(1)
        assert EFAX is not None
        run = subprocess.run(
            [EFAX, "-d", a.path, f"-o{efax_class}", "-l", "+1 555 0001", "-h", " ", "-t", "5550002", *map(str, files)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        deadline = time.monotonic() + 10
        while not sink.faxes and time.monotonic() < deadline:
            time.sleep(0.05)
        caller, received, complete = sink.faxes[0]
        assert complete and len(received) == 2 and caller.endswith("5550001")
        for i, data in enumerate(received):
            path = tmp_path / f"rx{i}.tif"
            path.write_bytes(data)
            rows = read_page_rows(path)
            sent = read_page_rows(files[i])
            assert rows[HEADER_ROWS : HEADER_ROWS + len(sent)] == sent, f"page {i + 1} differs"
            assert not any(any(r) for r in rows[:HEADER_ROWS]), "efax's header band should be blank"
            # efax ends a page at RTC, not at the strip's byte count: without the RTC our writer puts at the end
            # of every strip, it sent the page's TIFF directory after the image as ~25 junk rows.
            assert len(rows) == HEADER_ROWS + len(sent), (
                f"page {i + 1}: {len(rows) - HEADER_ROWS - len(sent)} extra rows"
            )
    finally:
        device.close()


@EFAX_CLASSES
def test_our_driver_sends_to_efax(
    modems: tuple[SimulatedModem, SimulatedModem], tmp_path: Path, efax_class: str
) -> None:
    a, b = modems
    document = tmp_path / "doc.tif"
    files = pages(tmp_path)
    document.write_bytes(text_document(None, [["efax peer test", "page one"], ["page two", "0123456789"]]))
    assert EFAX is not None
    receiver = subprocess.Popen(
        [EFAX, "-d", b.path, EFAX_RX_OPTION[efax_class], "-w", "-iS0=1", "-l", "+1 555 0002", "-r", f"{tmp_path}/rx"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    device = ModemDevice("a", "n1", a.path, timeouts=FAST)
    try:
        device.open(None)
        device.start(1)
        time.sleep(2.0)  # efax initialises the modem (S0=1) before it can be called
        confirmed: list[int] = []
        out = device.send(OutboundFax("j1", "5550002", (str(document),), page_count=2), confirmed.append)
        assert out.ok and confirmed == [0, 1], out
        output, _ = receiver.communicate(timeout=60)
        assert receiver.returncode == 0, output
        for i in range(2):
            rows = efax_rows(tmp_path / f"rx.{i + 1:03d}")
            sent = read_page_rows(files[i])
            assert rows[-len(sent) :] == sent or rows[: len(sent)] == sent, f"page {i + 1} differs"
            assert len(rows) - len(sent) in (0, HEADER_ROWS)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(10)
        device.close()


def test_t4_codec_is_what_efax_reads() -> None:
    """A sanity check of the line format both tests rely on: our MH with RTC decodes to the same rows."""
    rows = [bytes(216)] * 3 + [b"\xff" * 216]
    data = t4.encode_page(rows, fill_order=2, rtc=True)
    assert t4.decode_page(data, fill_order=2) == rows
