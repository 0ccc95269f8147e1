"""Class 1 (the host runs T.30): HDLC frames, DIS/DCS, and sessions against simulated Class 1 modems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from test_modem_class2 import Sink, wait
from zetafailover.devices.isdn import split_document
from zetafailover.devices.modem import ModemDevice, Timeouts, t30
from zetafailover.interfaces import OutboundFax
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import ExchangeServer, RemoteFaxMachine
from zetafailover.testing.modem import SimulatedModem

FAST = Timeouts(command=5, dial=20, answer=20, page=20, page_start=20)
PLAN = {
    "lines": [
        {"name": "line-a", "kind": "analog", "number": "5550001"},
        {"name": "line-b", "kind": "analog", "number": "5550002"},
        {"name": "callers", "kind": "trunk", "channels": 2, "number": "5550099"},
    ],
    "ring_interval": 1.0,
    "answer_timeout": 8,
}


def rows_of(data: bytes, tmp: Path, name: str) -> list[bytes]:
    path = tmp / name
    path.write_bytes(data)
    return read_page_rows(path)


# ------------------------------------------------------------------------------------------ frames


def test_fcs_is_crc16_x25_and_checked() -> None:
    assert t30.fcs16(b"123456789") == 0x906E  # the CRC-16/X-25 check value
    frame = t30.with_fcs(bytes((0xFF, 0x13, 0xFB)))
    assert t30.parse_frame(frame).fcf == t30.DCN
    bad = frame[:-1] + bytes((frame[-1] ^ 1,))
    with pytest.raises(t30.FrameError, match="FCS"):
        t30.parse_frame(bad)


def test_fcf_and_control_are_bit_reversed_on_the_dte_link() -> None:
    # T.30 text notation vs the serial byte order (spandsp's t30_fcf.h values)
    assert t30.Frame(t30.DIS).wire() == bytes((0xFF, 0x13, 0x80))
    assert t30.Frame(t30.DCS, x=True).wire()[2] == 0x83
    assert t30.Frame(t30.TSI, x=True, final=False).wire()[:3] == bytes((0xFF, 0x03, 0x43))
    assert t30.Frame(t30.MCF).wire()[2] == 0x8C and t30.Frame(t30.CFR).wire()[2] == 0x84
    assert t30.Frame(t30.EOP, x=True).wire()[2] == 0x2F and t30.Frame(t30.MPS).wire()[2] == 0x4E
    assert t30.Frame(t30.DCN, x=True).wire()[2] == 0xFB and t30.Frame(t30.RTN).wire()[2] == 0x4C
    parsed = t30.parse_frame(bytes((0xFF, 0x03, 0x83)), has_fcs=False)
    assert parsed.fcf == t30.DCS and parsed.x and not parsed.final


def test_hdlc_bits_flags_stuffing_and_lsb_first() -> None:
    frame = t30.with_fcs(bytes((0xFF, 0x13, 0x80, 0x00, 0xEE, 0x7E, 0xFF)))
    bits = t30.hdlc_encode(frame)
    assert bits[:8] == [0, 1, 1, 1, 1, 1, 1, 0] and bits[-8:] == [0, 1, 1, 1, 1, 1, 1, 0]
    body = bits[16:-8]
    assert "111111" not in "".join(map(str, body)), "zero-bit stuffing keeps flags out of the data"
    assert body[:8] == [1] * 5 + [0] + [1] * 3 or body[:6] == [1, 1, 1, 1, 1, 0]  # 0xFF LSB first, stuffed
    assert t30.hdlc_decode(bits) == [frame]
    assert t30.hdlc_decode(bits + bits) == [frame, frame]


def test_dis_dcs_identity_and_tcf() -> None:
    dis = t30.Caps().dis()
    assert t30.Caps.from_dis(dis).families == frozenset({"v27", "v29", "v17"})
    assert t30.Caps(frozenset({"v29"}), False).dis() != dis
    assert t30.Caps.from_dis(t30.Caps(frozenset({"v27", "v29"}), False).dis()).rates()[0].bps == 9600
    for rate in t30.RATES:
        got = t30.Caps.from_dcs(t30.Caps(fine=True, rate=rate).dcs())
        assert got.rate == rate and got.fine
    assert t30.parse_ident(t30.ident_fif("+1 555 0100")) == "+1 555 0100"
    assert t30.ident_fif("12")[-2:] == b"21"
    rate = t30.RATES[2]
    assert t30.tcf_ok(t30.tcf_bytes(rate), rate)
    assert not t30.tcf_ok(bytes(rate.bps // 16), rate)  # too short
    assert not t30.tcf_ok(b"\x01\x00" * 2000, rate)  # noisy


# ---------------------------------------------------------------------------------------- sessions


@pytest.fixture
def xs() -> Iterator[ExchangeServer]:
    with ExchangeServer(PLAN) as server:
        yield server


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "doc.tif"
    path.write_bytes(text_document(None, [["first page", "of three"], ["second page"], ["third page"]]))
    return path


@pytest.mark.parametrize("receiver_class", ["1", "2.0"])
def test_class1_send_and_receive_pixel_for_pixel(
    xs: ExchangeServer, tmp_path: Path, document: Path, receiver_class: str
) -> None:
    transcript = tmp_path / "modems.log"
    ma = SimulatedModem(xs.addresses.endpoints, "line-a", label="A", transcript=transcript)
    mb = SimulatedModem(xs.addresses.endpoints, "line-b", label="B", transcript=transcript)
    sink = Sink()
    da = ModemDevice("a", "n1", ma.path, modem_class="1", timeouts=FAST, local_id="+1 555 0001")
    db = ModemDevice("b", "n2", mb.path, modem_class=receiver_class, timeouts=FAST, local_id="+1 555 0002")
    try:
        da.open(None)
        db.open(sink)
        assert "145" in da.status()["rates"]
        da.start(3)
        db.start(5)
        confirmed: list[int] = []
        out = da.send(OutboundFax("j1", "555-0002", (str(document),), page_count=3), confirmed.append)
        assert out.ok and out.pages_confirmed == 3 and confirmed == [0, 1, 2], (out, transcript.read_text()[-3000:])
        wait(lambda: bool(sink.faxes), 10, "the received fax")
        caller, pages, complete, term = sink.faxes[0]
        assert complete and term == 5 and len(pages) == 3
        for i, page in enumerate(pages):
            assert rows_of(page, tmp_path, f"r{i}.tif") == read_page_rows(document, i)
        assert [p["index"] for p in xs.exchange.pages()] == [0, 1, 2]
        # the 75 ms pause before every answer to a frame (the sender answers CSI/DIS, CFR, MCF)
        gaps = [g for g in ma.response_gaps if g >= 0]
        assert gaps and min(gaps) >= 0.07, ma.response_gaps
        if receiver_class == "1":
            # the far end's TSI carries the calling number (the exchange does not carry the sender's TSI)
            assert caller.endswith("5550001")
            rx_gaps = [g for g in mb.response_gaps if g >= 0]
            assert rx_gaps and min(rx_gaps) >= 0.07, mb.response_gaps
        # resume from the first unconfirmed page
        confirmed.clear()
        out = da.send(OutboundFax("j2", "5550002", (str(document),), first_page=2, page_count=3), confirmed.append)
        assert out.ok and confirmed == [2]
        wait(lambda: len(sink.faxes) == 2, 10, "the second fax")
        assert rows_of(sink.faxes[1][1][0], tmp_path, "s.tif") == read_page_rows(document, 2)
    finally:
        for thing in (da, db, ma, mb):
            thing.close()


def test_class1_receive_from_a_remote_fax_machine(xs: ExchangeServer, tmp_path: Path, document: Path) -> None:
    mb = SimulatedModem(xs.addresses.endpoints, "line-b", label="B")
    sink = Sink()
    db = ModemDevice("b", "n2", mb.path, modem_class="1", timeouts=FAST)
    remote = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
    try:
        db.open(sink)
        db.start(1)
        result = remote.send("5550002", split_document(document.read_bytes()))
        assert result.ok and result.confirmed == (0, 1, 2), result
        wait(lambda: bool(sink.faxes), 10, "the fax in the sink")
        assert sink.faxes[0][2]
        for i, page in enumerate(sink.faxes[0][1]):
            assert rows_of(page, tmp_path, f"p{i}.tif") == read_page_rows(document, i)
    finally:
        db.close()
        mb.close()
        remote.close()


def test_config_accepts_class_1_and_names_the_choices() -> None:
    from zetafailover.config import SectionConfig
    from zetafailover.devices.modem_plugin import options
    from zetafailover.errors import ConfigError

    def section(**opts: object) -> SectionConfig:
        return SectionConfig("modem", "m0", opts, "fax1.toml: device[0]", Path("/etc/zf"))

    assert options(section(port="/dev/ttyS0", **{"class": "1"}))["class"] == "1"
    with pytest.raises(ConfigError, match=r'device\[0\]\.class.*"1"'):
        options(section(port="/dev/ttyS0", **{"class": "1.0"}))
