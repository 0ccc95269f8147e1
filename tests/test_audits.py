"""Each audit against synthetic evidence that satisfies it and evidence that violates it (a broken audit fails).

The real-process run that feeds the audits real evidence is in ``tests/test_nemesis.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from zetafailover.devices.isdn import split_document
from zetafailover.devices.modem.pages import page_tiff
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import HistoryEntry, Job, SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing import audits
from zetafailover.testing.exchange import SendResult


def ev(node: str, kind: str, term: int, mono: float, **kw: Any) -> dict[str, Any]:
    return {"ts": 1.7e9 + mono, "mono": mono, "node": node, "kind": kind, "term": term, **kw}


def dev(event: str, term: int, mono: float, **kw: Any) -> dict[str, Any]:
    return {"ts": 1.7e9 + mono, "mono": mono, "pid": 1, "device": "lo0", "event": event, "term": term, **kw}


def transition(node: str, term: int, mono: float, to: str) -> dict[str, Any]:
    return ev(node, "transition", term, mono, from_state="passive", to_state=to, reason="test")


def failover_events() -> dict[str, list[dict[str, Any]]]:
    """fax1 active in term 1 from 1.0; killed at 9.0; fax2 wins term 2 at 10.0 and is active at 10.4."""
    return {
        "fax1": [
            ev("fax1", "term_won", 1, 1.0, previous=""),
            transition("fax1", 1, 1.0, "activating"),
            ev("fax1", "devices_online", 1, 1.1),
            transition("fax1", 1, 1.2, "active"),
        ],
        "fax2": [
            ev("fax2", "term_won", 2, 10.0, previous="fax1"),
            transition("fax2", 2, 10.0, "activating"),
            ev("fax2", "fence", 2, 10.2, confirmed=True, method="pid"),
            ev("fax2", "devices_online", 2, 10.3),
            transition("fax2", 2, 10.4, "active"),
        ],
    }


def failover_devices() -> dict[str, list[dict[str, Any]]]:
    return {
        "fax1": [
            dev("start", 1, 1.05),
            dev("dial", 1, 2.0, job="J1", first_page=0),
            dev("page", 1, 2.5, job="J1", page=0),
            dev("page", 1, 3.0, job="J1", page=1),
            dev("stop", 1, 9.5),  # stopping under an old term is not acting
        ],
        "fax2": [
            dev("start", 2, 10.3),
            dev("dial", 2, 11.0, job="J1", first_page=2),
            dev("page", 2, 11.5, job="J1", page=2),
        ],
    }


# ------------------------------------------------------------------------------------------- single actor


def test_single_actor_holds_for_a_clean_failover() -> None:
    assert audits.audit_single_actor(failover_events(), failover_devices()) == []


def test_single_actor_catches_a_page_under_a_stale_term() -> None:
    devices = failover_devices()
    devices["fax1"].append(dev("page", 1, 10.6, job="J2", page=0))
    found = audits.audit_single_actor(failover_events(), devices)
    assert len(found) == 1
    assert "fax1" in found[0] and "term 1" in found[0] and "fax2 won term 2" in found[0], found


@pytest.mark.parametrize("event", ["start", "dial", "answered", "received_page", "connected"])
def test_single_actor_catches_every_kind_of_stale_action(event: str) -> None:
    devices = failover_devices()
    devices["fax1"].append(dev(event, 1, 12.0))
    assert len(audits.audit_single_actor(failover_events(), devices)) == 1


def test_single_actor_slack_excuses_only_what_is_inside_it() -> None:
    devices = failover_devices()
    devices["fax1"].append(dev("page", 1, 10.05, job="J2", page=0))
    assert audits.audit_single_actor(failover_events(), devices, slack=0.1) == []
    assert len(audits.audit_single_actor(failover_events(), devices, slack=0.01)) == 1


def test_single_actor_catches_a_term_won_twice_and_a_term_never_won() -> None:
    events = failover_events()
    events["fax1"].append(ev("fax1", "term_won", 2, 10.01, previous="fax1"))
    found = audits.audit_single_actor(events, failover_devices())
    assert any("term 2 was won 2 times" in v for v in found), found

    devices = failover_devices()
    devices["fax2"].append(dev("page", 1, 5.0, job="J9", page=0))  # fax2 never won term 1
    found = audits.audit_single_actor(failover_events(), devices)
    assert len(found) == 1 and "never won" in found[0], found


def test_single_actor_catches_a_takeover_step_under_a_stale_term() -> None:
    events = failover_events()
    events["fax1"].append(ev("fax1", "lines_switched", 1, 11.0))
    found = audits.audit_single_actor(events, failover_devices())
    assert len(found) == 1 and "lines_switched" in found[0], found


def test_single_actor_reads_the_exchange_page_log() -> None:
    def page(label: str, at: float, outbound: bool = True) -> dict[str, Any]:
        ends = ("from_label", "to_label") if outbound else ("to_label", "from_label")
        return {"call": "c1", "index": 0, ends[0]: label, ends[1]: "remote", "at": at, "sha256": "x"}

    good = [page("fax1", 5.0), page("fax2", 11.0), page("fax2", 12.0, outbound=False), page("remote", 0.5)]
    assert audits.audit_single_actor(failover_events(), {}, exchange_pages=good) == []
    bad = [page("fax1", 10.5), page("fax1", 0.5, outbound=False)]
    found = audits.audit_single_actor(failover_events(), {}, exchange_pages=bad)
    assert len(found) == 2, found
    assert "fax2 held term 2" in found[0] and "no term had been won" in found[1], found


# --------------------------------------------------------------------------------------------------- jobs


@pytest.fixture
def spool(tmp_path: Path) -> DirectorySpool:
    spool = DirectorySpool(tmp_path / "spool", node="test")
    spool.advance_term(1)
    return spool


def submit(spool: DirectorySpool, tmp_path: Path, pages: int = 2) -> str:
    doc = tmp_path / "doc.tif"
    if not doc.exists():
        text_document(doc, [[f"page {i + 1}"] for i in range(pages)])
    return spool.submit(doc, "5550100", SubmitOptions(retry_delay_s=0.0, max_attempts=1))


def send(spool: DirectorySpool, ok: bool = True) -> str:
    job = spool.claim(1, "lo0")
    assert job is not None
    if ok:
        for page in range(job.pages):
            spool.page_confirmed(job.id, page, 1)
    spool.complete(job.id, 1, ok, "" if ok else "busy", retryable=False)
    return job.id


def test_jobs_terminal_holds_when_every_job_ended(spool: DirectorySpool, tmp_path: Path) -> None:
    ids = [submit(spool, tmp_path) for _ in range(3)]
    send(spool)
    send(spool, ok=False)
    spool.cancel(ids[2])
    assert audits.audit_jobs_terminal(spool, accepted=ids) == []


def test_jobs_terminal_catches_a_job_left_queued_and_a_lost_job(spool: DirectorySpool, tmp_path: Path) -> None:
    ids = [submit(spool, tmp_path) for _ in range(2)]
    send(spool)
    found = audits.audit_jobs_terminal(spool, accepted=[*ids, "J20250101T000000-0123456789"])
    assert len(found) == 2, found
    assert any("queued" in v and "not terminal" in v for v in found), found
    assert any("J20250101T000000-0123456789" in v and "not in the spool" in v for v in found), found


class DoctoredSpool:
    """A real spool whose histories get extra entries appended (what a broken spool could produce)."""

    def __init__(self, spool: DirectorySpool, extra: list[str]) -> None:
        self.spool, self.extra = spool, extra

    def jobs(self) -> list[Job]:
        return self.spool.jobs()

    def history(self, job_id: str) -> list[HistoryEntry]:
        history = self.spool.history(job_id)
        last = history[-1]
        return history + [replace(last, seq=last.seq + 1 + i, state=s) for i, s in enumerate(self.extra)]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [(["sent"], "reached 2 terminal states"), (["queued", "sent"], "changed after it was sent")],
)
def test_jobs_terminal_catches_two_terminal_states(
    spool: DirectorySpool, tmp_path: Path, extra: list[str], expected: str
) -> None:
    submit(spool, tmp_path)
    send(spool)
    found = audits.audit_jobs_terminal(DoctoredSpool(spool, extra))
    assert any(expected in v for v in found), found


# --------------------------------------------------------------------------------------------- duplicates


def test_duplicates_none_is_fine_planned_or_not() -> None:
    devices = failover_devices()
    assert audits.audit_duplicates(devices, planned=True) == []
    assert audits.audit_duplicates(devices, planned=False) == []


def test_duplicate_of_the_page_in_flight_on_a_dead_node_is_allowed_but_not_when_planned() -> None:
    devices = failover_devices()
    devices["fax2"].append(dev("page", 2, 11.2, job="J1", page=1))  # page 1 again: fax1 died after sending it
    deaths = audits.deaths_from(failover_events(), kills=[("fax1", 9.0)])
    assert ("fax1", 9.0) in deaths and ("fax1", 10.2) in deaths  # the kill, and the confirmed pid fence
    assert audits.audit_duplicates(devices, planned=False, deaths=deaths) == []
    found = audits.audit_duplicates(devices, planned=True, deaths=deaths)
    assert len(found) == 1 and "planned" in found[0], found
    # without a death the same duplicate is a violation
    found = audits.audit_duplicates(devices, planned=False)
    assert len(found) == 1 and "did not die" in found[0], found


def test_duplicate_of_an_older_page_is_a_violation_even_after_a_death() -> None:
    devices = failover_devices()
    devices["fax2"].append(dev("page", 2, 11.2, job="J1", page=0))  # page 0 was confirmed long before
    found = audits.audit_duplicates(devices, planned=False, deaths=[("fax1", 9.0)])
    assert len(found) == 1 and "not the page in flight" in found[0], found


def test_deaths_from_ignores_fences_that_killed_nobody() -> None:
    events = failover_events()
    events["fax2"][2] = ev("fax2", "fence", 2, 10.2, confirmed=True, method="released")
    assert audits.deaths_from(events) == []
    events["fax2"][2] = ev("fax2", "fence", 2, 10.2, confirmed=False, method="pid")
    assert audits.deaths_from(events) == []


# ------------------------------------------------------------------------------------------------ inbound


def fax_pages(tag: str, n: int) -> list[bytes]:
    return split_document(text_document(None, [[f"{tag} {i}"] for i in range(n)]))


def test_inbound_holds_when_every_confirmed_page_is_stored(spool: DirectorySpool) -> None:
    pages = fax_pages("a", 3)
    spool.fax_received("lo0", "5550123", pages[:2], False, 1)  # the call dropped after page 2
    result = SendResult("c1", "5550100", 16, True, "fax1", (0, 1), tuple(pages))
    assert audits.audit_inbound([result], spool.received()) == []
    page_log = [{"call": "c1", "index": i, "to_label": "fax1", "sha256": audits._sha(pages[i])} for i in (0, 1)]
    page_log.append({"call": "c9", "index": 0, "to_label": "remote", "sha256": "f" * 64})  # outbound: not ours
    assert audits.audit_inbound(page_log, spool.received(), nodes=["fax1", "fax2"]) == []


def test_inbound_catches_a_confirmed_page_missing_from_the_spool(spool: DirectorySpool) -> None:
    pages = fax_pages("b", 3)
    spool.fax_received("lo0", "5550123", pages[:2], False, 1)
    result = SendResult("c1", "5550100", 16, True, "fax1", (0, 1, 2), tuple(pages))
    found = audits.audit_inbound([result], spool.received())
    assert len(found) == 1 and "page 2 of call c1" in found[0], found
    # confirmed twice (sent twice) but stored once
    again = SendResult("c2", "5550100", 16, True, "fax1", (0,), tuple(pages))
    found = audits.audit_inbound([replace(result, confirmed=(0, 1)), again], spool.received())
    assert len(found) == 1 and "2×" in found[0], found


def test_inbound_matches_a_page_a_modem_re_encoded_by_its_picture(spool: DirectorySpool, tmp_path: Path) -> None:
    """A modem delivers the picture, not the caller's file: the same rows written anew still count as stored,
    another picture does not."""
    pages = fax_pages("modem", 2)
    rewritten = []
    for i, page in enumerate(pages):
        (tmp_path / f"p{i}.tif").write_bytes(page)
        rewritten.append(page_tiff(read_page_rows(tmp_path / f"p{i}.tif"), True))
    assert rewritten[0] != pages[0], "the test needs other bytes for the same picture"
    spool.fax_received("modem0", "5550123", [rewritten[0], fax_pages("other", 1)[0]], False, 1)
    result = SendResult("c1", "5550100", 16, True, "fax1", (0,), tuple(pages))
    assert audits.audit_inbound([result], spool.received()) == []
    found = audits.audit_inbound([replace(result, confirmed=(0, 1))], spool.received())
    assert len(found) == 1 and "page 1 of call c1" in found[0] and "stored 0×" in found[0], found
    # bytes that are no fax page are compared as bytes
    odd = SendResult("c2", "5550100", 16, True, "fax1", (0,), (b"not a tiff",))
    assert "page 0 of call c2" in audits.audit_inbound([odd], spool.received())[0]


def test_inbound_closed_catches_a_reception_left_open(spool: DirectorySpool) -> None:
    pages = fax_pages("c", 2)
    spool.fax_received("lo0", "5550123", pages, True, 1)
    spool.fax_received("lo0", "5550123", pages[:1], False, 1)
    assert audits.audit_inbound_closed(spool.received()) == []
    open_id = spool.begin_receive("lo0", "5550124", 1)
    spool.receive_page(open_id, pages[0], 1)
    found = audits.audit_inbound_closed(spool.received())
    assert len(found) == 1 and open_id in found[0] and "still receiving with 1 page" in found[0], found
    spool.finish_receive(open_id, False, 1, "call cleared")
    assert audits.audit_inbound_closed(spool.received()) == []


# ----------------------------------------------------------------------------------------------- takeover


def test_takeover_time_within_and_beyond_the_bound() -> None:
    events = failover_events()
    assert audits.audit_takeover_time(events, [("fax1", 9.0)], bound=2.0) == []
    found = audits.audit_takeover_time(events, [("fax1", 9.0)], bound=1.0)
    assert len(found) == 1 and "1.400 s" in found[0], found


def test_takeover_time_catches_no_takeover_and_skips_a_passive_victim() -> None:
    events = failover_events()
    found = audits.audit_takeover_time(events, [("fax2", 20.0)], bound=5.0)
    assert len(found) == 1 and "no other node became active" in found[0], found
    assert audits.audit_takeover_time(events, [("fax2", 5.0)], bound=5.0) == []  # fax2 was passive then
