"""Real node processes on the real clock, one shared temporary folder: SIGKILL, SIGSTOP, SIGTERM, CLI.

These confirm on real processes what the simulated-time tests prove exactly. Bounds are generous where the
machine's load could stretch them (2 shared cores), and never looser than the issue's acceptance bounds.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zetafailover.testing.processes import NodeProcesses

pytestmark = pytest.mark.realprocess

# A timing that keeps the test short but tolerates a loaded 2-core machine (rule: 0.25 + 2×0.5 + 0.5 ≤ 2.5).
TIMING = {"heartbeat_interval": 0.25, "timeout": 2.5, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}
H, TIMEOUT, MARGIN = TIMING["heartbeat_interval"], TIMING["timeout"], TIMING["margin"]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[NodeProcesses]:
    p = NodeProcesses(tmp_path, cluster="real", profile="fast", timing=TIMING, terminator="pid")
    yield p
    p.close()


@pytest.fixture
def unfenceable_pair(tmp_path: Path) -> Iterator[NodeProcesses]:
    """A pair whose terminator cannot kill (kind none): takeover must rely on the self-fence deadline."""
    p = NodeProcesses(tmp_path, cluster="real", profile="fast", timing=TIMING, terminator="none")
    yield p
    p.close()


def test_sigkill_of_active_standby_takes_over(pair: NodeProcesses) -> None:
    pair.start("fax1", 200)
    pair.start("fax2", 100)
    first = pair.wait_active()
    other = "fax2" if first.holder == "fax1" else "fax1"
    time.sleep(4 * H)
    killed = pair.signal(first.holder, signal.SIGKILL)
    second = pair.wait_active(TIMEOUT + H + 10, holder=other, above_term=first.term)
    assert second.term == first.term + 1
    active_at = pair.became_active_at(other, second.term)
    assert active_at is not None
    took = active_at - killed
    assert took <= TIMEOUT + H + 1.0, f"takeover took {took:.2f} s"
    fence = [e for e in pair.events(other, "fence")][-1]
    assert fence["confirmed"] is True and fence["method"] == "pid", fence
    online = [e for e in pair.device_log(other) if e["event"] == "start"]
    assert online and online[-1]["term"] == second.term


def test_sigstop_of_active_for_two_timeouts(unfenceable_pair: NodeProcesses) -> None:
    pair = unfenceable_pair
    pair.start("fax1", 200)
    pair.start("fax2", 100)
    first = pair.wait_active()
    assert first.holder == "fax1"
    time.sleep(4 * H)
    stopped = pair.signal("fax1", signal.SIGSTOP)
    second = pair.wait_active(3 * TIMEOUT + 10, holder="fax2")
    time.sleep(max(0.0, stopped + 2 * TIMEOUT - time.monotonic()))
    pair.procs["fax1"].send_signal(signal.SIGCONT)
    resumed_wall = time.time()
    time.sleep(6 * H)
    # The resumed old active stood down and did nothing under its old term.
    after = [e for e in pair.events("fax1") if float(str(e["ts"])) >= resumed_wall - 0.05]
    kinds = [str(e["kind"]) for e in after]
    assert "self_fenced" in kinds or "stood_down" in kinds, kinds
    assert not [e for e in after if e["kind"] in ("term_won", "devices_online", "lines_switched")]
    device_after = [e for e in pair.device_log("fax1") if float(str(e["ts"])) >= resumed_wall - 0.05]
    assert all(e["event"] == "stop" for e in device_after), device_after
    record = pair.store.read().record
    assert record is not None and record.holder == "fax2" and record.term == second.term
    fenced = [e for e in pair.events("fax2", "fence")][-1]
    assert fenced["confirmed"] is False


def test_short_sigstop_causes_no_takeover(pair: NodeProcesses) -> None:
    pair.start("fax1", 200)
    pair.start("fax2", 100)
    first = pair.wait_active()
    assert first.holder == "fax1"
    time.sleep(6 * H)
    pause = TIMEOUT - H - MARGIN - 0.75  # 1.0 s, well inside the budget
    pair.procs["fax1"].send_signal(signal.SIGSTOP)
    time.sleep(pause)
    pair.procs["fax1"].send_signal(signal.SIGCONT)
    time.sleep(2 * TIMEOUT)
    record = pair.store.read().record
    assert record is not None and (record.holder, record.term) == ("fax1", first.term), pair.logs()
    assert not [e for e in pair.events("fax2", "term_won")]


def test_sigterm_hands_over_cleanly_and_no_failback(pair: NodeProcesses) -> None:
    pair.start("fax1", 200)
    pair.start("fax2", 100)
    first = pair.wait_active()
    assert first.holder == "fax1"
    time.sleep(4 * H)
    pair.procs["fax1"].terminate()
    assert pair.procs["fax1"].wait(timeout=20) == 0
    stopped = time.monotonic()
    pair.wait_active(TIMEOUT + 10, holder="fax2")
    assert time.monotonic() - stopped < TIMEOUT, "a clean shutdown releases the term: no need to wait for the timeout"
    # the former primary restarts: it comes up passive and stays so (no automatic failback)
    pair.start("fax1", 200)
    time.sleep(3 * TIMEOUT)
    record = pair.store.read().record
    assert record is not None and record.holder == "fax2"


def test_cli_status_and_switchover(pair: NodeProcesses) -> None:
    pair.start("fax1", 200)
    pair.start("fax2", 100)
    first = pair.wait_active()
    time.sleep(6 * H)
    status = pair.cli("status", "--json", config="fax1")
    assert status.returncode == 0, status.stderr
    view = json.loads(status.stdout)
    assert view["holder"] == first.holder and view["holder_alive"] is True
    assert {n["name"] for n in view["nodes"]} == {"fax1", "fax2"}
    roles = {n["name"]: n["role"] for n in view["nodes"]}
    assert roles[first.holder] == "active"
    text = pair.cli("status", config="fax1")
    assert text.returncode == 0 and "fax1" in text.stdout and "HEARTBEAT" in text.stdout

    other = "fax2" if first.holder == "fax1" else "fax1"
    done = pair.cli("switchover", "--to", other, config="fax1")
    assert done.returncode == 0, done.stderr + pair.logs()
    record = pair.store.read().record
    assert record is not None and record.holder == other and record.term == first.term + 1

    # with the only standby gone, a switchover is refused with a clear reason and exit code 3
    pair.signal(first.holder, signal.SIGKILL)
    time.sleep(TIMEOUT + 1)
    refused = pair.cli("switchover", config=other)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "no healthy standby" in refused.stderr and "Traceback" not in refused.stderr


def test_node_with_other_timing_refuses_to_run(pair: NodeProcesses) -> None:
    """Invariant 7 across processes: a node configured with other timing exits with code 3 and says why."""
    pair.start("fax1", 200)
    pair.start("fax2", 100)
    pair.wait_active()
    time.sleep(4 * H)
    odd = NodeProcesses(pair.folder, cluster="real", profile="fast", timing={**TIMING, "timeout": 3.0})
    try:
        proc = odd.start("fax3", 50)
        assert proc.wait(timeout=30) == 3
        log = (pair.folder / "fax3.log").read_text()
        assert "runs different timing" in log and "timeout: theirs 2.5, ours 3.0" in log, log
        assert "Traceback" not in log
    finally:
        odd.close()
    record = pair.record()
    assert record is not None and record.term == 1, "the running pair was not disturbed"
