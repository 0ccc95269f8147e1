"""The AT command layer: command/response with per-command timeouts, result codes, DLE data, flow control.

:class:`AtChannel` talks to a modem over anything shaped like a :class:`serial.Serial` (``read``, ``write``,
``timeout``, ``in_waiting``, ``reset_input_buffer``; optionally ``xonxoff`` and ``dtr``). It

* sends one command line at a time (printable ASCII only: a CR, LF or control byte in a command is refused
  before anything reaches the port) and collects the information lines up to a **final result code**
  (``OK``, ``CONNECT``, ``ERROR``, ``NO CARRIER``, ``BUSY``, ``NO DIALTONE``, ``NO ANSWER``, ``+FCERROR``),
  verbose (``ATV1``) or numeric (``ATV0``); the echo of the command (``ATE1``) is skipped;
* tolerates what real lines deliver: partial lines, bytes outside printable ASCII (dropped), empty lines;
* sets aside unsolicited ``RING`` (counted in :attr:`AtChannel.rings` and passed to ``on_ring``) wherever it
  appears;
* moves page data: DTE→DCE with every 0x10 doubled and ``<DLE><ETX>`` or ``<DLE><ppm>`` at the end;
  DCE→DTE with ``<DLE><DLE>`` = one 0x10, ``<DLE><SUB>`` = two, up to ``<DLE><ETX>``.

Timing: every call that reads is bounded by the ``timeout`` it is given (:class:`AtTimeout` otherwise); a
write may block while the modem holds XOFF / CTS, bounded by the port's ``write_timeout``.
Atomicity: none — one thread at a time owns a channel (the driver holds its port lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from zetafailover.errors import DeviceError

__all__ = [
    "CAN",
    "DC1",
    "DC2",
    "DLE",
    "ETX",
    "FINAL_RESULTS",
    "SUB",
    "XOFF",
    "XON",
    "AtChannel",
    "AtError",
    "AtResponse",
    "AtTimeout",
    "SerialPort",
    "check_command",
    "dle_decode",
    "dle_escape",
    "dle_unescape",
    "split_commands",
]

DLE, ETX, DC1, DC2, DC3, CAN, SUB = 0x10, 0x03, 0x11, 0x12, 0x13, 0x18, 0x1A
XON, XOFF = DC1, DC3

FINAL_RESULTS = frozenset(
    {"OK", "CONNECT", "ERROR", "NO CARRIER", "BUSY", "NO DIALTONE", "NO ANSWER", "+FCERROR", "FCERROR"}
)
"""Result codes that end a command."""

NUMERIC_RESULTS = {
    "0": "OK",
    "1": "CONNECT",
    "2": "RING",
    "3": "NO CARRIER",
    "4": "ERROR",
    "6": "NO DIALTONE",
    "7": "BUSY",
    "8": "NO ANSWER",
}
"""ITU-T V.250 numeric result codes (``ATV0``) and their verbose names."""


class SerialPort(Protocol):
    """What :class:`AtChannel` needs from a port (a :class:`serial.Serial` has all of it)."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    @property
    def in_waiting(self) -> int: ...

    def reset_input_buffer(self) -> None: ...


class AtError(DeviceError):
    """The modem answered a command with something other than what was needed (names command and answer)."""


class AtTimeout(AtError):
    """The modem did not finish answering within the command's timeout (it may have stopped answering)."""


@dataclass(frozen=True, slots=True)
class AtResponse:
    """The answer to one command: its information lines and the final result code."""

    command: str
    result: str
    lines: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result == "OK"

    def value(self, *prefixes: str) -> str | None:
        """The text after the first line starting with one of ``prefixes`` (e.g. ``"+FHS:"``), or None."""
        for line in self.lines:
            for prefix in prefixes:
                if line.upper().startswith(prefix.upper()):
                    return line[len(prefix) :].strip()
        return None

    def text(self) -> str:
        """The information lines joined with ``; `` (for status displays)."""
        return "; ".join(self.lines)


def check_command(command: str) -> str:
    """Return ``command`` if it is safe to send as one AT command line; raise :class:`AtError` otherwise.

    Safe: starts with ``AT`` (any case), printable ASCII only (no CR, LF, control bytes), at most 120
    characters. The last line of defence against command injection: nothing else is ever written in
    command state.
    """
    if not command[:2].upper() == "AT":
        raise AtError(f"refusing to send {command!r}: an AT command must start with 'AT'")
    if len(command) > 120:
        raise AtError(f"refusing to send {command[:40]!r}…: longer than 120 characters")
    bad = [c for c in command if not (" " <= c <= "~")]
    if bad:
        raise AtError(f"refusing to send {command!r}: it contains the control or non-ASCII character {bad[0]!r}")
    return command


def split_commands(body: str) -> list[str]:
    """Split the text after ``AT`` into single commands: basic ones back to back, extended ones up to ``;``."""
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        u = c.upper()
        if c in " ;":
            i += 1
            continue
        if u in "+-":
            j = i
            quoted = False
            while j < n and (quoted or body[j] != ";"):
                if body[j] == '"':
                    quoted = not quoted
                j += 1
            out.append(body[i:j])
            i = j + 1
        elif u == "D":
            out.append(body[i:])
            break
        elif u == "S":
            j = i + 1
            while j < n and body[j].isdigit():
                j += 1
            if j < n and body[j] == "?":
                j += 1
            elif j < n and body[j] == "=":
                j += 1
                while j < n and body[j].isdigit():
                    j += 1
            out.append(body[i:j])
            i = j
        elif u == "&":
            j = i + 2
            while j < n and body[j].isdigit():
                j += 1
            out.append(body[i:j])
            i = j
        else:
            j = i + 1
            while j < n and body[j].isdigit():
                j += 1
            out.append(body[i:j])
            i = j
    return out


def dle_escape(data: bytes) -> bytes:
    """Page data for the DCE: every 0x10 doubled (the caller appends ``<DLE><ETX>`` or ``<DLE><ppm>``)."""
    return data.replace(b"\x10", b"\x10\x10")


def dle_decode(data: bytes | bytearray, out: bytearray, stops: bytes = bytes([ETX])) -> tuple[int, int | None]:
    """Undo DLE escaping of ``data`` into ``out`` until ``<DLE><stop>`` for a byte of ``stops``.

    Returns ``(consumed, stop)``: how many bytes of ``data`` were used, and the stop byte, or None when the data
    ran out first (a lone trailing DLE is left unconsumed, for the next chunk). ``<DLE><DLE>`` is one DLE and
    ``<DLE><SUB>`` two; other ``<DLE>x`` pairs are dropped.
    """
    i = 0
    while i < len(data):
        b = data[i]
        if b != DLE:
            out.append(b)
            i += 1
            continue
        if i + 1 >= len(data):
            break
        n = data[i + 1]
        i += 2
        if n == DLE:
            out.append(DLE)
        elif n == SUB:
            out += b"\x10\x10"
        elif n in stops:
            return i, n
    return i, None


def dle_unescape(data: bytes) -> tuple[bytes, bool]:
    """Undo the DCE's escaping of a complete buffer: ``(data, saw DLE ETX)``; stops at ``<DLE><ETX>``."""
    out = bytearray()
    _used, stop = dle_decode(data, out)
    return bytes(out), stop == ETX


@dataclass
class AtChannel:
    """Command/response and data transfer on one modem port (see the module docstring).

    ``clock`` gives monotonic seconds (injectable for tests); ``on_ring`` is called for each unsolicited
    ``RING`` (never blocks the caller for long: it should only count or enqueue).
    """

    port: SerialPort
    on_ring: Callable[[], None] | None = None
    clock: Callable[[], float] = time.monotonic
    log: Callable[[str, str], None] | None = None
    """Optional trace: called with ``(">" | "<", text)`` for every command sent and line received."""
    rings: int = 0
    verbose: bool = False
    """True once the modem has acknowledged ``ATV1`` (the driver sets it): a line of one digit is then an
    information line (an ``ATI`` product code, the answer to ``AT+FBO?``), not a numeric result code. While it is
    False — before initialisation, or after ``ATZ`` restored a profile that may say ``ATV0`` — a lone digit is
    read as the numeric result it would be (``0`` OK, ``2`` RING, ``3`` NO CARRIER …)."""
    _buf: bytearray = field(default_factory=bytearray)
    _lf_due: bool = False

    # --------------------------------------------------------------------------------------- commands

    def command(self, command: str, timeout: float = 5.0, *, finals: Iterable[str] = FINAL_RESULTS) -> AtResponse:
        """Send ``command`` and collect lines up to a final result code. Raises :class:`AtTimeout` after ``timeout``.

        Lines already waiting (late answers to an earlier command, RINGs) are consumed first, so they cannot be
        mistaken for this command's answer.
        """
        check_command(command)
        self.drain()
        self._trace(">", command)
        self.port.write(command.encode("ascii") + b"\r")
        return self.wait_result(timeout, finals=finals, command=command)

    def expect_ok(self, command: str, timeout: float = 5.0) -> AtResponse:
        """:meth:`command`, raising :class:`AtError` unless the result is ``OK``."""
        response = self.command(command, timeout)
        if not response.ok:
            raise AtError(f"modem answered {response.result!r} to {command!r}")
        return response

    def wait_result(self, timeout: float, *, finals: Iterable[str] = FINAL_RESULTS, command: str = "") -> AtResponse:
        """Collect information lines up to a final result code without sending anything first."""
        final_set = frozenset(finals)
        deadline = self.clock() + timeout
        lines: list[str] = []
        while True:
            line = self.read_line(deadline - self.clock())
            if line is None:
                raise AtTimeout(
                    f"no final result to {command or 'the data'} within {timeout:g} s"
                    + (f" (got {lines!r})" if lines else "")
                )
            if command and line.upper() == command.upper():
                continue  # our own echo (ATE1)
            word = NUMERIC_RESULTS.get(line, line) if not self.verbose and line.isdigit() and len(line) == 1 else line
            if word == "RING":
                self._ring()
                continue
            if word in final_set or (word.split(" ")[0] == "CONNECT" and "CONNECT" in final_set):
                return AtResponse(command, "CONNECT" if word.startswith("CONNECT") else word, tuple(lines))
            lines.append(line)

    def read_line(self, timeout: float) -> str | None:
        """The next non-empty line (without CR/LF, non-printable bytes dropped), or None after ``timeout``."""
        deadline = self.clock() + max(0.0, timeout)
        while True:
            self._skip_lf()
            idx = min((i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0), default=-1)
            if idx >= 0:
                raw = bytes(self._buf[:idx])
                cr = self._buf[idx] == 0x0D
                del self._buf[: idx + 1]
                self._lf_due = cr
                self._skip_lf()
                text = "".join(chr(b) for b in raw if 0x20 <= b <= 0x7E).strip()
                if text:
                    self._trace("<", text)
                    return text
                continue
            remaining = deadline - self.clock()
            if remaining <= 0:
                return None
            if not self._fill(remaining) and self.clock() >= deadline:
                return None

    def poll(self, timeout: float) -> list[str]:
        """Lines arriving within ``timeout`` while idle (RINGs are counted and included)."""
        out: list[str] = []
        line = self.read_line(timeout)
        while line is not None:
            if line == "RING" or (line == "2" and not self.verbose):
                self._ring()
                line = "RING"
            out.append(line)
            line = self.read_line(0.0) if self._buf else None
        return out

    def drain(self) -> list[str]:
        """Consume whatever the modem already sent (RINGs counted). Never blocks."""
        out: list[str] = []
        waiting = self.port.in_waiting
        if waiting:
            self._buf += self.port.read(waiting)
        while b"\r" in self._buf or b"\n" in self._buf:
            line = self.read_line(0.0)
            if line is None:
                break
            if line == "RING" or (line == "2" and not self.verbose):
                self._ring()
            out.append(line)
        self._buf.clear()
        return out

    # ------------------------------------------------------------------------------------------ data

    def write_data(self, data: bytes, chunk: int = 1024) -> None:
        """Write page data DLE-escaped (no terminator). May block on flow control (port ``write_timeout``)."""
        escaped = dle_escape(data)
        for i in range(0, len(escaped), chunk):
            self.port.write(escaped[i : i + chunk])

    def write_raw(self, data: bytes) -> None:
        """Write bytes unchanged (``<DLE><ETX>``, ``<DLE>,``, ``<DC2>``, ``<CAN>``…)."""
        self.port.write(data)

    def read_data(self, timeout: float, *, idle_timeout: float | None = None) -> bytes:
        """Receive DLE-escaped data up to ``<DLE><ETX>``; :class:`AtTimeout` if it does not end in ``timeout``
        (or no byte comes for ``idle_timeout``). Bytes after the ``<DLE><ETX>`` stay buffered for :meth:`read_line`.
        """
        deadline = self.clock() + timeout
        last = self.clock()
        out = bytearray()
        self._skip_lf()
        # The LF of "CONNECT<CR><LF>" may arrive after we start reading (a real modem writes it separately):
        # it is not data. Seen with iaxmodem: a stray 0x0A in front of a frame makes its address field wrong.
        lf_due = self._lf_due
        self._lf_due = False
        pending = self._buf
        self._buf = bytearray()
        while True:
            if lf_due and pending:
                if pending[0] == 0x0A:
                    del pending[0]
                lf_due = False
            i, stop = dle_decode(pending, out)
            if stop is not None:
                self._buf = bytearray(pending[i:])
                return bytes(out)
            pending = pending[i:]
            now = self.clock()
            if now >= deadline or (idle_timeout is not None and now - last >= idle_timeout):
                raise AtTimeout(f"page data did not end (no <DLE><ETX>) within {timeout:g} s; {len(out)} bytes")
            got = self._read_some(min(deadline - now, 0.2))
            if got:
                last = self.clock()
                pending += got

    def wait_byte(self, wanted: Iterable[int], timeout: float) -> int:
        """Wait for one of ``wanted`` bytes (e.g. XON after CONNECT in Class 2), skipping others."""
        wanted_set = set(wanted)
        deadline = self.clock() + timeout
        while True:
            while self._buf:
                b = self._buf.pop(0)
                if b in wanted_set:
                    return b
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise AtTimeout(f"none of {sorted(wanted_set)} received within {timeout:g} s")
            self._fill(remaining)

    # --------------------------------------------------------------------------------------- inside

    def _skip_lf(self) -> None:
        """Drop the LF of a CR LF pair whose CR ended the last line (it may arrive after the CR)."""
        if self._lf_due and self._buf:
            if self._buf[0] == 0x0A:
                del self._buf[0]
            self._lf_due = False

    def _fill(self, remaining: float) -> bool:
        got = self._read_some(min(remaining, 0.2))
        if got:
            self._buf += got
            return True
        return False

    def _read_some(self, wait: float) -> bytes:
        self.port.timeout = max(0.0, wait)
        waiting = self.port.in_waiting
        return self.port.read(waiting if waiting > 0 else 1)

    def _ring(self) -> None:
        self.rings += 1
        if self.on_ring is not None:
            self.on_ring()

    def _trace(self, way: str, text: str) -> None:
        if self.log is not None:
            self.log(way, text)
