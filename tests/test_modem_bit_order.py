"""Bit order of Class 2 / 2.0 page data: ``+FBO``/``+FBOR`` in the simulator, modems that ignore it (the
"Rockwell bug"), the driver's ``receive_bit_order = "auto"`` and ``send_bit_order = "reversed"``."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from test_modem_class2 import FAST, PLAN, Sink, rows_of, wait
from zetafailover.clock import SystemClock
from zetafailover.config import SectionConfig
from zetafailover.devices.isdn import split_document
from zetafailover.devices.modem import CLASS2, CLASS20, AtChannel, ModemDevice, class2
from zetafailover.devices.modem.pages import REVERSE, decode_line_page, decode_line_page_order, line_pages
from zetafailover.devices.modem_plugin import options, zetafailover_make_device
from zetafailover.errors import ConfigError, ValidationError
from zetafailover.interfaces import OutboundFax
from zetafailover.spool import t4
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import ExchangeServer, RemoteFaxMachine
from zetafailover.testing.modem import ModemProfile, SimulatedModem

CLASSES = pytest.mark.parametrize("modem_class", ["2.0", "2"], ids=["class2.0", "class2"])


@pytest.fixture
def xs() -> Iterator[ExchangeServer]:
    with ExchangeServer(PLAN) as server:
        yield server


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bitorder") / "doc.tif"
    path.write_bytes(text_document(None, [["first page", "bit order test"], ["second page", "0123456789"]]))
    return path


def events(log: Path, name: str) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e for e in entries if e["event"] == name]


# ------------------------------------------------------------------------------------------ decoding


def test_auto_reads_direct_and_reversed_data_alike(document: Path) -> None:
    page = line_pages(document.read_bytes(), str(document))[0]
    rows = read_page_rows(document, 0)
    data = page.data + b"\x00\x00\x00\x00"  # RTC, then fill as a demodulator delivers it
    assert decode_line_page_order(data) == (rows, "direct")
    assert decode_line_page_order(data.translate(REVERSE)) == (rows, "reversed")
    assert decode_line_page(data.translate(REVERSE)) == rows
    assert decode_line_page(data.translate(REVERSE), order="reversed") == rows
    # reversed data read as direct: the first row already has an invalid code
    with pytest.raises(t4.T4DecodeError, match="row 0"):
        decode_line_page(data.translate(REVERSE), order="direct")
    with pytest.raises(t4.T4DecodeError, match="row 0"):
        decode_line_page(data, order="reversed")
    with pytest.raises(ValueError, match="'msb'"):
        decode_line_page(data, order="msb")


def test_auto_keeps_direct_rows_before_trailing_junk(document: Path) -> None:
    rows = read_page_rows(document, 1)
    # no RTC: the page runs straight into line noise, so the direct decode is not clean and auto tries both
    data = t4.encode_page(rows, 1728, fill_order=2, rtc=False) + bytes((0xFF, 0x3C, 0xA5, 0x5A, 0x81, 0x7E) * 8)
    with pytest.raises(t4.T4DecodeError, match=f"row {len(rows)}:"):
        t4.decode_page(data, 1728, fill_order=2)
    assert decode_line_page_order(data) == (rows, "direct")


def test_auto_on_garbage_fails_in_both_orders() -> None:
    garbage = random.Random(7).randbytes(4000)
    with pytest.raises(t4.T4DecodeError, match="either bit order"):
        decode_line_page(garbage)
    with pytest.raises(t4.T4DecodeError):
        decode_line_page(garbage, order="direct")
    with pytest.raises(t4.T4DecodeError):
        decode_line_page(garbage, order="reversed")


# ------------------------------------------------------------------------------------------ simulator


def test_profile_orders_are_validated() -> None:
    assert ModemProfile().data_to_host == "fbo" and ModemProfile().data_from_host == "fbo"
    with pytest.raises(ValueError, match=r"data_to_host = 'lsb'.*fbo, direct, reversed"):
        ModemProfile(data_to_host="lsb")
    with pytest.raises(ValueError, match=r"data_from_host = 'MSB'"):
        ModemProfile(data_from_host="MSB")


def _host(path: str, modem_class: str) -> tuple[serial.Serial, AtChannel]:
    """A bare host on the simulated modem's pty (no ModemDevice: it would set +FBO=0)."""
    port = serial.Serial(path, 19200, timeout=0.2, write_timeout=10.0, exclusive=True)
    at = AtChannel(port)
    at.expect_ok("ATE0V1Q0")
    at.expect_ok(f"AT+FCLASS={modem_class}")
    return port, at


@CLASSES
def test_simulator_honours_fbo_both_ways(xs: ExchangeServer, tmp_path: Path, document: Path, modem_class: str) -> None:
    dialect = CLASS20 if modem_class == "2.0" else CLASS2
    fbo = dialect.bit_order  # +FBO (2.0) / +FBOR (2)
    modem = SimulatedModem(xs.addresses.endpoints, "line-b", label="B")
    remote = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
    far = RemoteFaxMachine(xs.addresses.endpoints, "line-a", label="far")
    port, at = _host(modem.path, modem_class)
    try:
        assert at.command(f"AT{fbo}=?").text() == "(0-3)"
        assert at.command(f"AT{fbo}=4").result == "ERROR"
        at.expect_ok(f"AT{fbo}=3")  # bit 1 (HDLC frames) is accepted and ignored
        # receive: a host that asks for reversed data gets it reversed
        pages = split_document(document.read_bytes())
        sent: list[Any] = []
        caller = threading.Thread(target=lambda: sent.append(remote.send("5550002", pages, page_timeout=10)))
        caller.start()
        wait(lambda: "RING" in at.poll(0.1), 10, "RING")
        got: list[class2.ReceivedPage] = []
        result = class2.receive_fax(at, dialect, got.append, timeouts=FAST)
        caller.join(15)
        assert result.ok and result.pages == 2, result
        assert sent[0].ok
        assert [p.bit_order for p in got] == ["reversed", "reversed"]
        for i, page in enumerate(got):
            assert rows_of(page.tiff, tmp_path, f"r{i}.tif") == read_page_rows(document, i)
        at.command("ATH0")
        # send: with +FBO=1 the modem takes the host's data reversed — reversed data arrives pixel-exact …
        line = line_pages(document.read_bytes(), str(document))
        out = class2.send_fax(at, dialect, "5550001", line, 0, lambda i: None, timeouts=FAST, bit_order="reversed")
        assert out.ok and out.pages == 2 and len(far.pages_received()) == 2, out
        for i, data in enumerate(far.pages_received()):
            assert rows_of(data, tmp_path, f"s{i}.tif") == read_page_rows(document, i)
        # … and with +FBO=0 the same reversed data is refused (RTN) at the first page
        at.command("ATH0")
        at.expect_ok(f"AT{fbo}=0")
        out = class2.send_fax(at, dialect, "5550001", line, 0, lambda i: None, timeouts=FAST, bit_order="reversed")
        assert not out.ok and out.pages == 0 and "page 1 not confirmed" in out.reason, out
        assert len(far.pages_received()) == 2
    finally:
        port.close()
        modem.close()
        remote.close()
        far.close()


# ------------------------------------------------------------------------------------------ end to end


@CLASSES
def test_receive_auto_reads_a_modem_that_reverses_and_direct_does_not(
    xs: ExchangeServer, tmp_path: Path, document: Path, modem_class: str
) -> None:
    # The modem is told +FBO=0 / +FBOR=0 at initialisation and reverses the data anyway.
    profile = ModemProfile(data_to_host="reversed")
    # page_timeout 60 s: the modem must notice the far end giving up (cause 102) at once, not wait its own timer.
    modem = SimulatedModem(xs.addresses.endpoints, "line-b", label="B", profile=profile, page_timeout=60.0)
    remote = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
    pages = split_document(document.read_bytes())
    log = tmp_path / "b.jsonl"
    sink = Sink()
    device = ModemDevice("b", "n2", modem.path, modem_class=modem_class, timeouts=FAST, log_path=log)
    try:
        device.open(sink)
        device.start(1)
        result = remote.send("5550002", pages)
        assert result.ok and result.confirmed == (0, 1), result
        wait(lambda: bool(sink.faxes), 10, "the received fax")
        _, got, complete, _ = sink.faxes[0]
        assert complete and len(got) == 2
        for i, page in enumerate(got):
            assert rows_of(page, tmp_path, f"p{i}.tif") == read_page_rows(document, i)
        detected = events(log, "bit_order_detected")
        assert [(e["order"], e["term"]) for e in detected] == [("reversed", 1)], detected  # once for the call
        assert f"AT{CLASS20.bit_order if modem_class == '2.0' else CLASS2.bit_order}=0" in modem.commands
        device.close()

        # The same modem with receive_bit_order = "direct": page 1 does not decode, the driver asks for it
        # again (+FPS=2 / +FPTS=2: RTN), the far end never has a page confirmed and gives up; nothing is stored.
        log2 = tmp_path / "b2.jsonl"
        sink2 = Sink()
        device = ModemDevice("b", "n2", modem.path, modem_class=modem_class, timeouts=FAST, log_path=log2,
                             receive_bit_order="direct")  # fmt: skip
        device.open(sink2)
        device.start(2)
        result = remote.send("5550002", pages, page_timeout=2.0)
        assert result.connected and result.confirmed == () and result.cause == 102, result
        wait(lambda: bool(events(log2, "received")), 15, "the end of the call")
        (end,) = events(log2, "received")
        assert end["complete"] is False and end["fax"] == ""
        assert end["reason"] == "T2 timeout: expected page not received (hang-up code 73)", end
        assert f"AT{'+FPS' if modem_class == '2.0' else '+FPTS'}=2" in modem.commands
        assert not events(log2, "received_page") and not events(log2, "bit_order_detected")
        assert sink2.faxes == []
    finally:
        device.close()
        modem.close()
        remote.close()


@CLASSES
def test_send_reversed_to_a_modem_that_expects_it(
    xs: ExchangeServer, tmp_path: Path, document: Path, modem_class: str
) -> None:
    profile = ModemProfile(data_from_host="reversed")
    modem = SimulatedModem(xs.addresses.endpoints, "line-a", label="A", profile=profile)
    remote = RemoteFaxMachine(xs.addresses.endpoints, "line-b", label="far")
    fax = OutboundFax("j1", "5550002", (str(document),), page_count=2)
    device = ModemDevice("a", "n1", modem.path, modem_class=modem_class, timeouts=FAST, send_bit_order="reversed")
    try:
        device.open(None)
        device.start(1)
        confirmed: list[int] = []
        out = device.send(fax, confirmed.append)
        assert out.ok and out.pages_confirmed == 2 and confirmed == [0, 1], out
        received = remote.pages_received()
        assert len(received) == 2
        for i, page in enumerate(received):
            assert rows_of(page, tmp_path, f"r{i}.tif") == read_page_rows(document, i)
        device.close()

        # The default "direct": the modem reverses what it gets, the far end cannot decode page 1 — RTN, the job
        # ends retryable with nothing confirmed, and no page crosses the exchange.
        device = ModemDevice("a", "n1", modem.path, modem_class=modem_class, timeouts=FAST)
        device.open(None)
        device.start(2)
        confirmed.clear()
        out = device.send(OutboundFax("j2", "5550002", (str(document),), page_count=2), confirmed.append)
        assert not out.ok and out.retryable and out.pages_confirmed == 0 and confirmed == [], out
        assert out.reason.startswith("page 1 not confirmed"), out
        assert len(remote.pages_received()) == 2 and len(xs.exchange.pages()) == 2
    finally:
        device.close()
        modem.close()
        remote.close()


# ------------------------------------------------------------------------------------------ configuration


def _section(**opts: object) -> SectionConfig:
    return SectionConfig("modem", "m0", opts, "fax1.toml: device[0]", Path("/etc/zf"))


def test_config_keys_are_validated_and_default_to_auto_and_direct() -> None:
    opts = options(_section(port="/dev/ttyS0"))
    assert opts["receive_bit_order"] == "auto" and opts["send_bit_order"] == "direct"
    opts = options(_section(port="/dev/ttyS0", receive_bit_order="reversed", send_bit_order="reversed"))
    assert opts["receive_bit_order"] == "reversed" and opts["send_bit_order"] == "reversed"
    with pytest.raises(
        ConfigError, match=r"device\[0\]\.receive_bit_order.*\"auto\", \"direct\" or \"reversed\".*'msb'"
    ):
        options(_section(port="/dev/ttyS0", receive_bit_order="msb"))
    with pytest.raises(ConfigError, match=r"device\[0\]\.send_bit_order.*\"direct\" or \"reversed\".*'auto'"):
        options(_section(port="/dev/ttyS0", send_bit_order="auto"))
    with pytest.raises(ConfigError, match=r"device\[0\]\.send_bit_order.*1"):
        options(_section(port="/dev/ttyS0", send_bit_order=1))
    device = zetafailover_make_device(_section(port="/dev/null", send_bit_order="reversed"), "n1", SystemClock())
    assert isinstance(device, ModemDevice)
    assert device.receive_bit_order == "auto" and device.send_bit_order == "reversed"
    with pytest.raises(ValidationError, match="receive bit order 'lsb'"):
        ModemDevice("m", "n1", "/dev/null", receive_bit_order="lsb")
    with pytest.raises(ValidationError, match="send bit order 'auto'"):
        ModemDevice("m", "n1", "/dev/null", send_bit_order="auto")
