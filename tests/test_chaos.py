"""The randomized chaos run: its plans are a pure function of the seed, a failed audit is reported with the
command that replays it, and a short seeded set on real node processes passes every audit (the CI set)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from zetafailover.testing import chaos
from zetafailover.testing.chaos import FAULT_KINDS, INVARIANTS, Options, make_plan

CI_SEED = 156
"""Two runs of three faults in the exchange world (ISDN cards behind the simulated exchange, faxes both ways):
wall -1 h on the active, a short standby pause, a long pause of the active; a switchover racing a kill, a kill
with a restart, an unreadable store for the active."""


def node_processes_under(folder: Path) -> list[str]:
    """Command lines of live processes that mention ``folder`` (a chaos run's node processes do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(folder) in cmdline and state != "Z":
            found.append(cmdline)
    return found


# ---------------------------------------------------------------------------------------------- plans


def test_the_same_seed_and_run_give_the_same_plan() -> None:
    assert make_plan(1234, 5) == make_plan(1234, 5)
    assert make_plan(1234, 5, faults=6, nodes=3) == make_plan(1234, 5, faults=6, nodes=3)
    # run K of seed S is random.Random(S + K): replaying one run alone gives exactly its plan
    assert make_plan(1234, 5).faults == make_plan(1239, 0).faults
    plans = {make_plan(1234, run).faults for run in range(10)}
    assert len(plans) == 10, "ten runs of one seed should not repeat a plan"
    drawn = {step.kind for run in range(40) for step in make_plan(7, run).faults}
    assert drawn == set(FAULT_KINDS), "every fault kind is drawn sooner or later"


def test_plans_honour_the_options_and_refuse_bad_ones() -> None:
    plan = make_plan(3, 0, faults=5, nodes=3, kinds=["kill_active", "store_one"])
    assert plan.nodes == ("fax1", "fax2", "fax3") and len(plan.faults) == 5
    assert {s.kind for s in plan.faults} <= {"kill_active", "store_one"}
    for step in plan.faults:
        if step.kind == "store_one":
            assert step.mode in chaos.STORE_FAULT_MODES and step.role in ("active", "standby")
            assert (step.value > 0) == (step.mode == "slow")
    timeout = chaos.CHAOS_TIMING["timeout"]
    for run in range(30):
        for step in make_plan(11, run).faults:
            if step.kind.endswith("_long"):
                assert step.seconds > timeout
            elif step.kind.endswith("_short"):
                assert 0 < step.seconds < timeout - chaos.CHAOS_TIMING["margin"]
    with pytest.raises(ValueError, match="melting"):
        make_plan(1, 0, kinds=["melting"])
    with pytest.raises(ValueError, match="at least 1"):
        make_plan(1, 0, faults=0)
    with pytest.raises(ValueError, match="2 or 3"):
        make_plan(1, 0, nodes=4)


def test_replay_command_names_the_run_and_every_non_default_option() -> None:
    assert chaos.replay_command(9, 4) == "nox -s chaos -- --runs 1 --seed 9 --start-run 4"
    options = Options(faults=2, nodes=3, only=("kill_active", "wall_step"), takeover_bound=4.5)
    assert chaos.replay_command(9, 4, options, nox=False) == (
        "python -m zetafailover.testing.chaos --runs 1 --seed 9 --start-run 4 --faults 2 --nodes 3 "
        "--only kill_active,wall_step --takeover-bound 4.5"
    )
    assert chaos.replay_command(9, 4, Options(inbound_rate=3)).endswith("--start-run 4 --inbound-rate 3")
    # the inbound rate means nothing in the loopback world: not repeated there
    assert chaos.replay_command(9, 4, Options(world="loopback", inbound_rate=3)).endswith("4 --world loopback")
    assert chaos.takeover_bound() == pytest.approx(2.5 + 0.25 + 1.0 + 1.0 + chaos.LOAD_SLACK)


def test_the_table_counts_faults_tried_and_invariants_held() -> None:
    good = chaos.RunResult(make_plan(1, 0), "/x", tried=["kill_active", "kill_active", "switchover"])
    good.calls, good.confirmed, good.pages_confirmed, good.stored, good.partial = 12, 9, 19, 9, 1
    bad = chaos.RunResult(make_plan(1, 1), "/y", tried=["kill_active"], world="loopback")
    bad.violations["duplicates"].append("job j page 1 sent again")
    table = chaos.summary_table([good, bad]).splitlines()
    header = [c.strip() for c in table[0].split("|")]
    assert header == ["fault", "tried", "runs", *INVARIANTS, *chaos.INBOUND_COUNTERS]
    assert header[-4:] == ["calls", "confirmed", "stored", "partial"]
    cells = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]] for line in table[2:]}
    # kill_active: in both runs; the inbound audit only in the exchange-world run; the counters summed
    assert cells["kill_active"] == ["3", "2", "2/2", "2/2", "2/2", "1/2", "1/1", "2/2", "12", "9", "9", "1"]
    assert cells["switchover"] == ["1", "1", *["1/1"] * len(INVARIANTS), "12", "9", "9", "1"]
    assert cells["all runs"][:2] == ["4", "2"] and cells["all runs"][5] == "1/2"
    loopback_only = chaos.summary_table([bad]).splitlines()[-1].split("|")
    assert loopback_only[2 + 1 + INVARIANTS.index("inbound")].strip() == "n/a"
    out = io.StringIO()
    assert chaos.report([good, bad], Options(), out) == 1
    text = out.getvalue()
    assert "inbound: 12 calls placed, 9 confirmed to the caller (19 pages), 9 stored complete, 1 partial" in text
    assert text.count("inbound: ") == 1, "a loopback run has no inbound line"
    assert "duplicates: job j page 1 sent again" in text
    assert "replay: nox -s chaos -- --runs 1 --seed 1 --start-run 1" in text
    assert "--start-run 0" not in text  # only the failed run is offered for replay
    assert chaos.report([good], Options(), io.StringIO()) == 0


# --------------------------------------------------------------------------------------- real processes


def test_a_bad_world_or_rate_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="world 'moon' is not one of exchange, loopback"):
        chaos.execute_run(make_plan(1, 0), tmp_path / "run", world="moon")
    with pytest.raises(ValueError, match="inbound_rate must be above 0"):
        chaos.execute_run(make_plan(1, 0), tmp_path / "run", inbound_rate=0)
    assert node_processes_under(tmp_path) == []
    with pytest.raises(SystemExit):
        chaos.main(["--world", "moon"], out=io.StringIO())


@pytest.mark.realprocess
def test_a_failed_audit_exits_1_with_the_seed_to_replay_it(tmp_path: Path) -> None:
    """A real run (loopback world) whose takeover-time bound no takeover can meet: the audit fails and says how
    to replay it."""
    out = io.StringIO()
    argv = ["--runs", "1", "--seed", "77", "--start-run", "3", "--faults", "1", "--only", "kill_active"]
    code = chaos.main([*argv, "--takeover-bound", "0.01", "--world", "loopback", "--workdir", str(tmp_path)], out=out)
    text = out.getvalue()
    assert code == 1, text
    assert "takeover_time: " in text and "bound 0.01 s" in text
    assert "inbound: " not in text  # the loopback world places no calls
    replay = "--runs 1 --seed 77 --start-run 3 --faults 1 --only kill_active --takeover-bound 0.01 --world loopback"
    assert f"replay: nox -s chaos -- {replay}" in text
    assert f"or: python -m zetafailover.testing.chaos {replay}" in text
    assert (tmp_path / "seed-77-run-3" / "fax1.log").exists(), "a failed run's folder is kept for its logs"
    assert node_processes_under(tmp_path) == []


@pytest.mark.realprocess
def test_ci_chaos_set_passes_every_audit(tmp_path: Path) -> None:
    """The short seeded set CI runs: two runs of three faults on real node pairs with ISDN cards behind the
    simulated exchange, under outbound and inbound load."""
    lines: list[str] = []
    results = chaos.run_chaos(2, CI_SEED, options=Options(faults=3), workdir=tmp_path, keep=True, log=lines.append)
    out = io.StringIO()
    code = chaos.report(results, Options(faults=3), out)
    assert code == 0, out.getvalue() + "\n" + "\n".join(lines)
    assert node_processes_under(tmp_path) == []
    for result in results:
        assert result.tried == [s.kind for s in result.plan.faults]
        assert result.jobs > 0 and result.sent + result.failed == result.jobs
        assert result.terms >= 2, "every CI run causes at least one takeover"
        assert all(0 < t <= chaos.takeover_bound() for t in result.takeovers)
        # inbound load was placed, answered and audited: calls confirmed to the caller were found in the spool
        assert result.world == "exchange" and result.calls >= 5
        assert result.confirmed >= 2 and result.pages_confirmed >= 2 * result.confirmed
        assert result.stored + result.partial >= result.confirmed
        # and the remote machine got the outbound faxes through the exchange (the evidence is kept: keep=True)
        assert result.sent > 0
    assert sum(len(r.takeovers) for r in results) >= 3
