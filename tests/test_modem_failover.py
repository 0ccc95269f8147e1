"""A failover pair of real nodes with simulated modems on one Y-splitter line (issue 5's node-level tests).

Two ``zetafailover run`` processes, each with a ``[[device]] driver = "modem"`` whose port is a simulated modem
in a :class:`~zetafailover.testing.modem.ModemProcess` (a process of its own, as hardware outlives the program
driving it); both modems are on the same analog line of the exchange, ``[line] strategy = "ysplitter"``.

* The passive node's modem hears every RING and never goes off-hook before the takeover.
* SIGKILL of the active mid-fax: the kernel closes its port, DTR drops, its modem hangs up (``&D2``); the
  back-up takes over, re-sends the job from the first unconfirmed page, and answers the next call.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zetafailover.devices.isdn import split_document
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.spool.tiff import read_page_rows
from zetafailover.testing.exchange import ExchangeServer, RemoteFaxMachine
from zetafailover.testing.modem import ModemProcess, ModemSpec
from zetafailover.testing.processes import NodeProcesses

pytestmark = pytest.mark.realprocess

TIMING = {"heartbeat_interval": 0.25, "timeout": 3.0, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}
DID = "5550100"
REMOTE = "5550199"
PAGES = 4
PLAN = {
    "lines": [
        {"name": "shared-line", "kind": "analog", "number": DID},
        {"name": "remote", "kind": "trunk", "channels": 2, "number": REMOTE},
        {"name": "callers", "kind": "trunk", "channels": 2, "number": "5550123"},
    ],
    "ring_interval": 1.0,
    "answer_timeout": 12,
}


def wait(pred: Callable[[], bool], limit: float, what: str, nodes: NodeProcesses | None = None) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {limit:g} s waiting for {what}" + (f"\n{nodes.logs()}" if nodes else ""))


def modem_section(name: str, port: str) -> str:
    keys: dict[str, Any] = {
        "driver": "modem",
        "name": "modem0",
        "port": port,
        "class": "2.0",
        "local_id": f"+1 555 {name}",
        "rings": 1,
        "command_timeout": 5,
        "dial_timeout": 20,
        "page_timeout": 30,
        "log": f"{name}-device.jsonl",
    }
    return "\n[[device]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())


LINE = '\n[line]\nstrategy = "ysplitter"\nstate = "shared/lines.json"\n'


def device_events(nodes: NodeProcesses, name: str, event: str) -> list[dict[str, Any]]:
    return [e for e in nodes.device_log(name) if e.get("event") == event]


def test_ysplitter_modem_pair_kill_mid_fax_resumes_and_backup_answers(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    with ExchangeServer(PLAN) as xs:
        ex = xs.exchange
        # The remote machine takes ~1 s to confirm each page: time to kill the sender with a page in flight.
        remote = RemoteFaxMachine(xs.addresses.endpoints, "remote", label="remote", confirm_delay=1.0)
        callers = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
        modems = ModemProcess(
            xs.addresses.endpoints,
            [
                ModemSpec("fax1", "shared-line", tmp_path / "ttyFAX1", classes="2,2.0"),
                ModemSpec("fax2", "shared-line", tmp_path / "ttyFAX2", classes="2,2.0"),
            ],
        ).start()
        nodes = NodeProcesses(tmp_path, devices=0, cluster="modempair", profile="fast", timing=TIMING)
        try:
            nodes.start("fax1", 200, extra=modem_section("fax1", modems.paths["fax1"]) + LINE)
            first = nodes.wait_active(30)
            assert first.holder == "fax1"
            nodes.start("fax2", 100, extra=modem_section("fax2", modems.paths["fax2"]) + LINE)
            wait(lambda: bool(device_events(nodes, "fax2", "open")), 30, "the passive node's modem open", nodes)

            # Inbound while fax1 is active: fax1's modem answers; fax2's modem hears the RINGs and stays on-hook.
            sent = split_document(text_document(None, [["inbound before"], ["the failover"]]))
            result = callers.send(DID, sent, answer_timeout=20)
            assert result.ok and result.answered_by == "fax1", result
            wait(lambda: bool(device_events(nodes, "fax2", "ring")), 10, "the passive modem to hear a RING", nodes)
            assert not device_events(nodes, "fax2", "answer")

            # Outbound: a multi-page job; SIGKILL fax1 once at least one page is confirmed and recorded.
            spool = DirectorySpool(tmp_path / "shared" / "spool", node="test")
            doc = tmp_path / "job.tif"
            text_document(doc, [[f"outbound page {i + 1}", "x" * (i + 1)] for i in range(PAGES)])
            job = spool.submit(doc, REMOTE, SubmitOptions(retry_delay_s=0.5, max_attempts=5))
            wait(lambda: bool(device_events(nodes, "fax1", "page")), 40, "fax1 to get a page confirmed", nodes)
            assert ex.line_busy("shared-line"), "fax1's modem is off-hook mid-fax"
            killed_at = nodes.signal("fax1", signal.SIGKILL)
            resume_at = spool.get(job).pages_confirmed
            assert 1 <= resume_at < PAGES, f"killed too late: {resume_at} pages confirmed"
            fax1_pages = [e["page"] for e in device_events(nodes, "fax1", "page")]
            assert fax1_pages == list(range(len(fax1_pages))) and len(fax1_pages) in (resume_at - 1, resume_at)

            # fax1's modem hangs up on its own (DTR dropped with its host), the back-up takes over.
            wait(lambda: not ex.line_busy("shared-line"), 10, "fax1's modem on-hook after the kill", nodes)
            second = nodes.wait_active(40, holder="fax2", above_term=first.term)
            became = nodes.became_active_at("fax2", second.term)
            assert became is not None and became > killed_at
            wait(lambda: spool.get(job).state == "sent", 60, "the job re-sent by fax2", nodes)
            final = spool.get(job)
            assert final.pages_confirmed == PAGES and final.term == second.term

            # The exchange's page log (indexes count the pages of one call, as on a real line): the first call
            # confirmed resume_at pages (or one more: the page in flight whose confirmation fax1 never recorded);
            # the resumed call, placed by fax2's modem, carries exactly the pages from resume_at on.
            log = [p for p in ex.pages() if p["called"] == REMOTE]
            calls: dict[str, list[dict[str, Any]]] = {}
            for p in log:
                calls.setdefault(p["call"], []).append(p)
            assert len(calls) == 2, log
            one, two = calls.values()
            assert {p["from_label"] for p in one} == {"fax1"} and {p["from_label"] for p in two} == {"fax2"}
            assert [p["index"] for p in one] in (list(range(resume_at)), list(range(resume_at + 1)))
            assert [p["index"] for p in two] == list(range(PAGES - resume_at)) and two[-1]["last"]
            assert PAGES <= len(log) <= PAGES + 1
            # ... and what the remote machine got, call by call, is the document page for page: every page
            # delivered, at most the in-flight one twice, the resumed call starting at page resume_at.
            expected = [read_page_rows(doc, i) for i in range(PAGES)]
            faxes = [f for f in remote.received if f.pages]
            assert len(faxes) == 2 and faxes[1].complete, remote.received
            assert len(faxes[0].pages) in (resume_at, resume_at + 1)
            for k, (fax, start) in enumerate(((faxes[0], 0), (faxes[1], resume_at))):
                for i, page in enumerate(fax.pages):
                    path = tmp_path / f"got{k}-{i}.tif"
                    path.write_bytes(page)
                    assert read_page_rows(path) == expected[start + i], (k, i)
            assert len(faxes[1].pages) == PAGES - resume_at

            # Inbound after the takeover: fax2's modem answers and the fax lands in the spool under the new term.
            before = {f.id for f in spool.received()}
            sent = split_document(text_document(None, [["inbound after"], ["the takeover"], ["three"]]))
            result = callers.send(DID, sent, answer_timeout=20)
            assert result.ok and result.answered_by == "fax2", result
            wait(
                lambda: any(f.id not in before and f.pages == 3 and f.term == second.term for f in spool.received()),
                20,
                "the inbound fax in the spool",
                nodes,
            )
            new = next(f for f in spool.received() if f.id not in before and f.pages == 3)
            for i, path in enumerate(new.page_files):
                original = tmp_path / f"sent{i}.tif"
                original.write_bytes(sent[i])
                assert read_page_rows(path) == read_page_rows(original)

            # The passive's modem never went off-hook before the takeover (the hook log is on the same clock).
            hooks = list(ex.hook_log)
            fax2_off = [h for h in hooks if h["label"] == "fax2" and h["off_hook"]]
            assert fax2_off and min(h["at"] for h in fax2_off) > became, hooks
            fax1_down = [h for h in hooks if h["label"] == "fax1" and not h["off_hook"] and h["at"] >= killed_at]
            assert fax1_down, "fax1's modem must go on-hook after its host was killed"
        finally:
            nodes.close()
            modems.stop()
            remote.close()
            callers.close()
