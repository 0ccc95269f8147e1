"""The simulated exchange: routing, hunt groups, busy lines, point-to-multipoint, admin API, AMI, own process."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zetafailover.testing.exchange import (
    CallCleared,
    Cause,
    ExchangeClient,
    ExchangeProcess,
    ExchangeServer,
    RemoteFaxMachine,
)

PLAN: dict[str, Any] = {
    "lines": [
        {"name": "shared", "kind": "analog", "number": "5550100"},
        {"name": "t1", "kind": "bri"},
        {"name": "t2", "kind": "bri"},
        {"name": "callers", "kind": "trunk", "channels": 8, "number": "5550123"},
    ],
    "routes": [{"number": "5550300", "lines": ["t1", "t2"]}],
    "ami_users": {"admin": "pw"},
    "token": "tok",
    "answer_timeout": 1.0,
}


@pytest.fixture
def xs() -> Iterator[ExchangeServer]:
    with ExchangeServer(PLAN) as server:
        yield server


def http(url: str, method: str = "GET", body: Any = None, token: str = "tok") -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_two_endpoints_on_an_analog_line_ring_together_first_answer_wins(xs: ExchangeServer) -> None:
    a = ExchangeClient(xs.addresses.endpoints).endpoint("a", "shared", "fax1")
    b = ExchangeClient(xs.addresses.endpoints).endpoint("b", "shared", "fax2")
    legs: dict[str, Any] = {}
    a.on_setup = lambda leg: legs.__setitem__("a", leg)
    b.on_setup = lambda leg: legs.__setitem__("b", leg)
    caller = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="c")
    out = caller.endpoint.dial("5550100")
    deadline = time.monotonic() + 5
    while len(legs) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(legs) == {"a", "b"}  # both ring
    legs["b"].answer()
    out.wait_for("connected", 5)
    with pytest.raises(CallCleared) as info:
        legs["a"].wait_for("connected", 5)
    assert info.value.cause == Cause.NON_SELECTED_USER_CLEARING
    assert xs.exchange.line_busy("shared")
    # while b is off-hook the line is busy for everyone, even after the caller hung up
    out.hangup()
    time.sleep(0.1)
    assert caller.send("5550100", [b"x"]).cause == Cause.USER_BUSY
    b.on_hook()
    assert not xs.exchange.line_busy("shared")
    [hook_off, hook_on] = [h for h in xs.exchange.hook_log if h["ep"] == "b"]
    assert hook_off["off_hook"] and not hook_on["off_hook"]


def test_unanswered_call_is_cleared_with_cause_18_and_a_dead_process_hangs_up(xs: ExchangeServer) -> None:
    client = ExchangeClient(xs.addresses.endpoints)
    a = client.endpoint("a", "shared", "fax1")
    caller = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="c")
    assert caller.send("5550100", [b"x"], answer_timeout=5).cause == Cause.NO_USER_RESPONDING
    a.off_hook()
    assert xs.exchange.line_busy("shared")
    client.close()  # the process died: its port goes on-hook
    deadline = time.monotonic() + 5
    while xs.exchange.line_busy("shared") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not xs.exchange.line_busy("shared")


def test_hunt_group_takes_the_first_line_with_a_free_channel(xs: ExchangeServer) -> None:
    m1 = RemoteFaxMachine(xs.addresses.endpoints, "t1", label="one")
    m2 = RemoteFaxMachine(xs.addresses.endpoints, "t2", label="two")
    caller = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="c")
    held = [caller.endpoint.dial("5550300") for _ in range(3)]
    for leg in held:
        leg.wait_for("connected", 5)
    labels = [c["answered_label"] for c in xs.exchange.calls_log()]
    assert labels == ["one", "one", "two"]  # BRI t1 has 2 channels, the third call hunts on to t2
    held.append(caller.endpoint.dial("5550300"))
    held[-1].wait_for("connected", 5)
    with pytest.raises(CallCleared) as info:
        caller.endpoint.dial("5550300")
    assert info.value.cause == Cause.NO_CIRCUIT_AVAILABLE
    assert caller.send("5559999", [b"x"]).cause == Cause.UNALLOCATED_NUMBER
    for m in (m1, m2, caller):
        m.close()


def test_admin_api_routes_with_term_check_token_and_faults(xs: ExchangeServer) -> None:
    url = xs.addresses.admin
    assert http(f"{url}/routes", token="")[0] == 401
    assert http(f"{url}/routes/5550300", "PUT", {"lines": ["t2"], "term": 5, "set_by": "fax2"})[0] == 200
    code, body = http(f"{url}/routes/5550300", "PUT", {"lines": ["t1"], "term": 4})
    assert code == 409 and "term 4 is stale" in body["error"]
    code, body = http(f"{url}/routes/5550300")
    assert code == 200 and body["effective"] == ["t2"] and body["term"] == 5
    assert http(f"{url}/routes/5550300", "PUT", {"lines": ["nope"], "term": 6})[0] == 404
    assert http(f"{url}/faults/pbx", "POST", {"status": 500, "count": 1, "scope": "admin"})[0] == 200
    assert http(f"{url}/routes")[0] == 500
    assert http(f"{url}/routes")[0] == 200
    assert http(f"{url}/faults/calls", "POST", {"number": "5550300", "causes": [41]})[0] == 200
    caller = RemoteFaxMachine(xs.addresses.endpoints, "callers", label="c")
    assert caller.send("5550300", [b"x"]).cause == Cause.TEMPORARY_FAILURE
    code, calls = http(f"{url}/calls")
    assert code == 200 and calls[-1]["cause"] == 41


def ami_exchange(sock: socket.socket, reader: Any, text: str) -> list[dict[str, str]]:
    sock.sendall(text.encode())
    out: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    while True:
        line = reader.readline().decode().strip()
        if not line:
            out.append(fields)
            more = fields.get("EventList") == "start" or fields.get("Event") == "DBGetResponse"
            if not more:
                return out
            fields = {}
            continue
        k, _, v = line.partition(": ")
        fields[k] = v


def test_ami_login_dbput_dbget_logoff_like_asterisk(xs: ExchangeServer) -> None:
    host, port = xs.addresses.ami.split(":")
    xs.exchange.set_route("5550400", db_key="fax/active")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"Asterisk Call Manager/")
        [r] = ami_exchange(sock, reader, "Action: DBPut\r\nFamily: fax\r\nKey: active\r\nVal: t1\r\n\r\n")
        assert r == {"Response": "Error", "Message": "Permission denied"}
        [r] = ami_exchange(sock, reader, "Action: Login\r\nUsername: admin\r\nSecret: bad\r\n\r\n")
        assert r["Message"] == "Authentication failed"
        [r] = ami_exchange(sock, reader, "Action: Login\r\nActionID: 7\r\nUsername: admin\r\nSecret: pw\r\n\r\n")
        assert r == {"Response": "Success", "ActionID": "7", "Message": "Authentication accepted"}
        [r] = ami_exchange(sock, reader, "Action: DBPut\r\nFamily: fax\r\nKey: active\r\nVal: t2\r\n\r\n")
        assert r["Response"] == "Success"
        rs = ami_exchange(sock, reader, "Action: DBGet\r\nFamily: fax\r\nKey: active\r\n\r\n")
        assert rs[0]["Response"] == "Success" and rs[1]["Event"] == "DBGetResponse" and rs[1]["Val"] == "t2"
        assert rs[2]["Event"] == "DBGetComplete"
        assert xs.exchange.route_lines("5550400") == ("t2",)
        [r] = ami_exchange(sock, reader, "Action: Logoff\r\n\r\n")
        assert r["Response"] == "Goodbye"


def test_exchange_runs_as_its_own_process(tmp_path: Path) -> None:
    proc = ExchangeProcess(PLAN, tmp_path)
    try:
        a = RemoteFaxMachine(proc.addresses.endpoints, "t1", label="one")
        caller = RemoteFaxMachine(proc.addresses.endpoints, "callers", label="c")
        result = caller.send("5550300", [b"p1", b"p2"])
        assert result.ok and result.answered_by == "one"
        code, pages = http(f"{proc.addresses.admin}/pages")
        assert code == 200 and [p["index"] for p in pages] == [0, 1] and pages[0]["to_label"] == "one"
        assert a.pages_received() == [b"p1", b"p2"]
    finally:
        proc.stop()
