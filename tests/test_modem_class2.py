"""The modem driver in Class 2.0 and Class 2 against simulated modems on ptys, through the simulated exchange."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from zetafailover.devices.isdn import split_document
from zetafailover.devices.modem import ModemDevice, Timeouts
from zetafailover.interfaces import DeviceHealth, OutboundFax
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import CallLeg, ExchangeServer, RemoteFaxMachine
from zetafailover.testing.modem import ModemProcess, ModemSpec, SimulatedModem

FAST = Timeouts(command=5, dial=20, answer=20, page=20, page_start=20)
PLAN = {
    "lines": [
        {"name": "line-a", "kind": "analog", "number": "5550001"},
        {"name": "line-b", "kind": "analog", "number": "5550002"},
        {"name": "shared", "kind": "analog", "number": "5550003"},
        {"name": "callers", "kind": "trunk", "channels": 2, "number": "5550099"},
    ],
    "ring_interval": 1.0,
    "answer_timeout": 8,
}


class Sink:
    def __init__(self) -> None:
        self.faxes: list[tuple[str, list[bytes], bool, int]] = []

    def fax_received(self, device: str, caller: str, pages: Sequence[bytes], complete: bool, term: int) -> str:
        self.faxes.append((caller, list(pages), complete, term))
        return f"in{len(self.faxes)}"


def wait(pred: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {limit:g} s waiting for {what}")


def _drain(leg: CallLeg) -> list[dict[str, Any]]:
    out = []
    while not leg.events.empty():
        out.append(leg.events.get_nowait())
    return out


def rows_of(data: bytes, tmp: Path, name: str) -> list[bytes]:
    path = tmp / name
    path.write_bytes(data)
    return read_page_rows(path)


@pytest.fixture
def xs() -> Iterator[ExchangeServer]:
    with ExchangeServer(PLAN) as server:
        yield server


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "doc.tif"
    path.write_bytes(text_document(None, [["first page", "of three"], ["second page"], ["third page"]]))
    return path


@pytest.mark.parametrize("modem_class", ["2.0", "2"])
def test_send_and_receive_pixel_for_pixel(xs: ExchangeServer, tmp_path: Path, document: Path, modem_class: str) -> None:
    transcript = tmp_path / "modems.log"
    ma = SimulatedModem(xs.addresses.endpoints, "line-a", label="A", transcript=transcript)
    mb = SimulatedModem(xs.addresses.endpoints, "line-b", label="B", transcript=transcript)
    sink = Sink()
    da = ModemDevice("a", "n1", ma.path, modem_class=modem_class, timeouts=FAST, local_id="+1 555 0001")
    db = ModemDevice("b", "n2", mb.path, modem_class=modem_class, timeouts=FAST, local_id="+1 555 0002")
    try:
        da.open(None)
        db.open(sink)
        assert da.status()["classes"] == "0,1,2,2.0" and da.status()["ati"]
        da.start(3)
        db.start(5)
        confirmed: list[int] = []
        out = da.send(OutboundFax("j1", "555-0002", (str(document),), page_count=3), confirmed.append)
        assert out.ok and out.pages_confirmed == 3 and confirmed == [0, 1, 2], out
        wait(lambda: bool(sink.faxes), 10, "the received fax")
        caller, pages, complete, term = sink.faxes[0]
        assert complete and term == 5 and caller.endswith("5550001") and len(pages) == 3
        for i, page in enumerate(pages):
            assert rows_of(page, tmp_path, f"r{i}.tif") == read_page_rows(document, i)
        # the exchange saw exactly three confirmed pages on one call
        assert [p["index"] for p in xs.exchange.pages()] == [0, 1, 2]
        # resume from the first unconfirmed page: only pages 1 and 2 go out
        confirmed.clear()
        out = da.send(OutboundFax("j2", "5550002", (str(document),), first_page=1, page_count=3), confirmed.append)
        assert out.ok and confirmed == [1, 2]
        wait(lambda: len(sink.faxes) == 2, 10, "the second fax")
        assert len(sink.faxes[1][1]) == 2
        assert rows_of(sink.faxes[1][1][0], tmp_path, "s.tif") == read_page_rows(document, 1)
    finally:
        for thing in (da, db, ma, mb):
            thing.close()


def test_receive_from_a_remote_fax_machine_and_ppr_on_busy(xs: ExchangeServer, tmp_path: Path, document: Path) -> None:
    mb = SimulatedModem(xs.addresses.endpoints, "line-b", label="B")
    sink = Sink()
    db = ModemDevice("b", "n2", mb.path, timeouts=FAST)
    remote = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
    try:
        db.open(sink)
        db.start(1)
        pages = split_document(document.read_bytes())
        result = remote.send("5550002", pages)
        assert result.ok and result.confirmed == (0, 1, 2), result
        wait(lambda: bool(sink.faxes), 10, "the fax in the sink")
        for i, page in enumerate(sink.faxes[0][1]):
            assert rows_of(page, tmp_path, f"p{i}.tif") == read_page_rows(document, i)
        # a busy number is reported as such, retryable, nothing confirmed
        remote2 = RemoteFaxMachine(xs.addresses.endpoints, "line-a", label="busy", busy=True)
        try:
            out = db.send(OutboundFax("j", "5550001", (str(document),), page_count=3), lambda i: None)
            assert not out.ok and out.retryable and out.pages_confirmed == 0 and "busy" in out.reason, out
        finally:
            remote2.close()
    finally:
        db.close()
        mb.close()
        remote.close()


@pytest.mark.parametrize(
    "number", ["5550002;ATH1", "5550002\rATZ", "+++ATH", "ATD5550002", "555\x000002", "5550002&D0", "555 0002 x"]
)
def test_injection_in_numbers_never_reaches_the_port(
    xs: ExchangeServer, tmp_path: Path, document: Path, number: str
) -> None:
    transcript = tmp_path / "modem.log"
    ma = SimulatedModem(xs.addresses.endpoints, "line-a", label="A", transcript=transcript)
    da = ModemDevice("a", "n1", ma.path, timeouts=FAST)
    try:
        da.open(None)
        da.start(1)
        before = transcript.read_text()
        out = da.send(OutboundFax("j", number, (str(document),), page_count=3), lambda i: None)
        assert not out.ok and not out.retryable and "refused to dial" in out.reason
        after = transcript.read_text()[len(before) :]
        assert "ATD" not in after and "ATH1" not in after and "ATZ" not in after
    finally:
        da.close()
        ma.close()


def test_passive_modem_on_a_ysplitter_never_answers(xs: ExchangeServer, document: Path) -> None:
    m1 = SimulatedModem(xs.addresses.endpoints, "shared", label="active")
    m2 = SimulatedModem(xs.addresses.endpoints, "shared", label="passive")
    sink1, sink2 = Sink(), Sink()
    d1 = ModemDevice("m", "n1", m1.path, timeouts=FAST, rings=1)
    d2 = ModemDevice("m", "n2", m2.path, timeouts=FAST, rings=1)
    remote = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
    try:
        d1.open(sink1)
        d2.open(sink2)  # opened, never started: the passive node
        d1.start(1)
        result = remote.send("5550003", split_document(document.read_bytes()))
        assert result.ok and result.answered_by == "active", result
        d1.stop()  # now nobody may answer: let the line ring three times, then give up
        leg = remote.endpoint.dial("5550003")
        time.sleep(2.5)
        assert not any(e["ev"] == "connected" for e in _drain(leg)), "nobody may answer"
        leg.hangup()
        hooks = xs.exchange.hook_log
        assert not [h for h in hooks if h["label"] == "passive" and h["off_hook"]], hooks
        assert m2.hangups == [] and not sink2.faxes
        assert d2.monitor() == DeviceHealth.STOPPED
    finally:
        for thing in (d1, d2, m1, m2):
            thing.close()
        remote.close()


def test_modem_that_stops_answering_is_failed_after_the_ladder(tmp_path: Path) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    device = ModemDevice("dead", "n1", path, timeouts=Timeouts(command=0.3))
    try:
        with pytest.raises(Exception, match="does not initialise"):
            device.open(None)
        assert device.monitor() == DeviceHealth.FAILED
    finally:
        device.close()
        os.close(master)


HOST = textwrap.dedent(
    """
    import sys, time, serial
    port = serial.Serial(sys.argv[1], 19200, timeout=20)
    port.write(b"ATE0\\r"); time.sleep(0.2)
    port.write(b"AT+FCLASS=2.0\\r"); time.sleep(0.2)
    port.reset_input_buffer()
    port.write(b"ATD5550099\\r")
    data = b""
    while b"OK" not in data and b"BUSY" not in data:
        data += port.read(1)
    print("connected", flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_host_death_drops_dtr_but_a_paused_host_keeps_the_line(xs: ExchangeServer, tmp_path: Path, sig: int) -> None:
    remote = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="callee")
    modems = ModemProcess(xs.addresses.endpoints, [ModemSpec("hostmodem", "line-a", tmp_path / "ttyA")]).start()
    host = subprocess.Popen([sys.executable, "-c", HOST, modems.paths["hostmodem"]], stdout=subprocess.PIPE)
    try:
        assert host.stdout is not None
        assert host.stdout.readline().strip() == b"connected"
        assert xs.exchange.line_busy("line-a")
        host.send_signal(sig)
        if sig == signal.SIGKILL:
            host.wait(10)
            wait(lambda: not xs.exchange.line_busy("line-a"), 10, "the modem to go on-hook")
            downs = [h for h in xs.exchange.hook_log if h["label"] == "hostmodem" and not h["off_hook"]]
            assert downs
        else:
            time.sleep(2.0)
            assert xs.exchange.line_busy("line-a"), "a paused host's modem must stay off-hook"
    finally:
        host.kill()
        host.wait(10)
        modems.stop()
        remote.close()
