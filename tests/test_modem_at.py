"""The AT layer against scripted transcripts, and the modem driver's config validation (issue 5)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from zetafailover.config import SectionConfig
from zetafailover.devices.modem.at import (
    AtChannel,
    AtError,
    AtResponse,
    AtTimeout,
    check_command,
    dle_escape,
    dle_unescape,
)
from zetafailover.devices.modem.class2 import CLASS2, CLASS20, parse_hangup
from zetafailover.devices.modem.driver import ModemDevice
from zetafailover.devices.modem_plugin import check_init_command, options
from zetafailover.errors import ConfigError


class ScriptedPort:
    """A serial port whose modem side is a function: written command line → bytes to answer (or None: silence)."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.timeout: float | None = 0.2
        self.written = bytearray()
        self._in = bytearray()
        self._cond = threading.Condition()
        self._line = bytearray()

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._in += data
            self._cond.notify_all()

    def write(self, data: bytes) -> int:
        self.written += data
        for b in data:
            self._line.append(b)
            if b == 0x0D:
                reply = self.answer(bytes(self._line[:-1]))
                self._line.clear()
                if reply:
                    self.feed(reply)
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self._in)

    def read(self, size: int = 1) -> bytes:
        deadline = time.monotonic() + (self.timeout or 0.0)
        with self._cond:
            while not self._in and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            out = bytes(self._in[:size])
            del self._in[:size]
            return out

    def reset_input_buffer(self) -> None:
        self._in.clear()


def table(replies: dict[bytes, bytes]) -> Callable[[bytes], bytes | None]:
    return replies.get


def test_ok_with_echo_and_information_lines() -> None:
    port = ScriptedPort(table({b"ATI": b"ATI\r\r\nspandsp\r\n\r\nOK\r\n"}))
    r = AtChannel(port).command("ATI", 1.0)
    assert r.result == "OK" and r.lines == ("spandsp",)
    assert bytes(port.written) == b"ATI\r"


def test_numeric_results_and_connect_with_rate() -> None:
    port = ScriptedPort(table({b"AT": b"0\r", b"ATD1": b"\r\nCONNECT 9600\r\n", b"ATD2": b"7\r"}))
    at = AtChannel(port)
    assert at.command("AT", 1.0).result == "OK"
    assert at.command("ATD1", 1.0).result == "CONNECT"
    assert at.command("ATD2", 1.0).result == "BUSY"


def test_a_one_digit_information_line_is_not_a_result_once_the_modem_answers_in_words() -> None:
    """Many modems answer ATI with a product code; one of one digit ("1") must not read as CONNECT once ATV1 is
    on, nor a "2" (say, the answer to AT+FBO?) as a RING."""
    port = ScriptedPort(table({b"ATI": b"\r\n1\r\n\r\nOK\r\n", b"AT+FBO?": b"\r\n2\r\n\r\nOK\r\n"}))
    at = AtChannel(port)
    at.verbose = True
    r = at.command("ATI", 1.0)
    assert r.result == "OK" and r.lines == ("1",)
    r = at.command("AT+FBO?", 1.0)
    assert r.result == "OK" and r.lines == ("2",) and at.rings == 0
    at.verbose = False  # before ATV1 is acknowledged a lone digit is a numeric result code
    assert at.command("ATI", 1.0).result == "CONNECT"


def test_the_driver_reads_words_only_after_atv1_and_numbers_again_after_atz() -> None:
    seen: list[tuple[str, bool]] = []
    device = ModemDevice("m", "n", "/dev/null")

    class Recorder(AtChannel):
        def command(self, command: str, timeout: float = 5.0, **kw: object) -> AtResponse:
            seen.append((command, self.verbose))
            if command == "ATI":
                return AtResponse(command, "OK", ("1",))
            if command == "AT+FCLASS=?":
                return AtResponse(command, "OK", ("0,1,2,2.0",))
            return AtResponse(command, "OK", ())

    device._at = Recorder(ScriptedPort(table({})))
    device._at.verbose = True  # as left by an earlier initialisation
    device._initialise()
    assert ("ATZ", False) in seen, "ATZ may restore ATV0: numbers must be read as results around it"
    assert ("ATE0V1Q0", False) in seen
    assert ("ATI", True) in seen and device._at.verbose


def test_garbage_bytes_and_partial_lines_are_tolerated() -> None:
    def later() -> None:
        port.feed(b"\x00\xff\r\n+FC")
        time.sleep(0.15)
        port.feed(b"S:1,5,0\x80,2\r")
        time.sleep(0.15)
        port.feed(b"\nOK\r\n")

    def answer(line: bytes) -> None:
        threading.Thread(target=later).start()

    port = ScriptedPort(answer)
    r = AtChannel(port).command("AT+FCS?", 2.0)
    assert r.result == "OK" and r.value("+FCS:") == "1,5,0,2"


def test_unsolicited_ring_is_counted_not_mistaken_for_an_answer() -> None:
    rings: list[int] = []
    port = ScriptedPort(table({b"AT": b"\r\nRING\r\n\r\nOK\r\n"}))
    at = AtChannel(port, on_ring=lambda: rings.append(1))
    port.feed(b"\r\nRING\r\n")
    assert at.poll(0.3) == ["RING"]
    assert at.command("AT", 1.0).result == "OK"
    assert at.rings == 2 and len(rings) == 2


def test_late_answer_of_an_earlier_command_is_not_taken_for_the_next() -> None:
    port = ScriptedPort(table({b"ATE0": b"\r\nOK\r\n", b"ATI": b"\r\nmodel\r\n\r\nERROR\r\n"}))
    at = AtChannel(port)
    port.feed(b"\r\nOK\r\n")  # a stray late OK
    assert at.command("ATI", 1.0).result == "ERROR"


def test_a_modem_that_stops_answering_times_out() -> None:
    port = ScriptedPort(lambda line: None)
    started = time.monotonic()
    with pytest.raises(AtTimeout, match="no final result to AT"):
        AtChannel(port).command("AT", 0.5)
    assert 0.4 < time.monotonic() - started < 5.0


def test_expect_ok_names_command_and_answer() -> None:
    port = ScriptedPort(table({b"AT+FCLASS=2.0": b"\r\nERROR\r\n"}))
    with pytest.raises(AtError, match=r"'ERROR' to 'AT\+FCLASS=2.0'"):
        AtChannel(port).expect_ok("AT+FCLASS=2.0", 1.0)


@pytest.mark.parametrize("bad", ["ATD123\rATH1", "ATD123\n", "ATD\x00", "D123", "AT" + "1" * 200, "ATD1\x1b"])
def test_commands_with_control_characters_never_reach_the_port(bad: str) -> None:
    port = ScriptedPort(lambda line: b"\r\nOK\r\n")
    with pytest.raises(AtError):
        AtChannel(port).command(bad, 1.0)
    assert port.written == b""
    with pytest.raises(AtError):
        check_command(bad)


def test_dle_data_roundtrip_and_receive() -> None:
    data = bytes(range(256)) * 3
    escaped = dle_escape(data)
    assert escaped.count(b"\x10\x10") == 3
    assert dle_unescape(escaped + b"\x10\x03junk") == (data, True)
    port = ScriptedPort(lambda line: None)
    at = AtChannel(port)
    port.feed(escaped[:100])
    threading.Timer(0.1, lambda: port.feed(escaped[100:] + b"\x10\x1a\x10\x03\r\nOK\r\n")).start()
    assert at.read_data(2.0) == data + b"\x10\x10"
    assert at.wait_result(1.0).result == "OK"
    with pytest.raises(AtTimeout):
        at.read_data(0.3)


def test_hangup_codes_class2_decimal_and_class20_hex() -> None:
    assert parse_hangup(AtResponse("", "OK", ("+FHS:52",)), CLASS20) == 52
    assert parse_hangup(AtResponse("", "OK", ("+FHS:A0",)), CLASS20) == 100
    assert parse_hangup(AtResponse("", "OK", ("+FHNG:54",)), CLASS2) == 54
    assert parse_hangup(AtResponse("", "OK", ("+FCS:1",)), CLASS20) is None


# ------------------------------------------------------------------------------------------------ config


def section(**opts: object) -> SectionConfig:
    return SectionConfig("modem", "m0", opts, "fax1.toml: device[0]", Path("/etc/zf"))


def test_config_defaults_and_paths() -> None:
    opts = options(section(port="/dev/ttyS0", log="m.jsonl", init=["AT&K4", "ATL0M1"]))
    assert opts["class"] == "2.0" and opts["flow"] == "xonxoff" and opts["speed"] == 19200
    assert opts["log"] == Path("/etc/zf/m.jsonl") and opts["init"] == ["AT&K4", "ATL0M1"]


@pytest.mark.parametrize(
    ("opts", "where", "why"),
    [
        ({}, "device[0].port", "missing"),
        ({"port": "/dev/x", "class": "1.0"}, "device[0].class", '"1"'),
        ({"port": "/dev/x", "class": 2.0}, "device[0].class", "a string"),
        ({"port": "/dev/x", "speed": 1234}, "device[0].speed", "one of"),
        ({"port": "/dev/x", "flow": "dtr"}, "device[0].flow", "xonxoff"),
        ({"port": "/dev/x", "init": ["ATS0=1"]}, "device[0].init[0]", "auto-answer"),
        ({"port": "/dev/x", "init": ["ATD5551234"]}, "device[0].init[0]", "dial"),
        ({"port": "/dev/x", "init": ["AT&K3", "AT&D0"]}, "device[0].init[1]", "DTR"),
        ({"port": "/dev/x", "init": ["AT+FAA=1;+FCR=1"]}, "device[0].init[0]", "adaptive"),
        ({"port": "/dev/x", "init": ["AT&K3\rATD1"]}, "device[0].init[0]", "control"),
        ({"port": "/dev/x", "local_id": 'a"b'}, "device[0].local_id", "20 printable"),
        ({"port": "/dev/x", "rings": 0}, "device[0].rings", "1..20"),
        ({"port": "/dev/x", "dial_timeout": -1}, "device[0].dial_timeout", "above 0"),
        ({"port": "/dev/x", "bogus": 1}, "device[0].bogus", "unknown key"),
    ],
)
def test_config_errors_name_file_key_and_reason(opts: dict[str, object], where: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        options(section(**opts))
    text = str(info.value)
    assert "fax1.toml" in text and where in text and why in text, text


def test_init_commands_that_are_safe() -> None:
    for ok in ("ATS0=0", "AT&D2", "AT+FCR=1;+FLO=2", "ATM0L0X4"):
        assert check_init_command(ok) == ok


def test_the_driver_is_registered_as_a_plugin() -> None:
    from zetafailover.plugins import available, get_plugin_manager

    assert "modem" in available(get_plugin_manager(load_entrypoints=False), "zetafailover_device_drivers")
