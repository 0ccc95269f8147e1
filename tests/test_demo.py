"""``zetafailover demo``: the report's arithmetic on made-up evidence, the command line, and every scenario run
for real as a subprocess (``kill`` and ``pause`` in full, ``share-outage`` and ``pbx-failure`` with ``--quick``).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zetafailover.demo import SCENARIOS, scenario_list
from zetafailover.demo.report import Check, Fault, build_report
from zetafailover.demo.scenarios import PLAYS
from zetafailover.devices.isdn import split_document
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.render import text_document
from zetafailover.testing.exchange import SendResult

REMOTE, DID = "5550199", "5550200"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------- the catalogue


def test_every_scenario_has_a_story_and_the_list_names_them_all() -> None:
    assert list(SCENARIOS) == ["kill", "pause", "share-outage", "pbx-failure"]
    assert set(PLAYS) == set(SCENARIOS)
    listing = scenario_list()
    for name, info in SCENARIOS.items():
        assert f"  {name} " in listing and info.summary in listing
        assert info.terminator in ("pid", "none")


def zf(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zetafailover", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_demo_list_and_help_name_every_scenario() -> None:
    listed = zf("demo", "--list")
    helped = zf("demo", "--help")
    assert listed.returncode == 0 and helped.returncode == 0, listed.stderr + helped.stderr
    for name in SCENARIOS:
        assert name in listed.stdout and name in helped.stdout
    assert "--scenario" in helped.stdout and "--quick" in helped.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--scenario", "flood"], "unknown scenario 'flood'"), (["--profile", "turbo"], "unknown profile 'turbo'")],
)
def test_demo_refuses_an_unknown_scenario_or_profile_with_exit_2(args: list[str], message: str) -> None:
    out = zf("demo", *args)
    assert out.returncode == 2
    assert message in out.stderr and "known" in out.stderr


# ------------------------------------------------------------------------------------------- the report

EVENTS: dict[str, list[dict[str, Any]]] = {
    "fax1": [
        {"kind": "term_won", "term": 1, "mono": 1.0, "previous": ""},
        {"kind": "transition", "to_state": "active", "term": 1, "mono": 1.5},
    ],
    "fax2": [
        {"kind": "term_won", "term": 2, "mono": 12.0, "previous": "fax1"},
        {"kind": "fence", "term": 2, "mono": 12.1, "confirmed": True, "method": "pid", "evidence": "gone"},
        {"kind": "transition", "to_state": "active", "term": 2, "mono": 12.5},
        {"kind": "spool_recovered", "term": 2, "mono": 12.4, "requeued": []},
    ],
}
KILL = Fault("SIGKILL of fax1", "fax1", 10.0)


def sent_job(tmp_path: Path, spool: DirectorySpool) -> tuple[str, list[bytes]]:
    """A three-page job sent by fax1 under term 1, then term 2 advanced (fax2 took over)."""
    doc = tmp_path / "doc.tif"
    pages = split_document(text_document(doc, [["report test", f"page {i + 1}"] for i in range(3)]))
    spool.advance_term(1)
    job = spool.submit(doc, REMOTE)
    assert spool.claim(1, "pri0") is not None
    for i in range(3):
        spool.page_confirmed(job, i, 1)
    spool.complete(job, 1, ok=True)
    spool.advance_term(2)
    return job, pages


def page(data: bytes, at: float, by: str = "fax1", index: int = 0) -> dict[str, Any]:
    return {
        "call": f"C{at}",
        "from_label": by,
        "to_label": "remote",
        "called": REMOTE,
        "index": index,
        "sha256": sha(data),
        "at": at,
    }


def report_for(
    tmp_path: Path,
    spool: DirectorySpool,
    job: str,
    pages: list[bytes],
    exchange_pages: list[dict[str, Any]],
    *,
    faults: tuple[Fault, ...] = (KILL,),
    inbound: tuple[Any, ...] = (),
) -> Any:
    return build_report(
        "kill",
        events=EVENTS,
        device_logs={"fax1": [], "fax2": []},
        exchange_pages=exchange_pages,
        exchange_calls=[],
        remote_received=[],
        spool=spool,
        outbound={job: [sha(p) for p in pages]},
        inbound=list(inbound),
        faults=list(faults),
        kills=[("fax1", 10.0)],
        checks=[Check("something the story expects", True, "it happened")],
        bound=6.0,
        remote_number=REMOTE,
        pri_number=DID,
        t0=0.0,
    )


def test_report_counts_a_fax_delivered_page_by_page_and_times_the_takeover(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "spool", node="test")
    job, pages = sent_job(tmp_path, spool)
    report = report_for(tmp_path, spool, job, pages, [page(p, 2.0 + i, index=i) for i, p in enumerate(pages)])
    assert report.outbound["sent"] == 1 and report.outbound["delivered"] == 1 and report.outbound["lost"] == 0
    assert report.duplicates == [] and report.unexplained_duplicates == []
    assert report.takeovers[0]["node"] == "fax2" and report.takeovers[0]["seconds"] == pytest.approx(2.5)
    assert not any(report.violations.values()), report.violations
    assert report.ok
    text = "\n".join(report.lines())
    assert "lost 0" in text and "result     OK" in text and "after 2.50 s" in text


def test_report_finds_a_page_missing_from_the_exchange_log_lost(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "spool", node="test")
    job, pages = sent_job(tmp_path, spool)
    report = report_for(tmp_path, spool, job, pages, [page(pages[0], 2.0), page(pages[2], 3.0, index=2)])
    assert report.outbound["sent"] == 1 and report.outbound["delivered"] == 0 and report.outbound["lost"] == 1
    assert not report.ok
    assert "result     FAILED" in "\n".join(report.lines())


def test_report_explains_a_page_in_flight_at_the_kill_and_flags_one_without_a_reason(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "spool", node="test")
    job, pages = sent_job(tmp_path, spool)
    log = [
        page(pages[0], 8.0),
        page(pages[1], 9.9, index=1),
        page(pages[1], 13.0, "fax2"),
        page(pages[2], 13.5, "fax2"),
    ]
    explained = report_for(tmp_path, spool, job, pages, log)
    assert len(explained.duplicates) == 1 and not explained.unexplained_duplicates
    assert "page 2" in explained.duplicates[0] and "SIGKILL of fax1" in explained.duplicates[0]
    assert explained.ok
    # the same copy with no fault around it (a planned switchover does not excuse it): unexplained
    planned = Fault("switchover to fax2", "fax1", 10.0, planned=True, target="fax2")
    unexplained = report_for(tmp_path, spool, job, pages, log, faults=(planned,))
    assert len(unexplained.unexplained_duplicates) == 1 and not unexplained.ok


def test_report_counts_an_inbound_page_confirmed_but_not_stored_as_lost(tmp_path: Path) -> None:
    spool = DirectorySpool(tmp_path / "spool", node="test")
    job, pages = sent_job(tmp_path, spool)
    inbound_pages = tuple(split_document(text_document(None, [["inbound 1"], ["inbound 2"]])))
    fax_id = spool.begin_receive("pri0", "5550123", 2)
    spool.receive_page(fax_id, inbound_pages[0], 2)
    spool.finish_receive(fax_id, False, 2, "cut")

    class Fax:
        def __init__(self, result: SendResult) -> None:
            self.pages, self.calls, self.delivered = result.pages, [result], result.ok

    result = SendResult("C9", DID, 16, True, "fax2", (0, 1), inbound_pages)  # the caller saw both pages confirmed
    log = [page(p, 2.0 + i, index=i) for i, p in enumerate(pages)]
    report = report_for(tmp_path, spool, job, pages, log, inbound=(Fax(result),))
    assert report.inbound["confirmed_pages"] == 2 and report.inbound["lost_pages"] == 1
    assert report.violations["inbound"] and not report.ok


# --------------------------------------------------------------------------------------- real scenarios

FIGURES = {
    "outbound": re.compile(
        r"outbound +(\d+) faxes accepted .*: (\d+) sent, (\d+) failed, (\d+) not finished, lost (\d+)"
    ),
    "inbound": re.compile(r"(\d+) pages confirmed to the callers, lost (\d+)"),
    "takeover": re.compile(r"^  takeover .* active in term (\d+) after ([\d.]+) s", re.M),
    "switchover": re.compile(r"^  switchover .* → fax1 active in term (\d+) after ([\d.]+) s", re.M),
}


@pytest.mark.realprocess
@pytest.mark.parametrize(
    ("scenario", "quick"), [("kill", False), ("pause", False), ("share-outage", True), ("pbx-failure", True)]
)
def test_scenario_runs_the_whole_story_and_every_audit_holds(scenario: str, quick: bool) -> None:
    args = ["demo", "--scenario", scenario, *(["--quick"] if quick else [])]
    out = zf(*args, timeout=240)
    text = out.stdout
    assert out.returncode == 0, f"exit {out.returncode}\n{text[-6000:]}\n{out.stderr[-3000:]}"
    accepted, sent, failed, unfinished, lost = map(int, FIGURES["outbound"].search(text).groups())  # type: ignore[union-attr]
    assert accepted > 5 and sent == accepted and failed == unfinished == lost == 0, text
    confirmed, lost_in = map(int, FIGURES["inbound"].search(text).groups())  # type: ignore[union-attr]
    assert confirmed > 5 and lost_in == 0, text
    takeover = FIGURES["takeover"].search(text)
    assert takeover is not None and takeover.group(1) == "2" and float(takeover.group(2)) < 10.0, text
    switchover = FIGURES["switchover"].search(text)
    assert switchover is not None and switchover.group(1) == "3", text
    assert "result     OK: every audit and check held" in text
    for audit in ("single_actor", "jobs_terminal", "duplicates", "inbound", "takeover_time"):
        assert f"{audit} held" in text
    assert "check      no automatic failback: held" in text
    assert re.search(r"^\[ *\d+\.\d s\]   outbound \d+/\d+ sent", text, re.M), "progress counters are shown"
