"""Class 1 error paths: what our host-side T.30 does when the far end misbehaves (docs/modem.md, "Class 1").

Each test gives the simulated modem's T.30 gateway one fault (:class:`Class1Faults`) and checks the exact
behaviour the guide promises: FTT → the next slower rate; RTN → retrain one rate lower and send the page again,
three tries, then the call fails with the confirmed count; a command nobody answers → repeated every T4, three
times, then DCN and hang-up; a caller that never sends DCS → the receive ends when T1 runs out; a line that
drops mid-page → failure with the confirmed count, and the job resumes at the first unconfirmed page.
Short T.30 timers keep the whole file to a few seconds a test.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from test_modem_class2 import Sink, wait
from zetafailover.devices.isdn import split_document
from zetafailover.devices.modem import ModemDevice, T30Timers, Timeouts, t30
from zetafailover.devices.modem.class2 import hangup_reason
from zetafailover.interfaces import DeviceHealth, OutboundFax, SendOutcome
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import ExchangeServer, RemoteFaxMachine
from zetafailover.testing.modem import SimulatedModem
from zetafailover.testing.modem.sim import Class1Faults

FAST = Timeouts(command=5, dial=20, answer=20, page=20, page_start=20)
TIMERS = T30Timers(t1=4.0, t2=3.0, t4=1.0)
"""Short T.30 timers (T4 still well above the simulator's response time on a loaded machine)."""
PLAN = {
    "lines": [
        {"name": "line-a", "kind": "analog", "number": "5550001"},
        {"name": "line-b", "kind": "analog", "number": "5550002"},
        {"name": "far", "kind": "trunk", "channels": 2, "number": "5550099"},
    ],
    "ring_interval": 1.0,
    "answer_timeout": 8,
}
ALL_RATES = [r.bps for r in t30.RATES]


@dataclass
class Rig:
    """The exchange, a remote fax machine on the far trunk, and our Class 1 devices on simulated modems."""

    xs: ExchangeServer
    tmp: Path
    remote: RemoteFaxMachine
    document: Path
    things: list[SimulatedModem | ModemDevice] = field(default_factory=list)

    def modem(self, line: str, faults: Class1Faults, inbound: Sink | None = None) -> tuple[SimulatedModem, ModemDevice]:
        sim = SimulatedModem(
            self.xs.addresses.endpoints, line, label=line, transcript=self.tmp / "modem.log", class1_faults=faults
        )
        self.things.append(sim)
        device = ModemDevice(
            line,
            "n1",
            sim.path,
            modem_class="1",
            timeouts=FAST,
            t30_timers=TIMERS,
            local_id="+1 555 0001",
            log_path=self.tmp / f"{line}.jsonl",
        )
        self.things.insert(0, device)
        device.open(inbound)
        device.start(1)
        return sim, device

    def send(self, device: ModemDevice, first: int = 0) -> tuple[SendOutcome, list[int]]:
        confirmed: list[int] = []
        fax = OutboundFax("job", "5550099", (str(self.document),), first_page=first, page_count=3)
        return device.send(fax, confirmed.append), confirmed

    def doc_rows(self, index: int) -> list[bytes]:
        return read_page_rows(self.document, index)

    def rows(self, data: bytes) -> list[bytes]:
        path = self.tmp / "page.tif"
        path.write_bytes(data)
        return read_page_rows(path)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    document = tmp_path / "doc.tif"
    document.write_bytes(text_document(None, [["page one", "of three"], ["page two"], ["page three"]]))
    with ExchangeServer(PLAN) as xs:
        remote = RemoteFaxMachine(xs.addresses.endpoints, "far", label="far")
        r = Rig(xs, tmp_path, remote, document)
        try:
            yield r
        finally:
            for thing in r.things:
                thing.close()
            remote.close()


def names(sim: SimulatedModem, *, skip: tuple[str, ...] = ("TSI", "CSI")) -> list[str]:
    """The frames the host sent, by name (identity frames left out)."""
    return [f.name for _, f in sim.host_frames if f.name not in skip]


def dcs_rates(sim: SimulatedModem) -> list[int]:
    rates = [t30.Caps.from_dcs(f.fif).rate for _, f in sim.host_frames if f.fcf == t30.DCS]
    return [r.bps for r in rates if r is not None]


def times_of(sim: SimulatedModem, name: str) -> list[float]:
    return [at for at, f in sim.host_frames if f.name == name]


def device_events(rig: Rig, line: str, event: str) -> list[dict[str, object]]:
    path = rig.tmp / f"{line}.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(x) for x in path.read_text().splitlines()]
    return [e for e in entries if e["event"] == event]


# ----------------------------------------------------------------------------------------------------- FTT


def test_ftt_steps_down_to_the_next_slower_rate(rig: Rig) -> None:
    sim, device = rig.modem("line-a", Class1Faults(ftt=2))
    out, confirmed = rig.send(device)
    assert out.ok and confirmed == [0, 1, 2], out
    # V.17 14400 → FTT → V.17 12000 → FTT → V.29 9600 → CFR; every DCS is followed by its own TCF
    assert dcs_rates(sim) == [14400, 12000, 9600]
    ftm = [c for c in sim.commands if c.startswith("AT+FTM=") and c[-1].isdigit()]
    assert ftm[:3] == ["AT+FTM=145", "AT+FTM=121", "AT+FTM=96"], ftm
    assert ftm[3:] == ["AT+FTM=96"] * 3, "pages go at the rate that trained"
    assert names(sim) == ["DCS", "DCS", "DCS", "MPS", "MPS", "EOP", "DCN"]
    pages = rig.remote.pages_received()
    assert [rig.rows(p) for p in pages] == [rig.doc_rows(i) for i in range(3)]


def test_ftt_at_every_rate_fails_to_train(rig: Rig) -> None:
    sim, device = rig.modem("line-a", Class1Faults(ftt=99))
    out, confirmed = rig.send(device)
    assert not out.ok and out.pages_confirmed == 0 and confirmed == []
    assert out.reason == hangup_reason(27)
    assert dcs_rates(sim) == ALL_RATES, "one DCS + TCF per rate, fastest first, each rate once"
    assert names(sim) == ["DCS"] * len(ALL_RATES) + ["DCN"], "no page data after a failed training"
    assert rig.remote.pages_received() == []
    assert device.monitor() == DeviceHealth.RUNNING


# ----------------------------------------------------------------------------------------------------- RTN


def test_rtn_once_retrains_and_sends_the_page_again(rig: Rig) -> None:
    sim, device = rig.modem("line-a", Class1Faults(rtn_page=1, rtn_times=1))
    out, confirmed = rig.send(device)
    assert out.ok and confirmed == [0, 1, 2], out
    # page 2's MPS got RTN: a new DCS (one rate lower) and TCF, then page 2 again
    assert names(sim) == ["DCS", "MPS", "MPS", "DCS", "MPS", "EOP", "DCN"]
    assert dcs_rates(sim) == [14400, 12000]
    pages = rig.remote.pages_received()
    assert [rig.rows(p) for p in pages] == [rig.doc_rows(i) for i in range(3)], "each page delivered once"


def test_rtn_three_times_fails_with_the_confirmed_count_and_the_job_resumes(rig: Rig) -> None:
    sim, device = rig.modem("line-a", Class1Faults(rtn_page=1, rtn_times=99))
    out, confirmed = rig.send(device)
    assert not out.ok and out.retryable, out
    assert out.pages_confirmed == 1 and confirmed == [0]
    assert out.reason == "page 2 refused (RTN)"
    # three tries of page 2, a retrain before each retry, then DCN
    assert names(sim) == ["DCS", "MPS", "MPS", "DCS", "MPS", "DCS", "MPS", "DCN"]
    assert dcs_rates(sim) == [14400, 12000, 9600]
    assert [rig.rows(p) for p in rig.remote.pages_received()] == [rig.doc_rows(0)]
    # the job resumes at the first unconfirmed page
    sim.class1_faults = Class1Faults()
    out, confirmed = rig.send(device, first=1)
    assert out.ok and confirmed == [1, 2], out
    assert [rig.rows(p) for p in rig.remote.pages_received()] == [rig.doc_rows(i) for i in range(3)]


# ------------------------------------------------------------------------------------------------------ T4


@pytest.mark.parametrize(
    ("ignored", "code", "pages_confirmed"),
    [("DCS", 25, 0), ("MPS", 52, 0), ("EOP", 54, 2)],
)
def test_a_command_without_response_is_repeated_every_t4_three_times_then_hang_up(
    rig: Rig, ignored: str, code: int, pages_confirmed: int
) -> None:
    sim, device = rig.modem("line-a", Class1Faults(ignore=frozenset({ignored})))
    out, confirmed = rig.send(device)
    assert not out.ok and out.retryable, out
    assert out.pages_confirmed == pages_confirmed and confirmed == list(range(pages_confirmed))
    assert out.reason == hangup_reason(code)
    sent = times_of(sim, ignored)
    assert len(sent) == TIMERS.retries == 3, names(sim)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(g >= TIMERS.t4 * 0.95 for g in gaps), f"a command is repeated only after T4: {gaps}"
    assert all(g < TIMERS.t4 + 3.0 for g in gaps), gaps
    assert names(sim)[-4:] == [ignored] * 3 + ["DCN"], "three tries, then DCN"
    assert sim.commands[-1] == "ATH0" and not sim.off_hook
    if ignored == "DCS":
        assert dcs_rates(sim) == [14400] * 3, "DCS is repeated at the same rate (no answer is not FTT)"
        assert sum(c == "AT+FTM=145" for c in sim.commands) == 3, "each DCS is followed by its TCF"
    assert len(rig.remote.pages_received()) == pages_confirmed


# ------------------------------------------------------------------------------------------------------ T1


def test_t1_ends_the_receive_when_the_caller_never_sends_dcs(rig: Rig) -> None:
    sink = Sink()
    sim, _device = rig.modem("line-b", Class1Faults(ignore=frozenset({"DIS"})), inbound=sink)
    result = rig.remote.send("5550002", split_document(rig.document.read_bytes()), page_timeout=30)
    assert result.connected and result.confirmed == (), result
    wait(lambda: bool(device_events(rig, "line-b", "received")), 10, "the end of the receive")
    (event,) = device_events(rig, "line-b", "received")
    assert event["complete"] is False and event["reason"] == hangup_reason(11), event
    dis = times_of(sim, "DIS")
    dcn = times_of(sim, "DCN")
    assert len(dcn) == 1 and dcn[0] > dis[-1], names(sim)
    assert TIMERS.t1 - 0.3 <= dcn[0] - dis[0] <= TIMERS.t1 + TIMERS.t4 + 2.0, "the receive lasts T1, no longer"
    gaps = [b - a for a, b in itertools.pairwise(dis)]
    assert len(dis) >= 3 and all(g >= TIMERS.t4 * 0.95 for g in gaps), f"DIS again every T4: {gaps}"
    assert sink.faxes == [], "nothing was received, nothing is acknowledged"
    assert "dcn" in sim.hangups or "ath" in sim.hangups


# ------------------------------------------------------------------------------------------- line drops


def test_line_drop_mid_page_fails_with_the_confirmed_count_and_the_job_resumes(rig: Rig) -> None:
    sim, device = rig.modem("line-a", Class1Faults(drop_in_page=1))
    out, confirmed = rig.send(device)
    assert not out.ok and out.retryable, out
    assert out.pages_confirmed == 1 and confirmed == [0], out
    assert "NO CARRIER" in out.reason
    assert "line dropped" in sim.hangups
    assert device.monitor() == DeviceHealth.RUNNING, "a dropped line is not a broken modem"
    wait(lambda: len(rig.remote.received) == 1 and rig.remote.received[0].cause != 0, 10, "the far end's hang-up")
    assert not rig.remote.received[0].complete
    assert [rig.rows(p) for p in rig.remote.pages_received()] == [rig.doc_rows(0)]
    sim.class1_faults = Class1Faults()
    out, confirmed = rig.send(device, first=1)
    assert out.ok and confirmed == [1, 2], out
    assert [rig.rows(p) for p in rig.remote.pages_received()] == [rig.doc_rows(i) for i in range(3)]


def test_line_drop_mid_page_while_receiving_keeps_only_whole_confirmed_pages(rig: Rig) -> None:
    sink = Sink()
    sim, _device = rig.modem("line-b", Class1Faults(drop_in_page=1), inbound=sink)
    result = rig.remote.send("5550002", split_document(rig.document.read_bytes()), page_timeout=30)
    assert result.confirmed == (0,), result
    wait(lambda: bool(sink.faxes), 15, "the partial fax in the sink")
    _caller, pages, complete, _term = sink.faxes[0]
    assert not complete and [rig.rows(p) for p in pages] == [rig.doc_rows(0)], "half a page is never stored"
    assert "line dropped" in sim.hangups
    (event,) = device_events(rig, "line-b", "received")
    assert event["complete"] is False, event
    # the modem answers ERROR to AT+FRH=3 once the line is gone: the host stops there instead of asking
    # again and again until T2 runs out
    assert sim.commands.count("AT+FRH=3") < 10, sim.commands.count("AT+FRH=3")
