"""The failover state machine in simulated time (fake clock, memory store, real FailoverNode code).

Each test names the invariant of DESIGN.md §2 it guards. Time here is simulated: a 15 s timeout costs
milliseconds, and every bound is exact.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from zetafailover.core.timing import PROFILES, Timing
from zetafailover.errors import TimingError, TimingMismatchError
from zetafailover.interfaces import NodeState, SwitchoverRequest
from zetafailover.testing.simulation import SimCluster

STD = PROFILES["standard"]  # heartbeat 2 s, timeout 15 s, store_timeout 3 s, margin 3 s


def started(priorities: dict[str, int], timing: Timing = STD, **kw: object) -> SimCluster:
    sim = SimCluster(timing, priorities, **kw)  # type: ignore[arg-type]
    sim.start()
    sim.run_until(lambda: len(sim.active()) == 1, limit=10 * timing.timeout)
    sim.run_for(3 * timing.heartbeat_interval)  # let every member be seen alive
    return sim


def assert_never_two_acting(sim: SimCluster, seconds: float) -> None:
    """Run in small steps and check at every step that at most one node may act (invariants 2-5)."""
    end = sim.clock.monotonic() + seconds
    while sim.clock.monotonic() < end:
        sim.run_for(sim.step)
        assert len(sim.acting()) <= 1, f"two nodes acting at once: {sim.describe()}"


# ------------------------------------------------------------------------------------- takeover timing


def test_takeover_after_timeout_and_not_before() -> None:
    """Invariant 1: the standby declares the active dead only after `timeout` without a change."""
    sim = started({"fax1": 200, "fax2": 100})
    assert sim.active() == ["fax1"]
    sim.kill("fax1")
    killed_at = sim.clock.monotonic()
    took = sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    term_won = [e for e in sim.events("fax2", "term_won")][-1]
    assert float(term_won["mono"]) - killed_at >= STD.timeout - STD.heartbeat_interval  # not before
    assert took <= STD.timeout + STD.heartbeat_interval + 0.1  # our own overhead stays within one beat
    assert sim.nodes["fax2"].node.term == 2


def test_no_takeover_while_heartbeat_changes() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    assert_never_two_acting(sim, 10 * STD.timeout)
    assert sim.active() == ["fax1"]
    assert sim.nodes["fax1"].node.term == 1
    assert not sim.events("fax2", "term_won")


def test_takeover_is_term_plus_one_and_fences_first() -> None:
    """Invariants 2 and 3: term won by CAS before anything; the old active is fenced before devices start."""
    sim = started({"fax1": 200, "fax2": 100})
    sim.kill("fax1")
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    kinds = [
        e["kind"]
        for e in sim.events("fax2")
        if e["kind"] in ("term_won", "fence", "devices_online", "lines_switched", "spool_recovered")
    ]
    assert kinds == ["term_won", "fence", "devices_online", "lines_switched", "spool_recovered"]
    assert sim.terminator.calls and sim.terminator.calls[-1].node == "fax1"
    assert sim.terminator.calls[-1].processes == (sim.nodes["fax1"].process,)


def test_unconfirmed_fence_waits_for_self_fence_deadline() -> None:
    """Invariant 3: without a confirmed fence, devices wait until the old active's self-fence deadline."""
    timing = replace(STD, self_fence_grace=4.0)
    sim = started({"fax1": 200, "fax2": 100}, timing=timing, confirming_terminator=False)
    sim.kill("fax1")
    killed = sim.clock.monotonic()
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    fence = sim.events("fax2", "fence")[-1]
    online = sim.events("fax2", "devices_online")[-1]
    assert fence["confirmed"] is False
    # fax1's last renew happened before the kill, so fax2 saw the last change at or before `killed` and the
    # devices must not come on line before that + timeout + grace (the old active's self-fence deadline).
    assert float(online["mono"]) >= killed - STD.heartbeat_interval + timing.timeout + timing.self_fence_grace
    won = sim.events("fax2", "term_won")[-1]
    assert float(online["mono"]) - float(won["mono"]) >= timing.self_fence_grace - 0.05


# ---------------------------------------------------------------------------------------- self-fencing


def test_active_self_fences_when_it_cannot_renew() -> None:
    """Invariant 4: an active that cannot renew goes off line by timeout − margin, before anyone takes over."""
    sim = started({"fax1": 200, "fax2": 100})
    fax1 = sim.nodes["fax1"]
    fax1.store.partition()  # the active loses the share; the standby still sees it
    cut = sim.clock.monotonic()
    sim.run_until(lambda: fax1.node.state == NodeState.PASSIVE, limit=60)
    fenced_at = float(sim.events("fax1", "self_fenced")[-1]["mono"])
    assert fenced_at - cut <= STD.self_fence_after + sim.step + 1e-6
    assert all(d.monitor() != "running" for d in fax1.devices)
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    won_at = float(sim.events("fax2", "term_won")[-1]["mono"])
    assert fenced_at < won_at, "the old active must be off line before the standby wins the term"


def test_active_stands_down_on_higher_term() -> None:
    """Invariant 4: a paused active resumed after a takeover sees the higher term and stands down at once."""
    sim = started({"fax1": 200, "fax2": 100}, confirming_terminator=False)
    sim.pause("fax1")
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    sim.run_for(STD.timeout)  # paused for well over 2 × timeout in all
    sim.resume("fax1")
    sim.run_for(STD.heartbeat_interval)
    assert sim.nodes["fax1"].node.state == NodeState.PASSIVE
    assert sim.active() == ["fax2"]
    # After resuming, fax1 never again acted under its old term.
    resumed = [e for e in sim.events("fax1") if e["kind"] in ("devices_online", "term_won") and e["term"] == 1]
    assert all(float(e["mono"]) < float(sim.events("fax2", "term_won")[-1]["mono"]) for e in resumed)


def test_active_stands_down_when_renew_is_refused() -> None:
    """Invariant 4: a running active whose renew is refused (a higher term exists) stands down at once."""
    sim = started({"fax1": 200, "fax2": 100})
    store = sim.store_of("fax2")
    current = store.read().record
    assert current is not None
    usurper = replace(current, holder="fax9", term=current.term + 1, seq=0, processes=())
    store.acquire(current.term, usurper)  # someone else won the next term
    sim.run_for(STD.heartbeat_interval + sim.step)
    fax1 = sim.nodes["fax1"].node
    assert fax1.state == NodeState.PASSIVE
    assert "a higher term exists" in str(sim.events("fax1", "stood_down")[-1]["reason"])
    assert not fax1.may_act(current.term)


def test_slow_store_never_keeps_active_past_its_deadline() -> None:
    """Each store call just under store_timeout: the active must still be off line by timeout − margin.

    (A delay advances the one simulated clock for every node, so only the slow node's deadline is checked here.)
    """
    timing = Timing(heartbeat_interval=1.0, timeout=10.0, store_timeout=3.0, margin=1.0, fence_timeout=5.0)
    sim = started({"fax1": 200, "fax2": 100}, timing=timing, confirming_terminator=False)
    fax1 = sim.nodes["fax1"]
    fax1.store.fail("renew")  # the active can no longer renew...
    fax1.store.set_delay("*", 2.9)  # ...and every call it makes is slow
    sim.run_for(3 * timing.timeout)
    fenced = float(sim.events("fax1", "self_fenced")[0]["mono"])
    last_renew = fax1.node._last_renew_at  # the start of the last renew that succeeded
    # A simulated slow call cannot be cut short, so the node notices its deadline when that call returns; for
    # real, BoundedStore cuts the call at the deadline (tests/test_bounded_store.py).
    assert fenced <= last_renew + timing.self_fence_after + 2.9 + sim.step, "off line by timeout − margin"
    assert not fax1.node.may_act(1)


def test_both_nodes_lose_the_store() -> None:
    """Share offline for both: the active self-fences, nobody takes over; when it returns, exactly one is active."""
    sim = started({"fax1": 200, "fax2": 100})
    for sim_node in sim.nodes.values():
        sim_node.store.partition()
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert sim.acting() == []
    assert not sim.events("fax2", "term_won")
    for sim_node in sim.nodes.values():
        sim_node.store.heal()
    sim.run_until(lambda: len(sim.active()) == 1, limit=120)
    assert_never_two_acting(sim, 3 * STD.timeout)


def test_pause_of_active_never_gives_two_acting_nodes() -> None:
    """Invariants 4 and 5 over time: at no simulated instant may two nodes act."""
    sim = started({"fax1": 200, "fax2": 100}, confirming_terminator=False)
    sim.pause("fax1")
    assert_never_two_acting(sim, 2 * STD.timeout)
    sim.resume("fax1")
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert sim.active() == ["fax2"]


def test_short_pause_of_active_causes_no_takeover() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    sim.pause("fax1")
    sim.run_for(STD.timeout - STD.heartbeat_interval - STD.margin - 0.5)
    sim.resume("fax1")
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert sim.active() == ["fax1"] and sim.nodes["fax1"].node.term == 1


# --------------------------------------------------------------------------------------- cold start etc.


@pytest.mark.parametrize("order", [("fax1", "fax2"), ("fax2", "fax1")])
def test_cold_start_exactly_one_active(order: tuple[str, str]) -> None:
    sim = SimCluster(STD, {"fax1": 200, "fax2": 100})
    sim.start(*order)
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert sim.active() == ["fax1"], "the higher priority wins a cold start when both start together"
    assert sim.nodes["fax1"].node.term == 1


def test_cold_start_same_priority_still_one() -> None:
    sim = SimCluster(STD, {"a": 100, "b": 100, "c": 100})
    sim.start()
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert len(sim.active()) == 1


def test_priority_order_with_three_nodes() -> None:
    sim = started({"fax1": 300, "fax2": 100, "fax3": 200})
    assert sim.active() == ["fax1"]
    sim.kill("fax1")
    sim.run_until(lambda: len(sim.active()) == 1, limit=60)
    assert sim.active() == ["fax3"], "the highest-priority standby takes over"
    sim.run_for(STD.timeout)
    assert not sim.events("fax2", "term_won"), "lower-ranked standbys wait their rank"
    sim.kill("fax3")
    sim.run_until(lambda: len(sim.active()) == 1, limit=120)
    assert sim.active() == ["fax2"]


def test_lower_rank_takes_over_if_the_better_standby_cannot() -> None:
    sim = started({"fax1": 300, "fax2": 100, "fax3": 200})
    sim.nodes["fax3"].store.fail("acquire")  # fax3 is alive but can never win a term
    sim.kill("fax1")
    sim.run_until(lambda: sim.active() == ["fax2"], limit=120)


def test_no_automatic_failback() -> None:
    """Invariant 10: a recovered primary comes up passive and stays so."""
    sim = started({"fax1": 200, "fax2": 100})
    sim.kill("fax1")
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    sim.restart("fax1")
    assert_never_two_acting(sim, 5 * STD.timeout)
    assert sim.active() == ["fax2"]
    assert sim.nodes["fax1"].node.state == NodeState.PASSIVE


# ------------------------------------------------------------------------------------------- switchover


def request(sim: SimCluster, target: str = "") -> SwitchoverRequest:
    term = sim.nodes[sim.active()[0]].node.term
    req = SwitchoverRequest(id="sw1", from_term=term, target=target, requested_at=sim.clock.wall())
    sim.store_of("fax1").put_switchover(req)
    return req


def test_switchover_hands_over_without_waiting_for_timeout() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    request(sim, "fax2")
    took = sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    assert took < STD.timeout / 2, "a planned switchover does not wait for the heartbeat timeout"
    assert sim.nodes["fax2"].node.term == 2
    assert sim.events("fax2", "fence")[-1]["method"] == "released"
    sim.run_for(STD.heartbeat_interval)
    final = sim.store_of("fax1").read_switchover()
    assert final is not None and final.status == "done"
    assert not sim.terminator.calls, "a clean handover kills nobody"


def test_switchover_refused_without_healthy_standby() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    sim.kill("fax2")
    sim.run_for(STD.timeout + STD.heartbeat_interval)  # fax2's member record goes stale
    request(sim)
    sim.run_for(2 * STD.heartbeat_interval)
    final = sim.store_of("fax1").read_switchover()
    assert final is not None and final.status == "refused"
    assert "no healthy standby" in final.reason
    assert sim.active() == ["fax1"] and sim.nodes["fax1"].node.term == 1


def test_switchover_refused_for_unknown_target() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    request(sim, "fax9")
    sim.run_for(2 * STD.heartbeat_interval)
    final = sim.store_of("fax1").read_switchover()
    assert final is not None and final.status == "refused" and "fax9" in final.reason


# ------------------------------------------------------------------------------------------ hung server


class HungWork:
    """A workload with pending work whose activity never moves: a hung fax server."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.activity = 7
        self.pending = 3
        self.started: list[int] = []

    def recover(self, term: int) -> list[str]:
        return []

    def start(self, term: int) -> None:
        self.started.append(term)

    def begin_drain(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_hung_server_detected_by_activity_check() -> None:
    timing = replace(STD, activity_timeout=30.0)
    sim = SimCluster(timing, {"fax1": 200, "fax2": 100}, work={"fax1": HungWork()})
    sim.start()
    sim.run_until(lambda: sim.active() == ["fax1"], limit=60)
    took = sim.run_until(lambda: sim.active() == ["fax2"], limit=120)
    assert took >= timing.activity_timeout - timing.heartbeat_interval
    assert "hung" in str(sim.events("fax2", "term_won")[-1]["reason"])
    assert sim.nodes["fax1"].alive is False, "the hung active was terminated (fenced)"


def test_activity_check_off_means_no_hung_takeover() -> None:
    sim = SimCluster(STD, {"fax1": 200, "fax2": 100}, work={"fax1": HungWork()})
    sim.start()
    sim.run_until(lambda: sim.active() == ["fax1"], limit=60)
    sim.run_for(5 * STD.timeout)
    assert sim.active() == ["fax1"]


# ---------------------------------------------------------------------------------------- monitor overrun


def test_standby_overrun_observes_full_timeout_again() -> None:
    """A standby paused for 2 × timeout must not declare a healthy active dead on resuming."""
    sim = started({"fax1": 200, "fax2": 100})
    sim.pause("fax2")
    sim.run_for(2 * STD.timeout)
    sim.resume("fax2")
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert sim.active() == ["fax1"] and not sim.events("fax2", "term_won")
    assert sim.events("fax2", "loop_overran"), "the overrun is detected and reported"


def test_standby_overrun_then_real_death_waits_a_full_timeout() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    sim.pause("fax2")
    sim.kill("fax1")
    sim.run_for(2 * STD.timeout)
    sim.resume("fax2")
    resumed = sim.clock.monotonic()
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    won = float(sim.events("fax2", "term_won")[-1]["mono"])
    assert won - resumed >= STD.timeout - 1e-6


# ------------------------------------------------------------------------------------------- timing rule


def test_timing_rule_is_checked() -> None:
    bad = replace(STD, timeout=8.0)  # 2 + 2×3 + 3 = 11 > 8
    with pytest.raises(TimingError, match="heartbeat_interval"):
        bad.check("fax.toml")
    with pytest.raises(TimingError):
        SimCluster(bad, {"fax1": 1})


def test_timing_hash_mismatch_refused_while_joining() -> None:
    """Invariant 7: a node whose timing differs from a live peer's refuses to run, naming the difference."""
    sim = started({"fax1": 200, "fax2": 100})
    other = replace(STD, timeout=20.0)
    sim.restart("fax2", timing=other)
    with pytest.raises(TimingMismatchError, match=r"timeout: theirs 15\.0, ours 20\.0"):
        sim.run_for(3 * STD.heartbeat_interval)
    assert sim.active() == ["fax1"], "the running cluster is undisturbed"


def test_timing_of_a_dead_cluster_can_be_changed() -> None:
    """Records left by nodes that are gone do not block a new timing: only live peers count."""
    sim = started({"fax1": 200, "fax2": 100})
    sim.kill("fax1")
    sim.kill("fax2")
    sim.run_for(STD.timeout)
    new = replace(STD, timeout=20.0)
    sim.restart("fax1", timing=new)
    sim.restart("fax2", timing=new)
    sim.run_until(lambda: len(sim.active()) == 1, limit=120)
    assert_never_two_acting(sim, 2 * new.timeout)


# --------------------------------------------------------------------------------------- bad records


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # empty
        b'{"format": "zetafailover-heartbeat/1", "clus',  # truncated
        b"\x00\xff garbage",
        b'{"format": "something-else/9"}',
    ],
    ids=["empty", "truncated", "garbage", "foreign-format"],
)
def test_corrupt_record_is_no_new_evidence(raw: bytes) -> None:
    """Invariant 8: a corrupt record is neither life nor death; the standby keeps its own deadline."""
    sim = started({"fax1": 200, "fax2": 100})
    sim.kill("fax1")
    sim.backend.set_raw("heartbeat", raw)
    killed = sim.clock.monotonic()
    # never "alive": the dead holder is still declared dead after the timeout
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    assert float(sim.events("fax2", "term_won")[-1]["mono"]) - killed >= STD.timeout - STD.heartbeat_interval
    problems = [e for e in sim.events("fax2", "store_problem")]
    assert problems, "the bad record is reported"


def test_corrupt_record_never_counts_as_death_while_active_renews() -> None:
    """A single torn read while the active renews does not cause a takeover."""
    sim = started({"fax1": 200, "fax2": 100})
    sim.nodes["fax2"].store.corrupt_reads(True)
    sim.run_for(STD.timeout / 2)
    sim.nodes["fax2"].store.corrupt_reads(False)
    assert_never_two_acting(sim, 2 * STD.timeout)
    assert sim.active() == ["fax1"]


def test_foreign_cluster_record_is_ignored() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    from zetafailover.stores._codec import encode_heartbeat

    current = sim.store_of("fax2").read().record
    assert current is not None
    foreign = replace(current, cluster="other", holder="intruder", term=99, seq=1)
    sim.backend.set_raw("heartbeat", encode_heartbeat(foreign))
    sim.run_for(STD.heartbeat_interval)
    assert any("other" in str(e["message"]) for e in sim.events("fax2", "store_problem"))


def test_missing_record_after_one_was_seen_is_not_vacancy() -> None:
    sim = started({"fax1": 200, "fax2": 100})
    sim.kill("fax1")
    sim.backend.set_raw("heartbeat", None)
    sim.run_for(STD.heartbeat_interval)
    assert sim.active() == []
    sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    assert sim.nodes["fax2"].node.term == 2, "the term continues from the high-water mark, it never restarts at 1"


def test_standby_partitioned_from_store_never_takes_over() -> None:
    """A standby that cannot read the store treats that as no evidence, never as the active being dead."""
    sim = started({"fax1": 200, "fax2": 100})
    sim.nodes["fax2"].store.partition()
    sim.run_for(5 * STD.timeout)
    assert sim.active() == ["fax1"] and not sim.events("fax2", "term_won")
    sim.nodes["fax2"].store.heal()
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert sim.active() == ["fax1"]


# ---------------------------------------------------------------------------------------- wall clock


@pytest.mark.parametrize("jump", [3600.0, -3600.0, 86400.0, -86400.0])
@pytest.mark.parametrize("who", ["fax1", "fax2"])
def test_wall_clock_jumps_change_nothing(jump: float, who: str) -> None:
    sim = started({"fax1": 200, "fax2": 100})
    sim.nodes[who].clock.wall_offset += jump
    assert_never_two_acting(sim, 3 * STD.timeout)
    assert sim.active() == ["fax1"] and sim.nodes["fax1"].node.term == 1
    # and a real failure is still detected within the same bound
    sim.kill("fax1")
    took = sim.run_until(lambda: sim.active() == ["fax2"], limit=60)
    assert took <= STD.timeout + STD.heartbeat_interval + 0.1
