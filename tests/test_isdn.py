"""The ISDN card driver against the simulated exchange: lifecycle, Q.931, causes in job history, durability."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zetafailover.devices.isdn import IsdnCard, IsdnDevice, SpanType, split_document
from zetafailover.errors import StaleTermError
from zetafailover.interfaces import DeviceHealth, FaxDevice, OutboundFax
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.dispatcher import Dispatcher
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows, validate_tiff_bytes
from zetafailover.testing.exchange import Cause, ExchangeServer, Message, RemoteFaxMachine

DID = "5550100"
REMOTE = "5550199"


def wait(pred: Callable[[], bool], limit: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def exchange() -> Iterator[ExchangeServer]:
    plan = {
        "lines": [
            {"name": "pri-a", "kind": "e1"},
            {"name": "bri-a", "kind": "bri"},
            {"name": "remote", "kind": "trunk", "channels": 120, "number": REMOTE},
            {"name": "caller", "kind": "trunk", "channels": 120, "number": "5550123"},
        ],
        "routes": [{"number": DID, "lines": ["pri-a"]}],
        "answer_timeout": 5,
    }
    with ExchangeServer(plan) as server:
        yield server


@pytest.fixture
def spool(tmp_path: Path) -> DirectorySpool:
    s = DirectorySpool(tmp_path / "spool", node="n1")
    s.advance_term(1)
    return s


def make_device(exchange: ExchangeServer, spans: list[tuple[SpanType, str]] | None = None, **kw: object) -> IsdnDevice:
    card = IsdnCard("card0", spans or [(SpanType.E1, "pri-a")], exchange.addresses.endpoints, label="n1")
    return IsdnDevice("isdn0", "n1", card, **kw)  # type: ignore[arg-type]


def document(path: Path, pages: int) -> Path:
    text_document(path, [[f"page {i + 1} of {pages}"] for i in range(pages)])
    return path


def test_split_document_keeps_every_page_exactly(tmp_path: Path) -> None:
    doc = document(tmp_path / "d.tif", 3)
    pages = split_document(doc.read_bytes())
    assert len(pages) == 3
    for i, page in enumerate(pages):
        assert validate_tiff_bytes(page).page_count == 1
        (tmp_path / f"p{i}.tif").write_bytes(page)
        assert read_page_rows(tmp_path / f"p{i}.tif") == read_page_rows(doc, i)


def test_device_is_a_fax_device_opened_off_line_and_answers_only_while_started(
    exchange: ExchangeServer, spool: DirectorySpool, tmp_path: Path
) -> None:
    device = make_device(exchange)
    assert isinstance(device, FaxDevice)
    assert device.channels == 30
    device.open(spool)
    assert device.monitor() is DeviceHealth.STOPPED
    remote = RemoteFaxMachine(exchange.addresses.endpoints, "caller", label="far")
    pages = split_document(document(tmp_path / "d.tif", 2).read_bytes())
    assert remote.send(DID, pages).cause == Cause.NO_CIRCUIT_AVAILABLE  # channels out of service: never answered
    device.start(1)
    device.start(1)  # idempotent
    assert device.monitor() is DeviceHealth.RUNNING
    result = remote.send(DID, pages)
    assert result.ok and result.answered_by == "n1", result
    wait(lambda: [f.state for f in spool.received()] == ["received"], what="the fax to be stored")
    [fax] = spool.received()
    assert fax.state == "received" and fax.pages == 2
    assert [p.read_bytes() for p in fax.page_files] == pages
    device.stop()
    device.stop()
    assert device.monitor() is DeviceHealth.STOPPED
    assert remote.send(DID, pages).cause == Cause.NO_CIRCUIT_AVAILABLE
    with pytest.raises(StaleTermError):
        device.start(0)
    device.close()
    remote.close()


def test_q931_messages_of_an_incoming_and_an_outgoing_call(exchange: ExchangeServer, spool: DirectorySpool) -> None:
    device = make_device(exchange)
    device.open(spool)
    device.start(1)
    remote = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="far")
    seen = []
    original = device.card.accept

    def accept(call, timeout):  # type: ignore[no-untyped-def]
        original(call, timeout)
        seen.append(call)

    device.card.accept = accept  # type: ignore[method-assign]
    caller = RemoteFaxMachine(exchange.addresses.endpoints, "caller", label="far2")
    assert caller.send(DID, [b"page"]).ok
    wait(lambda: bool(seen) and seen[0].state.name == "NULL", what="the incoming call to end")
    msgs = [m for _, m in seen[0].messages]
    assert msgs[:5] == [
        Message.SETUP,
        Message.CALL_PROCEEDING,
        Message.ALERTING,
        Message.CONNECT,
        Message.CONNECT_ACKNOWLEDGE,
    ]
    assert msgs[-1] == Message.RELEASE_COMPLETE and Message.DISCONNECT in msgs
    call = device.card.place_call(REMOTE, 5)
    assert call.state.name == "ACTIVE" and call.channel == 29  # outgoing calls take the highest channel
    device.card.disconnect(call)
    assert [m for _, m in call.messages] == [
        Message.SETUP,
        Message.CALL_PROCEEDING,
        Message.ALERTING,
        Message.CONNECT,
        Message.CONNECT_ACKNOWLEDGE,
        Message.DISCONNECT,
        Message.RELEASE,
        Message.RELEASE_COMPLETE,
    ]
    assert call.cause == Cause.NORMAL_CLEARING
    device.close()
    remote.close()
    caller.close()


def test_q931_causes_reach_the_job_history(exchange: ExchangeServer, spool: DirectorySpool, tmp_path: Path) -> None:
    device = make_device(exchange, spans=[(SpanType.BRI, "bri-a")])
    device.open(spool)
    device.start(1)
    remote = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="far", busy=True)
    doc = document(tmp_path / "d.tif", 3)
    opts = SubmitOptions(max_attempts=5, retry_delay_s=0.0)
    busy_job = spool.submit(doc, REMOTE, opts)
    dispatcher = Dispatcher(spool, [device], "n1", device._clock, poll_s=0.05)
    dispatcher.start(1)
    wait(lambda: "cause 17" in " ".join(h.why for h in spool.history(busy_job)), what="a busy try")
    dispatcher.halt()
    wait(lambda: dispatcher.in_flight == 0, what="the dispatcher to go idle")
    remote.busy = False
    exchange.exchange.inject(REMOTE, Cause.NO_CIRCUIT_AVAILABLE)
    dispatcher.stop()
    dispatcher = Dispatcher(spool, [device], "n1", device._clock, poll_s=0.05)
    dispatcher.start(1)
    wait(lambda: spool.get(busy_job).state == "sent", what="the job to be sent")
    dispatcher.stop()
    whys = [h.why for h in spool.history(busy_job)]
    assert any("Q.931 cause 17 (user busy); retry later" in w for w in whys), whys
    assert any("Q.931 cause 34 (no circuit/channel available); retry later" in w for w in whys), whys
    assert whys[-1] == "sent"
    # the remote machine kept exactly the document's pages
    assert remote.pages_received() == split_document(doc.read_bytes())
    # an unallocated number fails the job at once (retrying cannot help)
    bad = spool.submit(doc, "5550000", opts)
    dispatcher = Dispatcher(spool, [device], "n1", device._clock, poll_s=0.05)
    dispatcher.start(1)
    wait(lambda: spool.get(bad).state == "failed", what="the unroutable job to fail")
    dispatcher.stop()
    assert "cause 1 (unallocated number)" in spool.get(bad).reason
    device.close()
    remote.close()


def test_send_resumes_at_first_page_and_refuses_off_line(
    exchange: ExchangeServer, spool: DirectorySpool, tmp_path: Path
) -> None:
    device = make_device(exchange)
    device.open(spool)
    remote = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="far")
    doc = document(tmp_path / "d.tif", 4)
    fax = OutboundFax("J1", REMOTE, (str(doc),), first_page=2, term=1, page_count=4)
    out = device.send(fax, lambda i: None)
    assert not out.ok and out.retryable and "off line" in out.reason
    device.start(1)
    confirmed: list[int] = []
    out = device.send(fax, confirmed.append)
    assert out.ok and out.pages_confirmed == 4 and confirmed == [2, 3]
    assert remote.pages_received() == split_document(doc.read_bytes())[2:]
    device.close()
    remote.close()


def test_a_call_answered_after_the_node_lost_its_term_is_not_taken_up(
    exchange: ExchangeServer, spool: DirectorySpool, tmp_path: Path
) -> None:
    """The guard allowed the dial, then (a pause past the self-fence deadline) no longer allows acting: the
    answered call is cleared, no page is sent, and nothing is logged as connected under the old term."""
    device = make_device(exchange, log_path=tmp_path / "dev.jsonl")
    device.open(spool)
    remote = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="far")
    answers = iter([True])  # allowed once: before the dial; never again
    device.guard = lambda term: next(answers, False)
    device.start(1)
    fax = OutboundFax("J1", REMOTE, (str(document(tmp_path / "d.tif", 2)),), term=1, page_count=2)
    out = device.send(fax, lambda i: pytest.fail("no page may be confirmed"))
    assert not out.ok and "may no longer act" in out.reason
    assert remote.pages_received() == []
    events = [json.loads(line)["event"] for line in (tmp_path / "dev.jsonl").read_text().splitlines()]
    assert "connected" not in events and "page" not in events and "hangup" in events
    device.close()
    remote.close()


def test_channel_failure_clears_its_call_and_is_reported(exchange: ExchangeServer, spool: DirectorySpool) -> None:
    device = make_device(exchange, spans=[(SpanType.BRI, "bri-a")])
    device.open(spool)
    device.start(1)
    exchange.exchange.set_route(DID, ["bri-a"])
    caller = RemoteFaxMachine(exchange.addresses.endpoints, "caller", label="far", confirm_delay=0)
    # an incoming call that sends one page and then waits: the channel fails mid-call
    leg = caller.endpoint.dial(DID)
    leg.wait_for("connected", 5)
    [call] = device.card.calls()
    device.fail_channel(call.channel)
    with pytest.raises(Exception, match="cause 41"):
        leg.wait_for("confirmed", 5)
    assert device.monitor() is DeviceHealth.RUNNING  # one channel of two left
    device.fail_channel(1 - call.channel)
    assert device.monitor() is DeviceHealth.FAILED
    device.card.restore_channel(0)
    device.card.restore_channel(1)
    assert device.monitor() is DeviceHealth.RUNNING
    # losing the exchange (the card's hardware) is a failure too
    exchange.stop()
    wait(lambda: device.monitor() is DeviceHealth.FAILED, what="the card to notice")
    caller.close()


def test_stop_clears_a_reception_and_keeps_its_pages_as_partial(
    exchange: ExchangeServer, spool: DirectorySpool, tmp_path: Path
) -> None:
    device = make_device(exchange)
    device.open(spool)
    device.start(1)
    caller = RemoteFaxMachine(exchange.addresses.endpoints, "caller", label="far")
    pages = split_document(document(tmp_path / "d.tif", 3).read_bytes())
    leg = caller.endpoint.dial(DID)
    leg.wait_for("connected", 5)
    leg.send_page(0, pages[0], False)
    leg.wait_for("confirmed", 5, index=0)
    t0 = time.monotonic()
    device.stop()
    assert time.monotonic() - t0 < 5
    with pytest.raises(Exception, match="cause"):
        leg.wait_for("confirmed", 5)
    wait(lambda: [f.state for f in spool.received()] == ["partial"], what="the partial fax")
    [fax] = spool.received()
    assert fax.state == "partial" and fax.pages == 1
    assert fax.page_files[0].read_bytes() == pages[0]
    device.close()
    caller.close()


def test_four_e1_spans_carry_120_calls_at_once(exchange: ExchangeServer, spool: DirectorySpool, tmp_path: Path) -> None:
    ex = exchange.exchange
    for i in range(4):
        ex.add_line(f"e1-{i}", "e1")
    ex.set_route(DID, [f"e1-{i}" for i in range(4)])
    card = IsdnCard("card0", [(SpanType.E1, f"e1-{i}") for i in range(4)], exchange.addresses.endpoints, label="n1")
    device = IsdnDevice("isdn0", "n1", card, page_seconds=1.0)
    assert device.channels == 120
    device.open(spool)
    device.start(1)
    remote = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="far")
    caller = RemoteFaxMachine(exchange.addresses.endpoints, "caller", label="far2", confirm_delay=0)
    doc = document(tmp_path / "d.tif", 2)
    pages = split_document(doc.read_bytes())
    opts = SubmitOptions(max_attempts=3, retry_delay_s=0.0)
    jobs = [spool.submit(doc, REMOTE, opts) for _ in range(60)]
    dispatcher = Dispatcher(spool, [device], "n1", device._clock, poll_s=0.05)
    import threading

    def slow_send() -> None:
        # inbound: each sender holds its channel for ~2 s, like a real page transfer
        leg = caller.endpoint.dial(DID)
        leg.wait_for("connected", 20)
        for i, page in enumerate(pages):
            time.sleep(1.0)
            leg.send_page(i, page, i == len(pages) - 1)
            leg.wait_for("confirmed", 30, index=i)
        leg.hangup()

    senders = [threading.Thread(target=slow_send) for _ in range(60)]
    for t in senders:
        t.start()
    dispatcher.start(1)
    for t in senders:
        t.join(60)
    wait(lambda: all(spool.get(j).state == "sent" for j in jobs), limit=60, what="every outbound job")
    dispatcher.stop()
    endpoints = {e["id"]: e for e in ex.snapshot()["endpoints"] if e["label"] == "n1"}
    peak = sum(e["peak_calls"] for e in endpoints.values())
    assert peak >= 100, endpoints  # (nearly) every channel busy at once, inbound and outbound together
    wait(lambda: sum(f.state == "received" for f in spool.received()) == 60, what="every inbound fax")
    received = spool.received()
    assert len(received) == 60 and all(f.state == "received" and f.pages == 2 for f in received)
    assert len(remote.pages_received()) == 120
    device.close()
    remote.close()
    caller.close()
