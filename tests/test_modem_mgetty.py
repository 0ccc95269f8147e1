"""mgetty's ``sendfax`` — a real Class 2 / 2.0 fax program, not written by us — against our simulated modem.

sendfax drives simulated modem A (through a uniquely named symlink in /dev: sendfax opens nothing outside /dev)
and sends a 2-page fax through the simulated exchange to modem B, where our own driver receives it; the pages
must arrive pixel for pixel. With a modem offering Class 2.0 sendfax picks 2.0; with one offering only Class 2
it is refused 2.0 (``ERROR``) and falls back to the old Class 2 names; with a Class 1-only modem it gives up.

sendfax has no flags for its config, lock or log paths: it reads /etc/mgetty/sendfax.config, locks
/var/lock/LCK..<device>, logs to /var/log/mgetty/fax/sendfax.log. A device name of its own per test keeps the
lock (and the log lines) apart; the symlink and any lock left behind are removed afterwards. Needs root and
``/usr/sbin/sendfax`` (``apt-get install mgetty-fax``); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_modem_class2 import Sink, wait
from zetafailover.devices.modem import ModemDevice, Timeouts
from zetafailover.spool import t4
from zetafailover.spool.render import text_page
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import ExchangeServer
from zetafailover.testing.modem import ModemProfile, SimulatedModem

SENDFAX = "/usr/sbin/sendfax"
LOG = Path("/var/log/mgetty/fax/sendfax.log")
LOCK_DIR = Path("/var/lock")

pytestmark = [
    pytest.mark.realprocess,
    pytest.mark.skipif(
        not os.access(SENDFAX, os.X_OK), reason=f"mgetty's {SENDFAX} is not installed (apt-get install mgetty-fax)"
    ),
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="needs root: sendfax opens only devices below /dev (a symlink there) and locks in /var/lock",
    ),
]

PLAN = {
    "lines": [
        {"name": "line-a", "kind": "analog", "number": "5550001"},
        {"name": "line-b", "kind": "analog", "number": "5550002"},
    ],
    "ring_interval": 1.0,
}
FAST = Timeouts(command=5, dial=30, answer=30, page=30, page_start=30)
PAGES = (["mgetty sendfax", "page one"], ["page two", "0123456789"])


@dataclass
class Run:
    """One sendfax run: its exit code and output, what modem A heard, and its own log lines."""

    returncode: int
    output: str
    commands: list[str]
    log: str


@dataclass
class Rig:
    xs: ExchangeServer
    a: SimulatedModem
    device_name: str
    tmp: Path

    @property
    def lock(self) -> Path:
        return LOCK_DIR / f"LCK..{self.device_name}"

    def sendfax(self, files: list[Path]) -> Run:
        """Run sendfax on modem A (argument list, no shell) and collect what happened."""
        before = LOG.stat().st_size if LOG.exists() else 0
        argv = [SENDFAX, "-v", "-x", "5", "-l", self.device_name, "-I", "+1 555 0001", "5550002", *map(str, files)]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        log = ""
        if LOG.exists():
            with LOG.open("rb") as fh:
                fh.seek(before)
                log = fh.read().decode("latin-1")
        return Run(run.returncode, run.stdout + run.stderr, list(self.a.commands), log)


def make_rig(tmp_path: Path, classes: tuple[str, ...]) -> Iterator[Rig]:
    name = f"ttyZF{uuid.uuid4().hex[:8]}"
    link = Path("/dev") / name
    assert not link.exists()
    with ExchangeServer(PLAN) as xs:
        a = SimulatedModem(
            xs.addresses.endpoints,
            "line-a",
            label="A",
            link=link,
            transcript=tmp_path / "modems.log",
            profile=ModemProfile(classes=classes),
        )
        rig = Rig(xs, a, name, tmp_path)
        try:
            yield rig
        finally:
            a.close()  # removes the symlink
            link.unlink(missing_ok=True)
            rig.lock.unlink(missing_ok=True)


@pytest.fixture(params=[("0", "1", "2", "2.0"), ("0", "2")], ids=["class2.0", "class2"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, request.param)


@pytest.fixture
def class1_rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, ("0", "1"))


def g3_pages(tmp_path: Path) -> tuple[list[Path], list[list[bytes]]]:
    """Raw G3 files as mgetty keeps them (MH, RTC, MSB first — sendfax reverses the bits for the modem)."""
    files, rows = [], []
    for i, text in enumerate(PAGES):
        page = text_page(text, rows=240)
        path = tmp_path / f"page{i + 1}.g3"
        path.write_bytes(t4.encode_page(page, 1728, fill_order=1, rtc=True))
        files.append(path)
        rows.append(page)
    return files, rows


def subsequence(wanted: list[str], got: list[str]) -> bool:
    it = iter(got)
    return all(any(g == w for g in it) for w in wanted)


def test_the_g3_files_are_what_mgetty_reads(tmp_path: Path) -> None:
    """mgetty's own decoder (g32pbm, same package) reads our raw G3 files to the same pixels."""
    g32pbm = shutil.which("g32pbm")
    if g32pbm is None:
        pytest.skip("g32pbm is not installed (apt-get install mgetty-fax)")
    files, rows = g3_pages(tmp_path)
    for path, page in zip(files, rows, strict=True):
        pbm = subprocess.run([g32pbm, str(path)], capture_output=True, timeout=30, check=True).stdout
        header, _, body = pbm.partition(b"\n")
        assert header == b"P4"
        size, _, body = body.partition(b"\n")
        assert size == b"1728 %d" % len(page)
        assert [body[i * 216 : (i + 1) * 216] for i in range(len(page))] == page


def test_sendfax_sends_two_pages_to_our_driver(rig: Rig) -> None:
    b = SimulatedModem(rig.xs.addresses.endpoints, "line-b", label="B", transcript=rig.tmp / "modems.log")
    sink = Sink()
    device = ModemDevice("b", "n2", b.path, timeouts=FAST)
    files, rows = g3_pages(rig.tmp)
    try:
        device.open(sink)
        device.start(1)
        assert not rig.lock.exists()
        run = rig.sendfax(files)
        assert run.returncode == 0, (run.output, run.log[-3000:])
        assert not rig.lock.exists(), "sendfax removes its lock file"
        # sendfax's own account of the call
        account = f'success, phone="5550002", dev={rig.device_name}'
        assert account in run.log and "pages=2(+0)" in run.log, run.log[-2000:]
        wait(lambda: bool(sink.faxes), 10, "the fax at our driver")
        caller, pages, complete, term = sink.faxes[0]
        assert complete and term == 1 and len(pages) == 2 and caller.endswith("5550001")
        for i, page in enumerate(pages):
            path = rig.tmp / f"rx{i}.tif"
            path.write_bytes(page)
            assert read_page_rows(path) == rows[i], f"page {i + 1} differs"
        assert [p["index"] for p in rig.xs.exchange.pages()] == [0, 1]
        # the AT flow sendfax drove (fax-peers.md §8.2)
        if "2.0" in rig.a.profile.classes:
            flow = ["ATV1Q0", "AT+FCLASS=2.0", 'AT+FLI="+1 555 0001"', "AT+FCC=1,5,0,2,0,0,0,0", "AT+FBO=0",
                    "ATD5550002", "AT+FDT", "AT+FDT", "AT+FCLASS=0"]  # fmt: skip
            assert "AT+FCLASS=2" not in run.commands
        else:
            flow = ["ATV1Q0", "AT+FCLASS=2.0", "AT+FCLASS=2", 'AT+FLID="+1 555 0001"', "AT+FDCC=1,5,0,2,0,0,0,0",
                    "AT+FBOR=0", "ATD5550002", "AT+FDT", "AT+FET=0", "AT+FDT", "AT+FET=2", "AT+FCLASS=0"]  # fmt: skip
        assert subsequence(flow, run.commands), run.commands
        assert run.commands.count("ATD5550002") == 1 and run.commands.count("AT+FDT") == 2, "each page once"
        transcript = (rig.tmp / "modems.log").read_text()
        assert "A < b'ATD5550002" in transcript and "A > b'\\r\\nCONNECT\\r\\n'" in transcript
        assert not rig.a.off_hook and rig.a.hangups == ["end"]
    finally:
        device.close()
        b.close()


def test_sendfax_refuses_a_class_1_only_modem(class1_rig: Rig) -> None:
    files, _ = g3_pages(class1_rig.tmp)
    run = class1_rig.sendfax(files)
    assert run.returncode == 3, run.output  # "cannot initialise modem"
    assert "not a class 2/2.0 fax modem" in run.output + run.log
    assert subsequence(["AT+FCLASS=2.0", "AT+FCLASS=2"], run.commands), run.commands
    assert not any(c.startswith("ATD") for c in run.commands), "it never dials"
    assert class1_rig.xs.exchange.pages() == [] and not class1_rig.lock.exists()
