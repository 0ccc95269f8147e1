"""No fax lost across a real takeover (invariant 6), end to end through the CLI and real node processes.

Faxes are submitted with ``zetafailover send``; loopback devices take 0.25 s a page; the active is SIGKILLed
while transmissions are under way. The new active re-queues them with the reason ``failover`` and resumes each
at its first unconfirmed page. Every job ends ``sent``; the only pages sent twice are pages that were in
flight on the node that died.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from zetafailover.spool.render import text_document
from zetafailover.testing.processes import NodeProcesses

pytestmark = pytest.mark.realprocess

TIMING = {"heartbeat_interval": 0.25, "timeout": 2.5, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}
PAGES = 6


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[NodeProcesses]:
    p = NodeProcesses(tmp_path, cluster="spool", profile="fast", timing=TIMING, device_options={"page_seconds": 0.25})
    yield p
    p.close()


def jobs(nodes: NodeProcesses) -> list[dict[str, object]]:
    out = nodes.cli("jobs", "--json", config="fax1")
    assert out.returncode == 0, out.stderr
    value = json.loads(out.stdout)
    return list(value["jobs"] if isinstance(value, dict) else value)


def test_faxes_in_flight_survive_a_sigkill_takeover(nodes: NodeProcesses) -> None:
    nodes.start("fax1", 200)
    nodes.start("fax2", 100)
    first = nodes.wait_active()
    assert first.holder == "fax1"
    doc = nodes.folder / "letter.tif"
    text_document(doc, [[f"page {i + 1} of {PAGES}"] for i in range(PAGES)])
    ids = []
    for i in range(4):
        sent = nodes.cli("send", str(doc), "--to", f"555 01{i:02d}", config="fax1")
        assert sent.returncode == 0, sent.stderr
        ids.append(sent.stdout.strip())

    # wait until transmissions are under way on fax1 (2 channels: 2 jobs in flight), then kill it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pages = [e for e in nodes.device_log("fax1") if e["event"] == "page"]
        if len(pages) >= 3:
            break
        time.sleep(0.05)
    nodes.signal("fax1", signal.SIGKILL)
    second = nodes.wait_active(30, holder="fax2", above_term=first.term)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {str(j["id"]): str(j["state"]) for j in jobs(nodes)}
        if all(states.get(i) == "sent" for i in ids):
            break
        time.sleep(0.25)
    assert all(states.get(i) == "sent" for i in ids), states

    recovered = [e for e in nodes.events("fax2", "spool_recovered") if e["term"] == second.term]
    assert recovered and recovered[0]["requeued"], "the jobs in flight on fax1 were re-queued"
    requeued = set(recovered[0]["requeued"])

    sent_by_1 = [(e["job"], e["page"]) for e in nodes.device_log("fax1") if e["event"] == "page"]
    sent_by_2 = [(e["job"], e["page"]) for e in nodes.device_log("fax2") if e["event"] == "page"]
    # every page of every job was sent at least once
    for job_id in ids:
        got = {p for j, p in sent_by_1 + sent_by_2 if j == job_id}
        assert got == set(range(PAGES)), (job_id, got)
    # fax2 resumed each re-queued job at the first page fax1 had not confirmed
    for job_id in requeued:
        done_by_1 = {p for j, p in sent_by_1 if j == job_id}
        first_by_2 = min(p for j, p in sent_by_2 if j == job_id)
        assert first_by_2 == len(done_by_1), (job_id, sorted(done_by_1), first_by_2)
    # no page was sent twice (the page in flight when fax1 died was never confirmed, so it is sent once, by fax2)
    counts = Counter(sent_by_1 + sent_by_2)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    # and every page fax2 sent carried its new term
    assert {e["term"] for e in nodes.device_log("fax2") if e["event"] == "page"} == {second.term}

    history = nodes.cli("job", next(iter(requeued)), config="fax1")
    assert history.returncode == 0 and "failover" in history.stdout, history.stdout
