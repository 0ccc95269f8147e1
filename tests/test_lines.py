"""The three line-switch strategies: term checks, PBX transports against the exchange, bad PBX answers, config."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zetafailover.clock import FakeClock
from zetafailover.config import parse_config
from zetafailover.core.events import EventLog
from zetafailover.errors import ConfigError, LineSwitchError
from zetafailover.interfaces import LineSwitch
from zetafailover.lines import may_answer
from zetafailover.lines.pbx import AmiTransport, CommandTransport, PbxLineSwitch, WebhookTransport
from zetafailover.lines.separate import SeparateLinesSwitch
from zetafailover.lines.ysplitter import YSplitterLineSwitch
from zetafailover.plugins import get_plugin_manager, make_line_switch, validate_config
from zetafailover.testing.exchange import ExchangeServer

DID = "5550100"
TOKEN = "t0ken"


@pytest.fixture
def pbx() -> Iterator[ExchangeServer]:
    plan = {
        "lines": [{"name": "pri-fax1", "kind": "e1"}, {"name": "pri-fax2", "kind": "e1"}],
        "routes": [{"number": DID, "lines": ["pri-fax1"]}, {"number": "5550101", "db_key": "fax/active"}],
        "ami_users": {"zf": "s3cret"},
        "token": TOKEN,
    }
    with ExchangeServer(plan) as server:
        yield server


def webhook(server: ExchangeServer, timeout: float = 1.0, token: str = TOKEN) -> WebhookTransport:
    url = f"{server.addresses.admin}/routes/{DID}"
    return WebhookTransport(
        url,
        method="PUT",
        body={"lines": ["{target}"], "term": "{term}", "set_by": "{node}"},
        token=token,
        timeout=timeout,
        verify_url=url,
    )


def ami(server: ExchangeServer, secret: str = "s3cret", timeout: float = 1.0) -> AmiTransport:
    host, port = server.addresses.ami.split(":")
    return AmiTransport(host, int(port), "zf", secret, timeout=timeout)


TARGETS = {"fax1": "pri-fax1", "fax2": "pri-fax2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------- y-splitter


def test_ysplitter_only_the_holder_may_answer_and_lower_terms_are_refused(tmp_path: Path) -> None:
    state = tmp_path / "shared" / "lines.json"
    on1, on2 = YSplitterLineSwitch(state), YSplitterLineSwitch(state)
    assert isinstance(on1, LineSwitch)
    assert not on1.may_answer("fax1") and not on2.may_answer("fax2")  # nobody took the lines yet
    on1.take("fax1", 1)
    on1.take("fax1", 1)  # idempotent
    assert on2.may_answer("fax1") and not on2.may_answer("fax2")
    on2.take("fax2", 2)
    assert not on1.may_answer("fax1") and on1.may_answer("fax2")  # the old active sees the takeover at once
    with pytest.raises(LineSwitchError, match="higher term 2"):
        on1.take("fax1", 1)
    on1.release("fax1", 1)  # not the holder any more: nothing happens
    assert on2.may_answer("fax2")
    on2.release("fax2", 2)
    on2.release("fax2", 2)
    assert not on2.may_answer("fax2")


# ---------------------------------------------------------------------------------------- separate lines


def test_separate_lines_names_the_line_to_move(tmp_path: Path) -> None:
    events = tmp_path / "operator.jsonl"
    lines = {"fax1": ["analog-1 (port A3)"], "fax2": ["analog-2 (port B1)"]}
    state = tmp_path / "lines.json"
    s1 = SeparateLinesSwitch(lines, ["555-0100"], events=events, state=state)
    s2 = SeparateLinesSwitch(lines, ["555-0100"], events=events, state=state)
    s1.take("fax1", 1)
    s2.take("fax2", 2)
    s2.take("fax2", 2)  # told once per term
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(logged) == 2
    event = logged[1]
    assert event["event"] == "move_lines" and event["action"] == "operator"
    assert event["from_node"] == "fax1" and event["from_lines"] == ["analog-1 (port A3)"]
    assert event["to_lines"] == ["analog-2 (port B1)"] and event["numbers"] == ["555-0100"]
    assert "Move 555-0100 from analog-1 (port A3) of fax1 to analog-2 (port B1) of fax2" in event["message"]
    assert "fax2's own lines" in event["outbound"]
    with pytest.raises(LineSwitchError):
        s1.take("fax1", 1)


def test_separate_lines_hands_over_to_the_pbx_when_configured(pbx: ExchangeServer, tmp_path: Path) -> None:
    switch = SeparateLinesSwitch(
        {"fax1": ["pri-fax1"], "fax2": ["pri-fax2"]},
        [DID],
        pbx=PbxLineSwitch(webhook(pbx), TARGETS),
    )
    switch.take("fax2", 3)
    assert switch.last_event is not None and switch.last_event["action"] == "pbx"
    assert pbx.exchange.route_lines(DID) == ("pri-fax2",)


# --------------------------------------------------------------------------------------------------- pbx


def test_pbx_webhook_reroutes_the_did_with_read_back_and_term_check(pbx: ExchangeServer, tmp_path: Path) -> None:
    status = tmp_path / "pbx-status.jsonl"
    s2 = PbxLineSwitch(webhook(pbx), TARGETS, status=status)
    s2.take("fax2", 2)
    assert pbx.exchange.route_lines(DID) == ("pri-fax2",)
    assert pbx.exchange.routes[DID].term == 2 and pbx.exchange.routes[DID].set_by == "fax2"
    assert s2.may_answer("fax2") and not s2.may_answer("fax1")
    [result] = [json.loads(line) for line in status.read_text().splitlines()]
    assert result["ok"] and "read back" in result["evidence"]
    # a stale node (its own strategy never saw term 2) is refused by the PBX, and not retried
    s1 = PbxLineSwitch(webhook(pbx), TARGETS, retry_interval=0.05)
    with pytest.raises(LineSwitchError, match="stale term"):
        s1.take("fax1", 1)
    time.sleep(0.2)
    assert pbx.exchange.route_lines(DID) == ("pri-fax2",)


def test_pbx_ami_dbput_reroutes_a_db_route_and_refuses_a_lower_term(pbx: ExchangeServer) -> None:
    ex = pbx.exchange
    PbxLineSwitch(ami(pbx), TARGETS).take("fax1", 4)
    assert ex.db_get("fax/active") == "pri-fax1" and ex.db_get("fax/term") == "4"
    assert ex.route_lines("5550101") == ("pri-fax1",)
    PbxLineSwitch(ami(pbx), TARGETS).take("fax2", 5)
    assert ex.route_lines("5550101") == ("pri-fax2",)
    with pytest.raises(LineSwitchError, match="above term 3"):
        PbxLineSwitch(ami(pbx), TARGETS).take("fax1", 3)
    assert ex.db_get("fax/active") == "pri-fax2"


def test_pbx_command_transport_runs_an_argument_list(tmp_path: Path) -> None:
    out = tmp_path / "routed"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2] + ' ' + sys.argv[3])"
    verify = "import sys, pathlib; print(pathlib.Path(sys.argv[1]).read_text())"
    transport = CommandTransport(
        [sys.executable, "-c", script, str(out), "{target}", "{term}"],
        verify=[sys.executable, "-c", verify, str(out)],
    )
    switch = PbxLineSwitch(transport, {"fax2": "trunk-b; rm -rf /"})
    switch.take("fax2", 7)
    assert out.read_text() == "trunk-b; rm -rf / 7"  # passed as one argument, never through a shell
    failing = PbxLineSwitch(CommandTransport([sys.executable, "-c", "raise SystemExit(2)"]), retries=0)
    with pytest.raises(LineSwitchError, match="exited 2"):
        failing.take("fax2", 8)


@pytest.mark.parametrize("problem", ["http500", "timeout", "wrong_token", "unreachable"])
def test_bad_webhook_answers_are_reported_and_retried_without_blocking(
    pbx: ExchangeServer, tmp_path: Path, problem: str
) -> None:
    transport = webhook(pbx, timeout=0.5)
    if problem == "http500":
        pbx.faults.add(status=500, count=2, scope="admin")
    elif problem == "timeout":
        pbx.faults.add(delay=1.5, count=1, scope="admin")
    elif problem == "wrong_token":
        transport.token = "wrong"
    else:
        transport.url = transport.verify_url = f"http://127.0.0.1:{free_port()}/routes/{DID}"
    status = tmp_path / "status.jsonl"
    switch = PbxLineSwitch(transport, TARGETS, status=status, retry_interval=0.1, retries=50)
    t0 = time.monotonic()
    with pytest.raises(LineSwitchError, match="retrying every"):
        switch.take("fax2", 2)
    assert time.monotonic() - t0 < 1.4, "take made one bounded attempt and returned"
    if problem == "wrong_token":
        transport.token = TOKEN  # the operator fixes the secret; the retries pick it up
    elif problem == "unreachable":
        transport.url = transport.verify_url = f"{pbx.addresses.admin}/routes/{DID}"
    assert switch.wait_routed(20), switch.results
    assert pbx.exchange.route_lines(DID) == ("pri-fax2",)
    results = [json.loads(line) for line in status.read_text().splitlines()]
    assert not results[0]["ok"] and results[-1]["ok"] and results[-1]["attempt"] >= 2
    assert {"401": "wrong_token", "500": "http500"}.get(
        next((c for c in ("401", "500") if c in results[0]["error"]), ""), problem
    ) == problem


@pytest.mark.parametrize("problem", ["wrong_secret", "timeout", "unreachable"])
def test_bad_ami_answers_are_reported_and_retried(pbx: ExchangeServer, problem: str) -> None:
    transport = ami(pbx, secret="wrong" if problem == "wrong_secret" else "s3cret", timeout=0.5)
    if problem == "timeout":
        pbx.faults.add(delay=1.5, count=1, scope="ami")
    elif problem == "unreachable":
        transport.port = free_port()
    switch = PbxLineSwitch(transport, TARGETS, retry_interval=0.1, retries=50)
    with pytest.raises(LineSwitchError) as info:
        switch.take("fax1", 2)
    if problem == "wrong_secret":
        assert "login as 'zf' refused: Authentication failed" in str(info.value)
        transport.secret = "s3cret"
    elif problem == "unreachable":
        transport.port = int(pbx.addresses.ami.split(":")[1])
    assert switch.wait_routed(20), switch.results
    assert pbx.exchange.db_get("fax/active") == "pri-fax1"


def test_a_newer_term_stops_the_retries_of_an_older_one(pbx: ExchangeServer) -> None:
    pbx.faults.add(status=503, count=1000, scope="admin")
    switch = PbxLineSwitch(webhook(pbx, timeout=0.5), TARGETS, retry_interval=0.05)
    with pytest.raises(LineSwitchError):
        switch.take("fax1", 2)
    pbx.faults.clear()
    switch.take("fax2", 3)
    time.sleep(0.3)
    assert pbx.exchange.route_lines(DID) == ("pri-fax2",)
    assert all(r["node"] == "fax2" for r in switch.results if r["ok"])


# ------------------------------------------------------------------------------------------------ config


def line_config(line: dict[str, Any], tmp_path: Path) -> Any:
    return parse_config(
        {"cluster": {"name": "fax", "store": "memory://t"}, "node": {"name": "fax1"}, "line": line},
        source="fax1.toml",
        base=tmp_path,
    )


def test_strategies_are_built_from_config_and_registered(pbx: ExchangeServer, tmp_path: Path) -> None:
    pm = get_plugin_manager()
    cfg = line_config(
        {
            "strategy": "pbx",
            "transport": "webhook",
            "url": f"{pbx.addresses.admin}/routes/{DID}",
            "method": "PUT",
            "body": {"lines": ["{target}"], "term": "{term}"},
            "token": TOKEN,
            "targets": TARGETS,
            "state": "shared/lines.json",
        },
        tmp_path,
    )
    validate_config(pm, cfg)
    assert cfg.line is not None
    switch = make_line_switch(pm, cfg.line, "fax1", FakeClock())
    assert isinstance(switch, PbxLineSwitch)
    assert switch.holder.path == tmp_path / "shared" / "lines.json"
    switch.take("fax1", 1)
    assert may_answer("fax1") and pbx.exchange.route_lines(DID) == ("pri-fax1",)
    for line in ({"strategy": "ysplitter"}, {"strategy": "separate", "lines": {"fax1": ["a"], "fax2": ["b"]}}):
        built = make_line_switch(pm, line_config(line, tmp_path).line, "fax1", FakeClock())  # type: ignore[arg-type]
        assert built.name == line["strategy"]


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ({"strategy": "ysplitter", "colour": 1}, "line.colour", "unknown key"),
        ({"strategy": "separate"}, "line.lines", "table of node"),
        ({"strategy": "separate", "lines": {"a": ["x"]}, "pbx": {"transport": "fax"}}, "line.pbx.transport", "one of"),
        ({"strategy": "pbx", "transport": "carrier-pigeon"}, "line.transport", "webhook, ami, command"),
        ({"strategy": "pbx", "transport": "webhook", "url": "ftp://x"}, "line.url", "http"),
        ({"strategy": "pbx", "transport": "webhook", "url": "http://x", "tls_verify": "no"}, "line.tls_verify", "true"),
        ({"strategy": "pbx", "transport": "ami", "username": "u"}, "line.secret", "missing"),
        ({"strategy": "pbx", "transport": "ami", "username": "u", "secret": "s", "port": 0}, "line.port", "TCP port"),
        ({"strategy": "pbx", "transport": "command", "command": "fax-route {node}"}, "line.command", "no shell"),
        ({"strategy": "pbx", "transport": "command", "command": ["x"], "timeout": -1}, "line.timeout", "greater"),
        ({"strategy": "pbx", "transport": "command", "command": ["x"], "retries": 1.5}, "line.retries", "whole"),
    ],
)
def test_bad_line_options_are_refused_with_their_key(
    tmp_path: Path, line: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        validate_config(get_plugin_manager(), line_config(line, tmp_path))
    assert f"fax1.toml: {key}:" in str(info.value)


def test_a_failed_line_switch_reaches_the_journal_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A third-party strategy's failure during a takeover must stand out, like the pbx strategy's own warning."""
    events = EventLog("fax1", FakeClock())
    with caplog.at_level(logging.INFO, logger="zetafailover.events"):
        events.emit("line_switch_failed", 3, error="pbx unreachable")
        events.emit("lines_switched", 3)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
