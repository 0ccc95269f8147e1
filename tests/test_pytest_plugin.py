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
import pytest

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
"""


def test_simulated_fixtures_in_a_users_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_sim=SIMULATED)
    result = pytester.runpytest(*plugin_args(), "--strict-markers", "-q")
    result.assert_outcomes(passed=5)


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
