"""The pytest plugin, as a user sees it: test files that use its fixtures, run by pytest (``pytester``)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]


def plugin_args() -> list[str]:
    """``-p`` the plugin unless the installed ``pytest11`` entry point already loads it (loading it twice fails)."""
    installed = any(ep.name == "zetafailover" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "zetafailover.testing.pytest_plugin"]


SIMULATED = """
import os
import select
import threading
import time

import pytest

from zetafailover.devices.isdn import split_document
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.render import text_document
from zetafailover.testing.exchange import RemoteFaxMachine


def test_fake_clock(fake_clock):
    t0 = fake_clock.monotonic()
    fake_clock.sleep(15)
    fake_clock.step_wall(-3600)
    assert fake_clock.monotonic() - t0 == 15


def test_takeover_in_simulated_time(sim_cluster, audits):
    sim = sim_cluster("standard", {"fax1": 200, "fax2": 100})
    sim.run_until(lambda: sim.active() == ["fax1"], limit=60)
    sim.run_for(6)
    sim.kill("fax1")
    took = sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    assert took <= 15 + 2
    events = {name: sim.events(name) for name in sim.nodes}
    assert audits.audit_takeover_time(events, [("fax1", sim.clock.monotonic() - took)], bound=17) == []
    assert audits.audit_takeover_time(events, [("fax1", sim.clock.monotonic() - took)], bound=1)


def test_sim_cluster_refuses_an_unknown_profile(sim_cluster):
    with pytest.raises(ValueError, match="unknown profile"):
        sim_cluster("warp", {"fax1": 1})


def test_exchange_carries_a_fax(exchange):
    receiver = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="receiver")
    sender = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="sender")
    try:
        result = sender.send("5550199", [b"page one", b"page two"], answer_timeout=10, page_timeout=10)
        assert result.ok and result.answered_by == "receiver"
        assert len(exchange.exchange.pages()) == 2
    finally:
        sender.close()
        receiver.close()


def test_the_marker_is_registered(pytestconfig):
    assert any(m.startswith("zetafailover_realprocess:") for m in pytestconfig.getini("markers"))


def test_a_simulated_modem_speaks_at_on_its_pty_and_rings_on_its_line(sim_modem, remote_fax):
    modem = sim_modem("bench", page_seconds=0.1)
    assert modem.number == "5550100" and modem.line == "fax-line"
    fd = os.open(modem.path, os.O_RDWR | os.O_NOCTTY)
    try:
        def ask(command):
            os.write(fd, command + b"\\r")
            seen, deadline = b"", time.monotonic() + 5
            while b"OK" not in seen and b"ERROR" not in seen and b"RING" not in seen:
                assert time.monotonic() < deadline, seen
                if select.select([fd], [], [], 0.1)[0]:
                    seen += os.read(fd, 1024)
            return seen

        assert b"OK" in ask(b"ATE0")
        assert b"2.0" in ask(b"AT+FCLASS=?")
        assert b"ERROR" in ask(b"AT+FCLASS=1")          # this modem offers classes 2 and 2.0 only
        caller = threading.Thread(target=remote_fax.send, args=(modem.number, [b"x"]), kwargs={"answer_timeout": 2})
        caller.start()
        seen, deadline = b"", time.monotonic() + 5
        while b"RING" not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([fd], [], [], 0.1)[0]:
                seen += os.read(fd, 1024)
        caller.join(10)
        assert remote_fax.sent[-1].connected is False    # nobody answered: a modem answers only on ATA / S0
    finally:
        os.close(fd)
    with pytest.raises(ValueError, match="no line 'nowhere'"):
        sim_modem("lost", "nowhere")
    with pytest.raises(ValueError, match="needs an analog line"):
        sim_modem("trunked", "remote")


def test_an_isdn_card_on_the_exchange_as_a_fax_device(isdn_card, remote_fax, tmp_path):
    card = isdn_card("fax1", kind="bri", number="5550142")
    assert card.lines == ("fax1-span1",) and card.channels == 2
    assert 'driver = "isdn"' in card.device_section(log="fax1-device.jsonl")
    spool = DirectorySpool(tmp_path / "spool", node="fax1")
    spool.advance_term(1)
    device = card.device("fax1")
    device.open(spool)
    device.start(1)
    pages = split_document(text_document(None, [["to the card"], ["page 2"]]))
    result = remote_fax.send("5550142", pages, answer_timeout=10)
    assert result.ok and result.answered_by == "fax1", result
    deadline = time.monotonic() + 10
    while not spool.received("received"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [fax] = spool.received()
    assert [p.read_bytes() for p in fax.page_files] == pages
    with pytest.raises(ValueError, match="exists already"):
        isdn_card("fax1")
    with pytest.raises(ValueError, match="not one of bri, t1, e1"):
        isdn_card("fax9", kind="j1")
"""


def test_simulated_fixtures_in_a_users_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_sim=SIMULATED)
    result = pytester.runpytest(*plugin_args(), "--strict-markers", "-q")
    result.assert_outcomes(passed=7)


def test_a_failing_user_test_fails(pytester: pytest.Pytester) -> None:
    """The fixtures do not hide failures: an audit that finds a violation makes the user's test fail."""
    pytester.makepyfile(
        test_user_fail="""
def test_too_strict(sim_cluster, audits):
    sim = sim_cluster("standard", {"fax1": 200, "fax2": 100})
    sim.run_until(lambda: sim.active() == ["fax1"], limit=60)
    sim.kill("fax1")
    start = sim.clock.monotonic()
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    events = {name: sim.events(name) for name in sim.nodes}
    assert audits.audit_takeover_time(events, [("fax1", start)], bound=0.5) == []
"""
    )
    result = pytester.runpytest(*plugin_args(), "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*took over*after fax1 was killed*"])


REAL = """
import time

import pytest

from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document


@pytest.mark.zetafailover_realprocess
def test_no_fax_lost_when_the_active_dies_mid_fax(node_pair, nemesis, audits, tmp_path):
    first = node_pair.record()
    other = "fax2" if first.holder == "fax1" else "fax1"
    spool = DirectorySpool(tmp_path / "shared" / "spool", node="my-product")
    doc = tmp_path / "invoice.tif"
    text_document(doc, [["invoice 1/3"], ["invoice 2/3"], ["invoice 3/3"]])
    jobs = [spool.submit(doc, "5550100", SubmitOptions(retry_delay_s=0.3)) for _ in range(3)]

    deadline = time.monotonic() + 30
    while not any(e["event"] == "page" for e in node_pair.device_log(first.holder)):
        assert time.monotonic() < deadline, node_pair.logs()
        time.sleep(0.05)
    nemesis.kill(first.holder)
    node_pair.wait_active(30, holder=other, above_term=first.term)
    deadline = time.monotonic() + 60
    while not all(spool.get(j).terminal for j in jobs):
        assert time.monotonic() < deadline, node_pair.logs()
        time.sleep(0.1)

    events = audits.collect_events(node_pair)
    devices = audits.collect_device_logs(node_pair)
    deaths = audits.deaths_from(events, nemesis.kills())
    assert audits.audit_single_actor(events, devices) == []
    assert audits.audit_jobs_terminal(spool, accepted=jobs) == []
    assert audits.audit_duplicates(devices, planned=False, deaths=deaths) == []
    assert audits.audit_takeover_time(events, nemesis.kills(), bound=10.0) == []
"""


@pytest.mark.realprocess
def test_real_pair_fixtures_in_a_users_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_real=REAL)
    result = pytester.runpytest(*plugin_args(), "--strict-markers", "-q", "-m", "zetafailover_realprocess")
    result.assert_outcomes(passed=1)


MODEM_PAIR = """
import pytest

from zetafailover.devices.isdn import split_document
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.testing.pytest_plugin import REMOTE_NUMBER, toml_section


@pytest.mark.zetafailover_realprocess
def test_a_fax_arrives_once_when_the_active_dies(modem_pair, remote_fax, tmp_path):
    pair = modem_pair                  # fax1 and fax2, a simulated modem each on one Y-split line
    letter = tmp_path / "letter.tif"
    text_document(letter, [["letter, page 1"], ["page 2"], ["page 3"]])
    job = pair.spool.submit(letter, REMOTE_NUMBER, SubmitOptions(retry_delay_s=0.5))

    first = pair.nodes.record()
    pair.wait(lambda: pair.device_events(first.holder, "page"), 40, "the active to send a page")
    pair.nemesis.kill(first.holder)    # SIGKILL in the middle of the fax
    second = pair.nodes.wait_active(40, above_term=first.term)
    assert second.holder != first.holder
    pair.wait(lambda: pair.spool.get(job).state == "sent", 60, "the fax to be sent")

    # it arrived once: three pages, the resumed call complete; only the page that was in flight when the
    # active died may have been sent twice, and the duplicates audit checks that it was that page
    calls = [fax for fax in remote_fax.received if fax.pages]
    assert calls[-1].complete and 3 <= sum(len(fax.pages) for fax in calls) <= 4
    assert pair.spool.get(job).pages_confirmed == 3

    # the survivor answers the shared line now, and stores what it confirmed
    reply = remote_fax.send(pair.number, split_document(text_document(None, [["thanks"]])))
    assert reply.ok and reply.answered_by == second.holder
    pair.wait(lambda: pair.spool.received("received"), 20, "the reply in the spool")
    assert pair.audit(accepted=[job], callers=[remote_fax]) == {}


@pytest.mark.zetafailover_realprocess
def test_the_number_follows_the_new_active(fax_pair, isdn_card, exchange, remote_fax):
    cards = {name: isdn_card(name, kind="e1", number="5550100") for name in ("fax1", "fax2")}
    url = f"{exchange.addresses.admin}/routes/5550100"
    line = toml_section(
        "line", strategy="pbx", transport="webhook", url=url, method="PUT", verify_url=url,
        body={"lines": ["{target}"], "term": "{term}", "set_by": "{node}"},
        targets={name: card.lines[0] for name, card in cards.items()}, state="shared/lines.json",
    )
    pair = fax_pair({n: c.device_section(log=f"{n}-device.jsonl") for n, c in cards.items()},
                    line=line, number="5550100", hardware=cards)
    first = pair.nodes.record()
    before = remote_fax.send(pair.number, split_document(text_document(None, [["before"], ["the kill"]])))
    assert before.ok and before.answered_by == first.holder

    pair.nemesis.kill(first.holder)
    second = pair.nodes.wait_active(40, above_term=first.term)
    assert exchange.exchange.route_lines("5550100") == cards[second.holder].lines
    after = remote_fax.send(pair.number, split_document(text_document(None, [["after"]])))
    assert after.ok and after.answered_by == second.holder
    # both faxes are stored; the first may be "partial": fax1 died before it closed the reception, whose
    # pages were on disk and confirmed, and the takeover closed it
    pair.wait(lambda: len(pair.spool.received()) == 2, 20, "both faxes in the spool")
    pair.wait(lambda: not pair.spool.received("receiving"), 20, "the receptions closed")
    assert pair.audit(callers=[remote_fax]) == {}
"""


@pytest.mark.realprocess
def test_the_pair_examples_in_a_users_test_file(pytester: pytest.Pytester) -> None:
    """The examples of docs/testing.md: a failover pair with a modem each on one Y-split line, a fax, a SIGKILL;
    and a PRI pair built with ``fax_pair`` and ``isdn_card`` whose fax number follows the new active."""
    pytester.makepyfile(test_user_pairs=MODEM_PAIR)
    result = pytester.runpytest(*plugin_args(), "--strict-markers", "-q", "-m", "zetafailover_realprocess")
    result.assert_outcomes(passed=2)
