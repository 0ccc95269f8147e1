"""Real node processes on the simulated exchange: the lines follow the new active (issue 6's acceptance tests).

* PRI cards + PBX strategy (HTTP webhook and Asterisk AMI): SIGKILL the active while faxes flow both ways;
  the DID rings the new active, every outbound job is sent, every inbound page the caller saw confirmed is in
  the spool.
* Y-splitter (two analog devices on one line): the passive never goes off-hook; a SIGSTOPped active stays
  off-hook and the line is busy until it is fenced, then the back-up answers.
* Separate lines: the operator event names the line to move; outbound goes on the back-up's own line.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zetafailover.devices.isdn import split_document
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import SubmitOptions
from zetafailover.spool.render import text_document
from zetafailover.testing.exchange import Cause, ExchangeServer, RemoteFaxMachine, SendResult
from zetafailover.testing.processes import NodeProcesses

pytestmark = pytest.mark.realprocess

TIMING = {"heartbeat_interval": 0.25, "timeout": 2.5, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}
DID = "5550100"
REMOTE = "5550199"
TOKEN = "admin-t0ken"


def exchange_nodes(folder: Path, **kw: Any) -> NodeProcesses:
    """NodeProcesses whose nodes have only the devices and line strategy given as ``extra`` (no loopback)."""
    return NodeProcesses(folder, devices=0, **kw)


def wait(pred: Callable[[], bool], limit: float, what: str, nodes: NodeProcesses | None = None) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {limit:g} s waiting for {what}" + (f"\n{nodes.logs()}" if nodes else ""))


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def section(title: str, **keys: Any) -> str:
    return f"\n[{title}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())


def device(driver: str, name: str, **keys: Any) -> str:
    return section("[device]", driver=driver, name=name, **keys)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    return tmp_path


def unique_fax(folder: Path, tag: str, pages: int) -> list[bytes]:
    data = text_document(None, [[f"{tag} page {i + 1}"] for i in range(pages)])
    return split_document(data)


# ------------------------------------------------------------------------------------ PRI + PBX strategy


@pytest.mark.parametrize("transport", ["webhook", "ami"])
def test_pri_pair_with_pbx_rerouting_survives_sigkill_of_the_active(folder: Path, transport: str) -> None:
    plan: dict[str, Any] = {
        "lines": [
            {"name": "pri-fax1", "kind": "e1"},
            {"name": "pri-fax2", "kind": "e1"},
            {"name": "remote", "kind": "trunk", "channels": 30, "number": REMOTE},
            {"name": "callers", "kind": "trunk", "channels": 30, "number": "5550123"},
        ],
        "routes": [{"number": DID, "lines": ["pri-fax1"]}]
        if transport == "webhook"
        else [{"number": DID, "db_key": "fax/active"}],
        "db": {"fax/active": "pri-fax1"},
        "ami_users": {"zf": "s3cret"},
        "token": TOKEN,
    }
    with ExchangeServer(plan) as xs:
        ex = xs.exchange
        common = {
            "state": "shared/lines.json",
            "targets": {"fax1": "pri-fax1", "fax2": "pri-fax2"},
            "retry_interval": 0.2,
            "timeout": 1.0,
        }
        if transport == "webhook":
            url = f"{xs.addresses.admin}/routes/{DID}"
            line = section(
                "line",
                strategy="pbx",
                transport="webhook",
                url=url,
                method="PUT",
                token=TOKEN,
                body={"lines": ["{target}"], "term": "{term}", "set_by": "{node}"},
                verify_url=url,
                **common,
            )
        else:
            host, port = xs.addresses.ami.split(":")
            line = section(
                "line",
                strategy="pbx",
                transport="ami",
                host=host,
                port=int(port),
                username="zf",
                secret="s3cret",
                **common,
            )
        nodes = exchange_nodes(folder, cluster="pri", profile="fast", timing=TIMING)
        remote = RemoteFaxMachine(xs.addresses.endpoints, "remote", label="remote")
        callers = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
        stop = threading.Event()
        inbound: list[SendResult] = []
        try:
            for name, prio in (("fax1", 200), ("fax2", 100)):
                dev = device(
                    "isdn",
                    "pri0",
                    exchange=xs.addresses.endpoints,
                    card="e1",
                    lines=[f"pri-{name}"],
                    page_seconds=0.2,
                    log=f"{name}-device.jsonl",
                )
                nodes.start(name, prio, extra=dev + line)
            first = nodes.wait_active(30)
            assert first.holder == "fax1"
            wait(lambda: ex.route_lines(DID) == ("pri-fax1",), 10, "the DID routed to fax1", nodes)

            spool = DirectorySpool(folder / "shared" / "spool", node="test")
            doc = folder / "letter.tif"
            text_document(doc, [[f"outbound page {i + 1}"] for i in range(4)])
            jobs = [spool.submit(doc, REMOTE, SubmitOptions(retry_delay_s=0.5, max_attempts=10)) for _ in range(6)]

            def caller_loop(k: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    inbound.append(
                        callers.send(DID, unique_fax(folder, f"in-{k}-{n}", 3), answer_timeout=10, page_timeout=10)
                    )
                    time.sleep(0.05)

            threads = [threading.Thread(target=caller_loop, args=(k,), daemon=True) for k in range(3)]
            for t in threads:
                t.start()
            wait(
                lambda: len(ex.pages()) >= 12 and any(p["from_label"] == "fax1" for p in ex.pages()),
                30,
                "faxes flowing both ways on fax1",
                nodes,
            )
            killed_at = nodes.signal("fax1", signal.SIGKILL)
            second = nodes.wait_active(30, holder="fax2", above_term=first.term)
            active_at = nodes.became_active_at("fax2", second.term)
            assert active_at is not None
            # the PBX was re-routed during the takeover (before fax2 reported ACTIVE)
            assert ex.route_lines(DID) == ("pri-fax2",)
            rerouted = [r for r in ex.route_log if "pri-fax2" in (r.get("lines") or []) or r.get("value") == "pri-fax2"]
            assert rerouted and killed_at < rerouted[0]["at"] <= active_at + 0.01
            # the DID now rings fax2: keep calling for a while after the takeover
            wait(
                lambda: sum(r.answered_by == "fax2" and r.ok for r in list(inbound)) >= 3,
                30,
                "inbound faxes answered by fax2",
                nodes,
            )
            stop.set()
            for t in threads:
                t.join(30)
            wait(lambda: all(spool.get(j).state == "sent" for j in jobs), 60, "every outbound job sent", nodes)

            # every inbound page the caller saw confirmed is in the spool
            stored = {p.read_bytes() for fax in spool.received() for p in fax.page_files}
            confirmed = [r.pages[i] for r in inbound for i in r.confirmed]
            assert confirmed and all(page in stored for page in confirmed)
            assert {r.answered_by for r in inbound if r.connected} == {"fax1", "fax2"}
            # calls after the takeover went to fax2 only
            late = [c for c in ex.calls_log() if c["called"] == DID and c["started"] > active_at]
            assert late and all(c["answered_label"] in ("fax2", "") for c in late)
            # every page of every outbound job reached the remote machine
            got = remote.pages_received()
            assert all(page in got for page in split_document(doc.read_bytes()))
            assert sum(r.ok for r in inbound) >= 3
        finally:
            stop.set()
            nodes.close()
            remote.close()
            callers.close()


# ------------------------------------------------------------------------------------------- Y-splitter


def test_ysplitter_paused_active_blocks_the_line_until_fenced(folder: Path) -> None:
    timing = {**TIMING, "timeout": 4.0}
    plan = {
        "lines": [
            {"name": "shared-line", "kind": "analog", "number": DID},
            {"name": "callers", "kind": "trunk", "channels": 4, "number": "5550123"},
        ],
        "answer_timeout": 8,
    }
    with ExchangeServer(plan) as xs:
        ex = xs.exchange
        nodes = exchange_nodes(folder, cluster="ysplit", profile="fast", timing=timing)
        callers = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="caller")
        line = section("line", strategy="ysplitter", state="shared/lines.json")
        try:
            for name, prio in (("fax1", 200), ("fax2", 100)):
                dev = device(
                    "sim-analog",
                    "modem0",
                    exchange=xs.addresses.endpoints,
                    line="shared-line",
                    log=f"{name}-device.jsonl",
                )
                nodes.start(name, prio, extra=dev + line)
            first = nodes.wait_active(30)
            assert first.holder == "fax1"
            wait(
                lambda: len([e for e in ex.endpoints.values() if e.line == "shared-line"]) == 2,
                10,
                "both modems on the line",
                nodes,
            )
            for i in range(2):
                result = callers.send(DID, unique_fax(folder, f"y{i}", 2))
                assert result.ok and result.answered_by == "fax1", result
            # a call that fax1 answers, then fax1 is paused mid-call: its modem stays off-hook
            # the line may still be clearing the previous call for a moment (busy, cause 17): dial once it is idle
            wait(lambda: not ex.line_busy("shared-line"), 10, "the shared line idle again", nodes)
            leg = callers.endpoint.dial(DID)
            leg.wait_for("connected", 10)
            assert ex.line_busy("shared-line")
            paused_at = nodes.signal("fax1", signal.SIGSTOP)
            leg.hangup()  # the caller gives up; fax1's modem does not hang up (its host is paused)
            time.sleep(0.2)
            busy = callers.send(DID, unique_fax(folder, "busy", 1))
            busy_at = time.monotonic()
            assert busy.cause == Cause.USER_BUSY and not busy.connected
            assert ex.line_busy("shared-line")
            second = nodes.wait_active(40, holder="fax2", above_term=first.term)
            fence = [e for e in nodes.events("fax2", "fence") if e["term"] == second.term]
            assert fence and fence[0]["confirmed"]
            assert paused_at < busy_at < fence[0]["mono"]
            # fencing killed fax1: its connection closed and its modem went on-hook (the exchange notices the
            # closed connection on its own thread, a moment later on a loaded machine); now fax2 answers
            wait(lambda: not ex.line_busy("shared-line"), 10, "fax1's modem on-hook after the fence", nodes)
            result = callers.send(DID, unique_fax(folder, "after", 2))
            assert result.ok and result.answered_by == "fax2", result
            hooks = list(ex.hook_log)
            fax2_off = [h for h in hooks if h["label"] == "fax2" and h["off_hook"]]
            assert fax2_off and min(h["at"] for h in fax2_off) > fence[0]["mono"], "the passive never went off-hook"
            # Fencing ended fax1 either way: it died (its connection "detached") or, resumed by the terminator's
            # SIGCONT, it handled the SIGTERM and hung up itself before exiting. Both free the line.
            fax1_down = [h for h in hooks if h["label"] == "fax1" and not h["off_hook"] and h["at"] >= paused_at]
            assert fax1_down, hooks
            assert fax1_down[0]["why"] in ("detached", "on-hook", "hung up"), fax1_down[0]
        finally:
            nodes.close()
            callers.close()


# ---------------------------------------------------------------------------------------- separate lines


def test_separate_lines_operator_event_and_outbound_on_the_backups_line(folder: Path) -> None:
    plan = {
        "lines": [
            {"name": "line-a", "kind": "analog", "number": DID},
            {"name": "line-b", "kind": "analog", "number": "5550200"},
            {"name": "remote", "kind": "trunk", "channels": 4, "number": REMOTE},
        ],
    }
    with ExchangeServer(plan) as xs:
        ex = xs.exchange
        nodes = exchange_nodes(folder, cluster="sep", profile="fast", timing=TIMING)
        remote = RemoteFaxMachine(xs.addresses.endpoints, "remote", label="remote")
        line = section(
            "line",
            strategy="separate",
            lines={"fax1": ["line-a"], "fax2": ["line-b"]},
            numbers=[DID],
            events="shared/operator.jsonl",
            state="shared/lines.json",
        )
        try:
            nodes.start(
                "fax1", 200, extra=device("sim-analog", "m0", exchange=xs.addresses.endpoints, line="line-a") + line
            )
            nodes.start(
                "fax2", 100, extra=device("sim-analog", "m0", exchange=xs.addresses.endpoints, line="line-b") + line
            )
            first = nodes.wait_active(30)
            spool = DirectorySpool(folder / "shared" / "spool", node="test")
            doc = folder / "d.tif"
            text_document(doc, [["one"], ["two"]])
            j1 = spool.submit(doc, REMOTE, SubmitOptions(retry_delay_s=0.5))
            wait(lambda: spool.get(j1).state == "sent", 30, "the first job", nodes)
            nodes.signal("fax1", signal.SIGKILL)
            second = nodes.wait_active(30, holder="fax2", above_term=first.term)
            events = [json.loads(x) for x in (folder / "shared" / "operator.jsonl").read_text().splitlines()]
            event = events[-1]
            assert event["term"] == second.term and event["action"] == "operator"
            assert event["from_lines"] == ["line-a"] and event["to_lines"] == ["line-b"]
            assert f"Move {DID} from line-a of fax1 to line-b of fax2" in event["message"]
            j2 = spool.submit(doc, REMOTE, SubmitOptions(retry_delay_s=0.5))
            wait(lambda: spool.get(j2).state == "sent", 30, "the second job", nodes)
            out = [c for c in ex.calls_log() if c["called"] == REMOTE and c["pages"]]
            assert [c["caller_line"] for c in out] == ["line-a", "line-b"]
        finally:
            nodes.close()
            remote.close()
