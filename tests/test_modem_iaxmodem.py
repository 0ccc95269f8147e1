"""Our Class 1 driver against real modulation: two iaxmodems (spandsp) calling each other, efax as the far end.

* our driver sends 3 pages through iaxmodem A → B to ``efax -r``: pixel-exact, every page confirmed;
* ``efax`` sends 2 pages from A to our driver on B: pixel-exact (efax adds a blank 20-row header band);
* a UDP relay between the modems kills the line during page 2 of 3: the driver reports 1 confirmed page, the
  spool keeps it, and a second call (fresh pair) resumes at page 2 — the receiver ends up with pages 1, 2, 3.

Every call restarts both iaxmodems (they keep state across a failed call). A call costs ≈ 10 s plus ≈ 8 s a
page at V.17 14,400 bit/s. Skipped when iaxmodem or efax is missing (``apt-get install iaxmodem efax``) or
when not root (iaxmodem makes its pty symlink as root).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from test_modem_at import ScriptedPort
from zetafailover.devices.modem import ModemDevice, Timeouts, t30
from zetafailover.devices.modem.at import AtChannel
from zetafailover.devices.modem.pages import REVERSE, decode_line_page, sync_to_first_eol
from zetafailover.interfaces import OutboundFax
from zetafailover.spool import t4
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import JobState, SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows, validate_tiff_bytes
from zetafailover.testing.iaxmodem import (
    BUSY_OUT_S,
    EfaxReceiver,
    IaxmodemPair,
    UdpRelay,
    efax_missing_reason,
    efax_send,
    iaxmodem_missing_reason,
)

EFAX_HEADER_ROWS = 20
"""efax puts a header band (blank with ``-h " "``) of 20 rows on top of every page it sends."""
REAL = Timeouts(command=5, dial=60, answer=60, page=60, page_start=60)
TEXT = [
    ["zetafailover iaxmodem test", "page one of three", "0123456789 ABCDEFGHIJ"],
    ["page two of three", "the quick brown fox", "jumps over the lazy dog", "!@#$%^&*()_+-=[]{}"],
    ["page three of three", "last page", "EOP follows"],
]

missing = iaxmodem_missing_reason() or efax_missing_reason()


def rows_of(data: bytes, tmp: Path, name: str) -> list[bytes]:
    path = tmp / name
    path.write_bytes(data)
    return read_page_rows(path)


def sent_rows(document: Path) -> list[list[bytes]]:
    count = validate_tiff_bytes(document.read_bytes(), str(document)).page_count
    return [read_page_rows(document, i) for i in range(count)]


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "doc.tif"
    path.write_bytes(text_document(None, TEXT))
    return path


def open_sender(port: str) -> ModemDevice:
    device = ModemDevice("a", "n1", port, modem_class="1", timeouts=REAL, local_id="+1 555 0001")
    device.open(None)
    device.start(1)
    return device


# ------------------------------------------------- what the real modem showed (fast, no iaxmodem needed)


def test_v17_pages_go_at_short_training_and_tcf_at_long() -> None:
    v17 = {r.bps: r for r in t30.RATES if r.family == "v17"}
    assert (v17[14400].code, v17[14400].page) == (145, 146)
    assert (v17[12000].code, v17[12000].page) == (121, 122)
    assert all(r.page == r.code for r in t30.RATES if r.family != "v17")


@pytest.mark.parametrize("shift", [0, 3, 7])
def test_received_page_starts_at_its_first_eol(shift: int) -> None:
    rows = [bytes(216)] * 5 + [b"\x0f" * 216, bytes(100) + b"\xff" + bytes(115)]
    page = t4.encode_page(rows, fill_order=2, rtc=True)
    # spandsp delivers ones while the carrier trains, and a page need not start on a byte boundary
    msb = "".join(format(b, "08b") for b in page.translate(REVERSE))
    noisy = "1" * (8 * 1500 + shift) + msb + "0" * 16 + "10110010" * 4  # + junk after RTC
    noisy += "0" * (-len(noisy) % 8)
    data = int(noisy, 2).to_bytes(len(noisy) // 8, "big").translate(REVERSE)
    assert decode_line_page(data) == rows
    assert sync_to_first_eol(b"\xff\xff") == b"\xff\xff"  # no EOL: unchanged


def test_lf_of_connect_arriving_after_the_data_read_began_is_not_data() -> None:
    port = ScriptedPort(lambda line: b"\r\nCONNECT\r" if line == b"AT+FRH=3" else None)
    at = AtChannel(port)
    assert at.command("AT+FRH=3", 2.0).result == "CONNECT"
    frame = t30.with_fcs(t30.Frame(t30.DIS, b"\x00\x46").wire())
    port.feed(b"\n" + frame + b"\x10\x03\r\nOK\r\n")  # the LF comes late, with the frame
    assert at.read_data(2.0) == frame
    assert at.wait_result(2.0).result == "OK"


# --------------------------------------------------------------------------------------------- relay


def test_udp_relay_forwards_both_ways_drops_in_its_window_and_counts() -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.settimeout(2.0)
    b.settimeout(0.3)
    relay = UdpRelay(a.getsockname()[1], b.getsockname()[1])
    try:
        to_relay = ("127.0.0.1", relay.port)
        a.sendto(b"hello b", to_relay)
        assert b.recvfrom(100)[0] == b"hello b"
        b.sendto(b"hello a", to_relay)
        assert a.recvfrom(100)[0] == b"hello a"
        assert relay.first_packet_at is not None
        relay.drop(after_s=0.0, for_s=0.5)
        a.sendto(b"lost", to_relay)
        with pytest.raises(TimeoutError):
            b.recvfrom(100)
        time.sleep(0.6)  # the window is over: the line works again
        a.sendto(b"back", to_relay)
        b.settimeout(2.0)
        assert b.recvfrom(100)[0] == b"back"
        relay.cut()
        b.settimeout(0.3)
        b.sendto(b"dead", to_relay)
        a.settimeout(0.3)
        with pytest.raises(TimeoutError):
            a.recvfrom(100)
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.sendto(b"who", to_relay)
        stranger.close()
        deadline = time.monotonic() + 2
        while relay.packets["foreign"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.packets == {"a>b": 2, "b>a": 1, "dropped": 2, "foreign": 1}
        with pytest.raises(ValueError, match="for_s"):
            relay.drop(1.0, for_s=0)
    finally:
        relay.close()
        a.close()
        b.close()


# ------------------------------------------------------------------------------------ real modulation


@pytest.mark.realprocess
@pytest.mark.skipif(bool(missing), reason=missing)
def test_our_class1_driver_sends_three_pages_to_efax(tmp_path: Path, document: Path) -> None:
    with IaxmodemPair() as pair, EfaxReceiver(pair.b, tmp_path / "rx", log=tmp_path / "efax.log") as efax:
        device = open_sender(pair.a)
        try:
            assert device.status()["ati"] == "spandsp" and device.status()["classes"] == "0,1,1.0"
            assert "146" in device.status()["rates"]
            confirmed: list[int] = []
            out = device.send(OutboundFax("j1", "5550002", (str(document),), page_count=3), confirmed.append)
        finally:
            device.close()
        assert out.ok and out.pages_confirmed == 3 and confirmed == [0, 1, 2], (out, efax.log_text())
        assert efax.wait(30) == 0, efax.log_text()
        log = efax.log_text()
        assert log.count("received DCS") == 1, "one training, no retrain"
        assert "+FRM=146" in log, "page data at V.17 14400 with short training"
        files = efax.pages()
        assert len(files) == 3, (files, log)
        for i, (path, sent) in enumerate(zip(files, sent_rows(document), strict=True)):
            assert read_page_rows(path) == sent, f"page {i + 1} differs from what was sent"
        assert ", 0 errors" in log and " errors" not in log.replace(", 0 errors", ""), log


@pytest.mark.realprocess
@pytest.mark.skipif(bool(missing), reason=missing)
def test_our_class1_driver_receives_two_pages_from_efax(tmp_path: Path) -> None:
    files = []
    for i, text in enumerate(TEXT[:2]):
        path = tmp_path / f"page.{i + 1:03d}"
        path.write_bytes(text_document(None, [text]))
        files.append(path)
    spool = DirectorySpool(tmp_path / "spool", node="n2")
    spool.advance_term(4)
    with IaxmodemPair() as pair:
        device = ModemDevice("b", "n2", pair.b, modem_class="1", timeouts=REAL, local_id="+1 555 0002")
        device.open(spool)
        device.start(4)
        try:
            time.sleep(BUSY_OUT_S + 0.5)  # our initialisation sent ATZ: iaxmodem refuses calls for 5 s
            rc = efax_send(pair.a, files, "5550002", log=tmp_path / "efax.log", local_id="+1 555 0001")
            deadline = time.monotonic() + 20
            while not spool.received() and time.monotonic() < deadline:
                time.sleep(0.1)
            received = spool.received()
        finally:
            device.close()
        efax_log = (tmp_path / "efax.log").read_text(errors="replace")
        assert rc == 0, efax_log[-4000:]
        assert len(received) == 1, received
        fax = received[0]
        assert str(fax.state) == "received" and fax.caller == "+1 555 0001" and fax.term == 4, fax
        assert fax.pages == 2, fax
        assert "received CFR" in efax_log and efax_log.count("sent DCS") == 1, "CFR caught at the first training"
        for i, page_path in enumerate(fax.page_files):
            rows = read_page_rows(page_path)
            sent = read_page_rows(files[i])
            assert not any(any(r) for r in rows[:EFAX_HEADER_ROWS]), "efax's header band is blank with -h ' '"
            assert rows[EFAX_HEADER_ROWS : EFAX_HEADER_ROWS + len(sent)] == sent, f"page {i + 1} differs"


@pytest.mark.realprocess
@pytest.mark.skipif(bool(missing), reason=missing)
def test_line_cut_mid_page_two_resumes_from_page_two_through_the_spool(tmp_path: Path, document: Path) -> None:
    spool = DirectorySpool(tmp_path / "spool", node="n1")
    spool.advance_term(1)
    job_id = spool.submit(document, "5550002", SubmitOptions(max_attempts=3, retry_delay_s=0))
    pages = sent_rows(document)

    def attempt(pair: IaxmodemPair, rx: Path, cut_after_page: int | None) -> tuple[bool, int, str, EfaxReceiver]:
        job = spool.claim(1, "a")
        assert job is not None and job.id == job_id
        fax = OutboundFax(job.id, job.number, (str(job.document),), job.pages_confirmed, 1, job.pages)

        def on_page(index: int) -> None:
            spool.page_confirmed(job.id, index, 1)
            if index == cut_after_page and pair.relay is not None:
                pair.relay.drop(after_s=2.0)  # in the middle of the next page's data (≈ 5 s at 14,400)

        efax = EfaxReceiver(pair.b, rx, log=rx.with_suffix(".log")).start()
        device = open_sender(pair.a)
        try:
            out = device.send(fax, on_page)
        finally:
            device.close()
        spool.complete(job.id, 1, out.ok, out.reason, out.retryable)
        return out.ok, out.pages_confirmed, out.reason, efax

    with IaxmodemPair(relay=True) as pair:
        ok, count, reason, efax = attempt(pair, tmp_path / "rx1", cut_after_page=0)
        try:
            assert not ok and count == 1, (count, reason, efax.log_text())
            assert pair.relay is not None and pair.relay.packets["dropped"] > 0
            job = spool.get(job_id)
            assert job.state == JobState.RETRY_WAIT and job.pages_confirmed == 1 and job.reason == reason, job
            # the far end kept page 1; page 2 (if efax wrote anything of it) was never confirmed
            first_call = efax.pages()
            assert first_call and read_page_rows(first_call[0]) == pages[0], efax.log_text()
        finally:
            efax.close()

    with IaxmodemPair() as pair:  # a fresh pair: iaxmodem keeps state across a failed call
        ok, count, reason, efax = attempt(pair, tmp_path / "rx2", cut_after_page=None)
        try:
            assert ok and count == 3, (count, reason, efax.log_text())
            assert efax.wait(30) == 0, efax.log_text()
            second_call = efax.pages()
        finally:
            efax.close()
    job = spool.get(job_id)
    assert job.state == JobState.SENT and job.pages_confirmed == 3 and job.attempts == 2, job
    assert [read_page_rows(p) for p in second_call] == pages[1:], "the second call sends pages 2 and 3 only"
    confirmations = [h.why for h in spool.history(job_id) if "confirmed" in h.why]
    assert confirmations == ["page 1 of 3 confirmed", "page 2 of 3 confirmed", "page 3 of 3 confirmed"]
