"""A simulated fax modem on a pseudo-terminal, attached to an analog line of the simulated exchange.

The slave side of the pty (:attr:`SimulatedModem.path`, or a symlink to it) is what a fax program opens —
our driver, efax, mgetty — exactly like ``/dev/ttyS0``. The modem speaks the AT command set as real fax
modems do: ``E0/E1``, ``V0/V1``, ``Q0/Q1``, ``Z``, ``&F``, ``&D``, ``&C``, ``&K``, ``I``/``I3``, ``L``/``M``/``X``,
``S``-registers (``S0=n`` auto-answer after n rings, ``Sn?``), ``;``-separated extended commands, ``A``,
``D``, ``H``; ``+FCLASS=?`` / ``+FCLASS=<c>`` (``ERROR`` for a class it does not offer); **Class 2.0** (``+FDT``,
``+FDR``, ``+FIS``, ``+FCC``, ``+FLI``, ``+FKS``, ``+FPS``, ``+FHS:`` in hex) and the old **Class 2** names
(``+FDIS``, ``+FDCC``, ``+FLID``, ``+FET``, ``+FK``, ``+FPTS``, ``+FHNG:`` in decimal, XON before data,
``<DC1>`` trigger); **Class 1** (``+FTH=3``, ``+FRH=3``, ``+FTM``, ``+FRM``, ``+FTS``, ``+FRS``).

In Class 1 the host runs T.30, but the exchange carries whole pages, not modulated signals: the simulated modem
is a local **T.30 gateway** — it plays the far end's T.30 (DIS, DCS, TCF, CFR/FTT, MCF/RTN, DCN) towards the
host and maps pages onto the exchange's page protocol. HDLC frames it passes to the host go through real bit-level
framing (:func:`~zetafailover.devices.modem.t30.hdlc_encode`/``hdlc_decode``) and carry their FCS.

T.30 runs inside the modem, as in a real Class 2 modem; what crosses the "telephone line" is the simulated
exchange's call and page protocol: a page the host sends becomes one exchange page (a single-page TIFF-F),
and the modem answers the host's post-page message with ``OK`` only when the far end confirmed it (MCF); a
page received from the exchange is delivered to the host (MH, LSB first, with RTC) and confirmed to the far
end only when the host issues the next ``+FDR`` — the host's "page is safe" signal.

DTR: a pty has no modem-control lines, so the host closing the port — including the kernel closing it for a
process that died — is DTR dropping: reading the master then fails with EIO, and with ``&D2`` (the default)
the modem hangs up and goes on-hook. A host that is paused keeps the port open: the modem stays off-hook and
the line stays busy. Run the modem in a process of its own (:mod:`zetafailover.testing.modem.__main__`) so that
it outlives its host, as hardware does.

Bit order of page data (Class 2.0 ``+FBO=<n>``, Class 2 ``+FBOR=<n>``, n = 0..3): bit 0 of n set = phase C data
bit-reversed (MSB first) both ways between host and modem; bit 1 (HDLC frames, which Class 2 does not expose) is
accepted and ignored. :class:`ModemProfile` can make the modem ignore the setting, as many real Class 2 modems
do (``data_to_host`` / ``data_from_host``). Class 1 is unaffected.

Timing: one thread per modem; every wait is bounded (dial ``S7`` seconds, page confirmation ``page_timeout``,
Phase C inactivity ``+FCT``). Atomicity: none needed — the modem thread owns all state.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import itertools
import os
import queue
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zetafailover.devices.modem import t30
from zetafailover.devices.modem.at import DC1, DC2, DLE, ETX, dle_decode, split_commands
from zetafailover.devices.modem.pages import decode_line_page
from zetafailover.spool import t4
from zetafailover.spool.tiff import page_strip, validate_tiff_bytes, write_tiff
from zetafailover.testing.exchange.client import CallCleared, CallLeg, EndpointHandle, ExchangeClient, WaitTimedOut

__all__ = ["Class1Faults", "ModemProfile", "SimulatedModem"]

_PAGE_STOPS = bytes([ETX, ord(","), ord(";"), ord(".")])
"""What ends page data from the host: ``<DLE><ETX>`` or ``<DLE>`` and a post-page message (Class 2.0)."""

_REVERSE = bytes(int(format(b, "08b")[::-1], 2) for b in range(256))
_serial = itertools.count(1)

_NUMERIC = {"OK": "0", "CONNECT": "1", "RING": "2", "NO CARRIER": "3", "ERROR": "4", "NO DIALTONE": "6",
            "BUSY": "7", "NO ANSWER": "8"}  # fmt: skip
_DEFAULT_SREGS = {0: 0, 1: 0, 2: 43, 3: 13, 4: 10, 5: 8, 6: 2, 7: 60, 8: 2, 10: 14}
_PARAMS_20 = ("+FCC", "+FIS", "+FLI", "+FPI", "+FNR", "+FLO", "+FBO", "+FPP", "+FCT", "+FIE", "+FCR", "+FAA",
              "+FCQ", "+FAP", "+FSP", "+FMS", "+FBU", "+FNS", "+FPA", "+FPW", "+FSA", "+FRQ", "+FHS",
              "+FIT")  # fmt: skip
_PARAMS_2 = ("+FDCC", "+FDIS", "+FLID", "+FCIG", "+FSPL", "+FMINSP", "+FBOR", "+FTBC", "+FPHCTO", "+FBUG",
             "+FCR", "+FAA", "+FCQ", "+FLPL", "+FECM", "+FREL", "+FBADLIN", "+FBADMUL")  # fmt: skip
_FAX_CLASSES = ("1", "1.0", "2", "2.0")
_DATA_ORDERS = ("fbo", "direct", "reversed")
_CLASS1_QUERIES = {"+FTM": "24,48,72,73,74,96,97,98,121,122,145,146", "+FRM": "24,48,72,73,74,96,97,98,121,122,145,146",
                   "+FTH": "3", "+FRH": "3", "+FTS": "0-255", "+FRS": "0-255"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModemProfile:
    """What the simulated modem says about itself, which service classes it offers and how it orders page bits.

    ``data_to_host`` (received page data the modem gives the host) and ``data_from_host`` (page data the host
    sends) are each ``"fbo"`` (default: follow ``+FBO``/``+FBOR`` bit 0 — 0 direct, LSB first; 1 reversed),
    ``"direct"`` or ``"reversed"`` (always, whatever the host asked — how many real Class 2 modems behave, the
    "Rockwell bug"). Class 2 and 2.0 only; Class 1 page data is always direct. ValueError for another value.
    """

    classes: tuple[str, ...] = ("0", "1", "2", "2.0")
    manufacturer: str = "zetafailover"
    model: str = "simulated fax modem"
    revision: str = "1.0"
    info3: str = "zetafailover.testing.modem"
    data_to_host: str = "fbo"
    data_from_host: str = "fbo"

    def __post_init__(self) -> None:
        for name in ("data_to_host", "data_from_host"):
            value = getattr(self, name)
            if value not in _DATA_ORDERS:
                raise ValueError(f"ModemProfile.{name} = {value!r}: one of {', '.join(_DATA_ORDERS)}")


@dataclass(frozen=True, slots=True)
class Class1Faults:
    """Faults the far end of a Class 1 call injects (the simulator's T.30 gateway), for error-path tests.

    Each applies afresh to every call the modem makes or answers; set :attr:`SimulatedModem.class1_faults`
    between calls to change them.
    """

    ftt: int = 0
    """Answer the first ``ftt`` TCFs of a call with FTT, however good they are (the line "cannot train")."""
    rtn_page: int | None = None
    """The page (0-based, counted in the call) that the far end answers with RTN …"""
    rtn_times: int = 1
    """… this many times (then MCF as usual); a large number means always."""
    ignore: frozenset[str] = frozenset()
    """Frame names the far end never hears ("DCS", "MPS", "EOP", "DIS"…): it does not react at all, so the
    host's response timer (T4 for a sender, T1 for a receiver waiting for DCS) runs out."""
    drop_in_page: int | None = None
    """The line drops in the middle of this page (0-based, counted in the call): while the host sends it, the
    modem reports ``NO CARRIER`` after the first bytes; while the host receives it, half the page arrives, then
    ``<DLE><ETX>`` and ``NO CARRIER``. The exchange call is cleared either way."""


class _Hangup(Exception):
    """The call ended while the modem was doing something for it."""

    def __init__(self, cause: int) -> None:
        super().__init__(f"call ended with cause {cause}")
        self.cause = cause


class _DtrDropped(Exception):
    """The host closed the port (DTR low)."""


@dataclass
class _State:
    echo: bool = True
    verbose: bool = True
    quiet: bool = False
    dtr_mode: int = 2
    fclass: str = "0"
    sregs: dict[int, int] = field(default_factory=lambda: dict(_DEFAULT_SREGS))
    params: dict[str, str] = field(default_factory=dict)
    fine: bool = True
    copy_bad: bool = False


class SimulatedModem:
    """One simulated fax modem (see the module docstring).

    ``exchange`` is the exchange's endpoint address, ``line`` the analog line it plugs into (two modems on one
    line form a Y-splitter); ``link`` (optional) a symlink created to the pty slave. ``page_timeout`` bounds the
    wait for the far end's confirmation of a page and for the next page of an incoming fax.
    Timing: the constructor connects to the exchange (bounded by ``timeout``); :meth:`close` returns within a
    second. Thread-safe to construct and close from any thread.
    """

    def __init__(
        self,
        exchange: str,
        line: str,
        *,
        label: str = "",
        link: Path | None = None,
        profile: ModemProfile | None = None,
        page_timeout: float = 60.0,
        timeout: float = 5.0,
        transcript: Path | None = None,
        min_page_seconds: float = 0.0,
        class1_faults: Class1Faults | None = None,
    ) -> None:
        self.profile = profile or ModemProfile()
        self.label = label or f"modem{next(_serial)}"
        self.page_timeout = page_timeout
        self.transcript = transcript
        self.min_page_seconds = min_page_seconds
        """A page transfer takes at least this long (real modems need seconds; efax divides by the page time)."""
        self.class1_faults = class1_faults or Class1Faults()
        """Faults of the far end in Class 1 calls (see :class:`Class1Faults`); read at the start of each call."""
        self.commands: list[str] = []
        """Every command line the host sent (from ``AT`` on, as received), in order — the AT flow, for tests."""
        self.host_frames: list[tuple[float, t30.Frame]] = []
        """Class 1: every HDLC frame the host sent, with the monotonic time it was complete."""
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.slave_path = os.ttyname(slave)
        os.close(slave)
        self.link = link
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.slave_path)
        self._client = ExchangeClient(exchange, timeout=timeout)
        ep = f"{self.label}/modem/{os.getpid()}/{next(_serial)}"
        self.endpoint: EndpointHandle = self._client.endpoint(ep, line, self.label)
        self.endpoint.on_setup = self._on_setup
        self._incoming: queue.SimpleQueue[CallLeg] = queue.SimpleQueue()
        self._st = _State()
        self._dtr = False
        self._line = bytearray()
        self._rx = bytearray()
        self._call: CallLeg | None = None
        self._role = ""
        self._ringing: CallLeg | None = None
        self._rings = 0
        self._off_hook = False
        self._tx_index = 0
        self._tx_ppm = -1
        self._rx_index = 0
        self._pending_confirm: int | None = None
        self._rx_last = False
        self._page_started = 0.0
        self._closed = threading.Event()
        self.hangups: list[str] = []
        self.response_gaps: list[float] = []
        """Class 1: seconds between the end of what the modem last gave the host and the host's next
        ``AT+FTH=3`` (T.30 wants ≥ 75 ms of silence before a station answers); -1 when nothing came before."""
        self._c1 = _C1State("")
        """Why each call ended (for tests): ``dtr``, ``ath``, ``remote``, ``atz``…"""
        self._thread = threading.Thread(target=self._run, name=f"simmodem-{self.label}", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        """The device path a host opens (the symlink if one was made)."""
        return str(self.link) if self.link is not None else self.slave_path

    @property
    def off_hook(self) -> bool:
        return self._off_hook or self._call is not None

    def close(self) -> None:
        """Hang up, leave the exchange, close the pty. Idempotent."""
        self._closed.set()
        self._thread.join(2.0)
        with contextlib.suppress(Exception):
            self._client.close()
        with contextlib.suppress(OSError):
            os.close(self._master)
        if self.link is not None:
            with contextlib.suppress(OSError):
                self.link.unlink()

    # ------------------------------------------------------------------------------------------ loop

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._read(0.05)
                if self._rx:
                    data, self._rx = bytes(self._rx) + data, bytearray()
                if data:
                    self._feed(data)
                self._events()
            except _DtrDropped:
                self._dtr_dropped()
            except OSError as exc:
                if exc.errno in (errno.EBADF,):
                    return
                time.sleep(0.05)
            except Exception as exc:
                self._trace("!", repr(exc).encode())
                time.sleep(0.05)
        self._hangup_call(16, "closed")

    def _read(self, wait: float) -> bytes:
        """Bytes from the host, b"" after ``wait``; :class:`_DtrDropped` while no host has the port open."""
        try:
            ready, _, _ = select.select([self._master], [], [], wait)
            if not ready:
                return b""
            data = os.read(self._master, 4096)
        except OSError as exc:
            if exc.errno == errno.EIO:
                if self._dtr or self.off_hook:
                    raise _DtrDropped from None
                time.sleep(wait)
                return b""
            raise
        if not self._dtr:
            self._dtr = True
        self._trace("<", data)
        return data

    def _dtr_dropped(self) -> None:
        self._dtr = False
        self._line.clear()
        self._rx.clear()
        if self._st.dtr_mode >= 2:
            self._hangup_call(16, "dtr")
            if self._st.dtr_mode == 3:
                self._st = _State()
        time.sleep(0.05)

    def _write(self, data: bytes) -> None:
        if not self._dtr:
            return
        self._trace(">", data)
        view = memoryview(data)
        deadline = time.monotonic() + 5.0
        while view:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
            except OSError:
                return

    def _info(self, text: str) -> None:
        self._write((f"\r\n{text}\r\n" if self._st.verbose else f"{text}\r\n").encode())

    def _result(self, code: str) -> None:
        if self._st.quiet:
            return
        if self._st.verbose:
            self._write(f"\r\n{code}\r\n".encode())
        else:
            self._write(f"{_NUMERIC.get(code.split(' ', maxsplit=1)[0], '4')}\r".encode())

    def _trace(self, way: str, data: bytes) -> None:
        if self.transcript is None:
            return
        with self.transcript.open("a", encoding="utf-8") as fh:
            fh.write(f"{time.monotonic():.3f} {self.label} {way} {data!r}\n")

    # -------------------------------------------------------------------------------------- exchange

    def _on_setup(self, leg: CallLeg) -> None:
        self._incoming.put(leg)

    def _events(self) -> None:
        while True:
            try:
                leg = self._incoming.get_nowait()
            except queue.Empty:
                break
            if self._call is not None or self._off_hook:
                continue  # busy: the exchange will not offer it anyway
            self._ringing, self._rings = leg, 0
            self._ring()
        leg2 = self._ringing
        if leg2 is None:
            return
        while True:
            try:
                event = leg2.events.get_nowait()
            except queue.Empty:
                break
            if event["ev"] == "ring":
                self._ring()
            elif event["ev"] == "released":
                self._ringing = None
                return
            if self._ringing is None:
                return

    def _ring(self) -> None:
        self._rings += 1
        if self._dtr:
            self._result("RING")
        s0 = self._st.sregs.get(0, 0)
        if s0 and self._rings >= s0 and self._dtr:
            self._answer()

    # --------------------------------------------------------------------------------------- commands

    def _feed(self, data: bytes) -> None:
        for b in data:
            if b in (0x0D,):
                line = bytes(self._line).decode("latin-1")
                self._line.clear()
                if self._st.echo:
                    self._write(line.encode("latin-1") + b"\r")
                self._command_line(line)
            elif b == 0x0A:
                continue
            elif b in (0x08, 0x7F):
                if self._line:
                    self._line.pop()
            elif 0x20 <= b <= 0x7E:
                self._line += bytes((b,))
                if len(self._line) > 256:
                    self._line.clear()

    def _command_line(self, line: str) -> None:
        start = line.upper().find("AT")
        if start < 0:
            return
        self.commands.append(line[start:])
        body = line[start + 2 :]
        try:
            for cmd in split_commands(body):
                outcome = self._one(cmd)
                if outcome == "":
                    return  # the action produced its own final result
                if outcome != "OK":
                    self._result(outcome)
                    return
        except _DtrDropped:
            raise
        except Exception as exc:
            self._trace("!", repr(exc).encode())
            self._result("ERROR")
            return
        self._result("OK")

    def _one(self, cmd: str) -> str:
        up = cmd.upper()
        st = self._st
        if up.startswith("+") or up.startswith("-"):
            return self._extended(cmd)
        if up.startswith("S"):
            reg, _, rest = up[1:].partition("=") if "=" in up else (up[1:].rstrip("?"), "?", "")
            if not reg.isdigit():
                return "ERROR"
            if rest == "" and up.endswith("?"):
                self._info(f"{st.sregs.get(int(reg), 0):03d}")
                return "OK"
            if not rest.isdigit() or int(rest) > 255:
                return "ERROR"
            st.sregs[int(reg)] = int(rest)
            return "OK"
        if up.startswith("&"):
            letter, arg = up[1:2], up[2:] or "0"
            if letter == "D" and arg.isdigit():
                st.dtr_mode = int(arg)
            elif letter == "F":
                self._st = _State(dtr_mode=st.dtr_mode)
            return "OK" if letter in "DCKFSWV" else "ERROR"
        letter, arg = up[:1], up[1:]
        num = int(arg) if arg.isdigit() else 0
        if letter == "E":
            st.echo = num == 1
        elif letter == "V":
            st.verbose = num == 1
        elif letter == "Q":
            st.quiet = num == 1
        elif letter == "Z":
            self._hangup_call(16, "atz")
            self._st = _State(dtr_mode=st.dtr_mode)
        elif letter == "H":
            if num == 1:
                self._off_hook = True
                with contextlib.suppress(Exception):
                    self.endpoint.off_hook()
            else:
                self._hangup_call(16, "ath")
        elif letter == "I":
            texts = {0: self.profile.model, 3: self.profile.info3}
            if num not in texts:
                return "ERROR"
            self._info(texts[num])
        elif letter == "A":
            self._answer()
            return ""
        elif letter == "D":
            self._dial(cmd[1:])
            return ""
        elif letter in "LMXBNW":
            pass
        elif letter == "O":
            return "ERROR" if self._call is None else "NO CARRIER"
        else:
            return "ERROR"
        return "OK"

    def _extended(self, cmd: str) -> str:
        st = self._st
        name, op, arg = _parse_ext(cmd)
        c2 = st.fclass == "2"
        c20 = st.fclass == "2.0"
        if name == "+FCLASS":
            if op == "=?":
                self._info(",".join(self.profile.classes))
            elif op == "?":
                self._info(st.fclass)
            elif op == "=":
                if arg not in self.profile.classes:
                    return "ERROR"
                st.fclass = arg
            return "OK"
        if name in ("+FMI", "+FMFR", "+GMI") and op in ("?", ""):
            self._info(self.profile.manufacturer)
            return "OK"
        if name in ("+FMM", "+FMDL", "+GMM") and op in ("?", ""):
            self._info(self.profile.model)
            return "OK"
        if name in ("+FMR", "+FREV", "+GMR") and op in ("?", ""):
            self._info(self.profile.revision)
            return "OK"
        if name in _CLASS1_QUERIES and st.fclass in ("1", "1.0"):
            if op == "=?":
                self._info(_CLASS1_QUERIES[name])
                return "OK"
            if op != "=" or not arg.isdigit():
                return "ERROR"
            return self._class1(name, int(arg))
        if name in {"+IFC", "+IPR"}:
            return "OK"
        if not (c2 or c20):
            return "ERROR"
        params = _PARAMS_20 if c20 else _PARAMS_2
        if name == "+FIP" and c20:
            st.params.clear()
            return "OK"
        if name in (("+FCC",) if c20 else ("+FDCC",)) and op == "=?":
            self._info("(0,1),(0-5),(0-2),(0-2),(0),(0),(0),(0-7)")
            return "OK"
        if name in (("+FIS",) if c20 else ("+FDIS",)):
            if op == "?":
                self._info(st.params.get(name, "1,5,0,2,0,0,0,0"))
            elif op == "=":
                st.params[name] = arg
                st.fine = arg.split(",")[0].strip() not in ("0", "")
            return "OK"
        if name == "+FDT":
            self._send_page_phase()
            return ""
        if name == "+FDR":
            self._receive_phase()
            return ""
        if name == "+FET" and c2 and op == "=":
            self._post_page(int(arg or "0"))
            return ""
        if name in ("+FKS", "+FK"):
            self._hangup_call(16, "abort")
            return "OK"
        if name == ("+FBO" if c20 else "+FBOR"):
            if op == "=?":
                self._info("(0-3)")
            elif op == "?":
                self._info(st.params.get(name, "0"))
            elif op == "=" and arg.strip() in ("0", "1", "2", "3"):
                st.params[name] = arg.strip()  # bit 0: phase C data reversed; bit 1 (HDLC frames): ignored
            else:
                return "ERROR"
            return "OK"
        if name in ("+FPS", "+FPTS") and op == "=":
            st.copy_bad = arg.strip() == "2"
            return "OK"
        if name in params:
            if op == "?":
                self._info(st.params.get(name, "0"))
            elif op == "=?":
                self._info("(0-255)")
            else:
                st.params[name] = arg
            return "OK"
        return "ERROR"

    # ---------------------------------------------------------------------------------------- calls

    def _names(self) -> dict[str, str]:
        if self._st.fclass == "2":
            return {"conn": "+FCON", "dis": "+FDIS", "dcs": "+FDCS", "csi": "+FCSI", "tsi": "+FTSI",
                    "pps": "+FPTS", "hng": "+FHNG"}  # fmt: skip
        return {"conn": "+FCO", "dis": "+FIS", "dcs": "+FCS", "csi": "+FCI", "tsi": "+FTI", "pps": "+FPS",
                "hng": "+FHS"}  # fmt: skip

    def _hsc(self, code: int) -> str:
        if self._st.fclass == "2":
            return str(code)
        return f"{code // 10:X}{code % 10}"

    def _reversed(self, setting: str) -> bool:
        """Whether page data goes bit-reversed for a profile ``setting`` (``data_to_host``/``data_from_host``)."""
        if setting != "fbo":
            return setting == "reversed"
        value = self._st.params.get("+FBOR" if self._st.fclass == "2" else "+FBO", "0")
        return value.isdigit() and int(value) & 1 == 1

    def _dcs(self) -> str:
        return f"{1 if self._st.fine else 0},5,0,2,0,0,0,0"

    def _dial(self, text: str) -> None:
        digits = "".join(c for c in text.split(";", maxsplit=1)[0] if c.isdigit() or c in "+*#").lstrip("+")
        if self._call is not None or self._st.fclass not in _FAX_CLASSES:
            self._result("ERROR" if self._st.fclass not in _FAX_CLASSES else "NO DIALTONE")
            return
        if not digits:
            self._result("ERROR")
            return
        self._ringing = None
        try:
            leg = self.endpoint.dial(digits)
        except CallCleared as exc:
            self._result(_dial_failure(exc.cause))
            return
        except Exception:
            self._result("NO DIALTONE")
            return
        self._call, self._role = leg, "tx"
        deadline = time.monotonic() + max(1, self._st.sregs.get(7, 60))
        try:
            while True:
                self._check_dtr()
                try:
                    event = leg.wait_for_any(("connected",), min(0.1, max(0.0, deadline - time.monotonic())))
                    break
                except CallCleared as exc:
                    if isinstance(exc, WaitTimedOut) and time.monotonic() < deadline:
                        continue
                    raise
        except CallCleared as exc:
            self._call = None
            with contextlib.suppress(Exception):
                leg.hangup(16 if isinstance(exc, WaitTimedOut) else exc.cause)
            self._result(_dial_failure(exc.cause))
            return
        del event
        self._tx_index, self._tx_ppm = 0, -1
        if self._st.fclass in ("1", "1.0"):
            # The far end answered: it sends CSI and DIS; ATD implies +FRH=3, so the first frame follows CONNECT.
            self._c1 = self._c1_state("tx")
            self._c1_queue(t30.Frame(t30.CSI, t30.ident_fif(digits[-20:]), final=False))
            self._c1_queue(t30.Frame(t30.DIS, _C1_CAPS.dis()))
            self._c1_deliver_frame()
            return
        n = self._names()
        self._info(n["conn"])
        self._info(f'{n["csi"]}:"{digits[-20:]:>20}"')
        self._info(f"{n['dis']}:1,5,0,2,0,0,0,0")
        self._result("OK")

    def _answer(self) -> None:
        leg = self._ringing
        if leg is None or self._call is not None:
            self._result("ERROR" if leg is None else "NO CARRIER")
            return
        self._ringing = None
        if self._st.fclass not in _FAX_CLASSES:
            # A data answer: this simulator carries only fax calls.
            self._result("NO CARRIER")
            return
        self._call, self._role = leg, "rx"
        try:
            leg.answer()
            leg.wait_for("connected", 10.0)
        except CallCleared:
            self._call = None
            self._result("NO CARRIER")
            return
        self._rx_index, self._pending_confirm, self._rx_last = 0, None, False
        if self._st.fclass in ("1", "1.0"):
            # ATA implies +FTH=3: the host sends its CSI and DIS right after CONNECT.
            self._c1 = self._c1_state("rx")
            self._c1.last_out = 0.0
            self._result("CONNECT")
            self._c1_transmit_frames()
            return
        n = self._names()
        self._info(n["conn"])
        self._info(f'{n["tsi"]}:"{leg.caller[-20:]:>20}"')
        self._info(f"{n['dcs']}:{self._dcs()}")
        self._result("OK")

    def _hangup_call(self, cause: int, why: str) -> None:
        leg, self._call = self._call, None
        self._pending_confirm = None
        if leg is not None:
            with contextlib.suppress(Exception):
                leg.hangup(cause)
            self.hangups.append(why)
        if leg is not None or self._off_hook:
            self._off_hook = False
            with contextlib.suppress(Exception):
                self.endpoint.on_hook()

    def _end_call(self, code: int, final: str) -> None:
        """Report the hang-up code, hang up, give the final result."""
        self._info(f"{self._names()['hng']}:{self._hsc(code)}")
        self._hangup_call(16 if code == 0 else 41, "end" if code == 0 else f"hsc {code}")
        self._result(final)

    def _check_dtr(self) -> None:
        """Raise :class:`_DtrDropped` if the host closed the port; keep any bytes it sent for later."""
        data = self._read(0.0)
        if data:
            self._rx += data

    # ------------------------------------------------------------------------------------- sending

    def _send_page_phase(self) -> None:
        leg = self._call
        if leg is None or self._role != "tx":
            self._result("ERROR")
            return
        if leg.released:
            self._end_call(50, "ERROR")
            return
        self._info(f"{self._names()['dcs']}:{self._dcs()}")
        self._result("CONNECT")
        self._page_started = time.monotonic()
        if self._st.fclass == "2":
            self._write(bytes((DC1,)))
        data, ppm = self._read_page_data()
        if ppm < 0:
            self._end_call(43, "ERROR")
            return
        self._tx_data = data
        if self._st.fclass == "2":
            # Class 2 accepts the data with OK before +FET; a real modem says it only once the page is out on
            # the line, which takes seconds (efax divides by the page time, in whole seconds).
            pause = self._page_started + self.min_page_seconds - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._result("OK")  # data accepted; +FET=<ppm> follows
            return
        self._post_page({ord(","): 0, ord(";"): 1, ord("."): 2}.get(ppm, 2))

    def _read_page_data(self) -> tuple[bytes, int]:
        """Data from the host until ``<DLE><ppm>`` / ``<DLE><ETX>``: ``(data, ppm byte)``; ppm -1 on timeout."""
        fct = int(self._st.params.get("+FCT", self._st.params.get("+FPHCTO", "30")) or "30")
        idle = max(3.0, fct / 10.0)
        out = bytearray()
        pending = bytearray(self._rx)
        self._rx.clear()
        last = time.monotonic()
        while True:
            i, stop = dle_decode(pending, out, _PAGE_STOPS)
            if stop is not None:
                self._line.clear()
                leftover = pending[i:]
                if leftover:
                    self._feed(bytes(leftover))
                return bytes(out), stop
            pending = pending[i:]
            if time.monotonic() - last > idle:
                return bytes(out), -1
            got = self._read(0.1)
            if got:
                last = time.monotonic()
                pending += got

    def _post_page(self, ppm: int) -> None:
        """Send the page to the far end and wait for MCF; answer the host (Class 2.0: OK; Class 2: +FPTS)."""
        leg = self._call
        data = getattr(self, "_tx_data", b"")
        last = ppm == 2
        c2 = self._st.fclass == "2"
        if leg is None:
            self._result("ERROR")
            return
        if self._reversed(self.profile.data_from_host):
            data = data.translate(_REVERSE)
        try:
            rows = decode_line_page(data, order="direct")  # a modem reads the order it was set to, no guessing
        except t4.T4DecodeError as exc:
            self._trace("!", f"page data does not decode: {exc}".encode())
            rows = []
        if not rows:
            # RTN: the page was not usable.
            if c2:
                self._info("+FPTS:2")
                self._result("OK")
            else:
                self._result("ERROR")
            return
        tiff = write_tiff(None, [rows], fine=self._st.fine)
        pause = self._page_started + self.min_page_seconds - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        index = self._tx_index
        try:
            leg.send_page(index, tiff, last)
            deadline = time.monotonic() + self.page_timeout
            while True:
                self._check_dtr()
                try:
                    leg.wait_for("confirmed", min(0.1, max(0.0, deadline - time.monotonic())), index=index)
                    break
                except CallCleared as exc:
                    if isinstance(exc, WaitTimedOut) and time.monotonic() < deadline:
                        continue
                    raise
        except CallCleared:
            self._end_call(54 if last else 52, "ERROR")
            return
        self._tx_index += 1
        if c2:
            self._info("+FPTS:1")
        if last:
            self._end_call(0, "OK")
        else:
            self._result("OK")

    # ----------------------------------------------------------------------------------- receiving

    def _receive_phase(self) -> None:
        leg = self._call
        if leg is None or self._role != "rx":
            self._result("ERROR")
            return
        if self._pending_confirm is not None:
            if not self._st.copy_bad:
                with contextlib.suppress(Exception):
                    leg.confirm(self._pending_confirm)
            self._st.copy_bad = False
            self._pending_confirm = None
            if self._rx_last:
                # Wait for the far end to hang up (DCN) — briefly; then report the end of the call.
                with contextlib.suppress(CallCleared):
                    leg.wait_for("never", 1.0)
                self._end_call(0, "OK")
                return
        deadline = time.monotonic() + self.page_timeout
        try:
            while True:
                self._check_dtr()
                try:
                    event = leg.wait_for("page", min(0.1, max(0.0, deadline - time.monotonic())))
                    break
                except CallCleared as exc:
                    if isinstance(exc, WaitTimedOut) and time.monotonic() < deadline:
                        continue
                    raise
        except CallCleared as exc:
            self._end_call(73 if exc.cause == 102 else 90, "ERROR")
            return
        index, last = int(event["index"]), bool(event.get("last"))
        self._trace("!", f"page {index} last={last} from the exchange".encode())
        try:
            rows, fine = _page_rows(base64_decode(str(event["data"])))
        except Exception:
            self._end_call(90, "ERROR")
            return
        n = self._names()
        self._info(f"{n['dcs']}:{1 if fine else 0},5,0,2,0,0,0,0")
        self._result("CONNECT")
        trigger = self._wait_trigger(5.0)
        if not trigger:
            self._end_call(90, "ERROR")
            return
        # RTC, then a little fill as a demodulator delivers (decoders read ahead past the last EOL).
        line_data = t4.encode_page(rows, 1728, fill_order=2, rtc=True) + b"\x00\x00\x00\x00"
        if self._reversed(self.profile.data_to_host):
            line_data = line_data.translate(_REVERSE)
        started = time.monotonic()
        self._write(line_data.replace(b"\x10", b"\x10\x10"))
        pause = started + self.min_page_seconds - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        self._write(bytes((DLE, ETX)))
        self._info(f"{n['pps']}:1,{len(rows)},0,0,0")
        self._info(f"+FET:{2 if last else 0}")
        self._result("OK")
        self._pending_confirm, self._rx_last = index, last
        self._rx_index += 1

    def _wait_trigger(self, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            data = self._read(0.1)
            if DC2 in data or DC1 in data:
                return True
        return False

    # ------------------------------------------------------------------- Class 1 (the host runs T.30)

    def _c1_state(self, role: str) -> _C1State:
        faults = self.class1_faults
        return _C1State(role, ftt_left=faults.ftt, rtn_left=faults.rtn_times if faults.rtn_page is not None else 0)

    def _c1_queue(self, frame: t30.Frame) -> None:
        """Put a far-end frame on the simulated line: HDLC bits with flags, stuffing and FCS, decoded by our
        receiver into what a modem gives the host (frame + FCS)."""
        bits = t30.hdlc_encode(t30.with_fcs(frame.wire()))
        for raw in t30.hdlc_decode(bits):
            self._c1.frames.append(raw)

    def _c1_deliver_frame(self) -> None:
        """``CONNECT``, one frame (DLE doubled) and ``<DLE><ETX>``, ``OK``."""
        raw = self._c1.frames.popleft()
        self._result("CONNECT")
        self._write(raw.replace(b"\x10", b"\x10\x10") + bytes((DLE, ETX)))
        self._c1.last_out = time.monotonic()  # before the final result: the host cannot have it earlier
        self._result("OK")

    def _class1(self, name: str, value: int) -> str:
        st = self._c1
        if name in ("+FTS", "+FRS"):
            time.sleep(min(value, 255) / 100.0)
            return "OK"
        if self._call is None or not st.role:
            return "ERROR"
        if name == "+FTH":
            if value != 3:
                return "ERROR"
            self.response_gaps.append(time.monotonic() - st.last_out if st.last_out else -1.0)
            self._result("CONNECT")
            self._c1_transmit_frames()
        elif name == "+FRH":
            if value != 3:
                return "ERROR"
            self._c1_receive_frame()
        elif name == "+FTM":
            self._c1_host_data(value)
        else:
            self._c1_give_data(value)
        return ""

    def _c1_transmit_frames(self) -> None:
        """The host sends frames (after ``CONNECT``): each up to ``<DLE><ETX>``; ``CONNECT`` after a non-final one,
        ``OK`` after the final one."""
        while True:
            data, end = self._read_page_data()
            if end != ETX:
                self._result("ERROR")
                return
            try:
                frame = t30.parse_frame(data, has_fcs=False)
            except t30.FrameError:
                self._result("ERROR")
                return
            self._trace("!", f"host frame {frame.name}".encode())
            self.host_frames.append((time.monotonic(), frame))
            if frame.name in self.class1_faults.ignore:
                self._trace("!", f"fault: the far end does not hear {frame.name}".encode())
            else:
                self._c1_from_host(frame)
            if frame.final:
                self._result("OK")
                return
            self._result("CONNECT")

    def _c1_from_host(self, frame: t30.Frame) -> None:
        st = self._c1
        leg = self._call
        fcf = frame.fcf
        if fcf == t30.DCN:
            self._hangup_call(16, "dcn")
            return
        if st.role == "tx":
            if fcf == t30.DCS:
                caps = t30.Caps.from_dcs(frame.fif)
                st.rate, st.fine, st.expect_tcf = caps.rate, caps.fine, True
            elif fcf in (t30.MPS, t30.EOP, t30.EOM) and st.awaiting is None and leg is not None:
                if st.rtn_left > 0 and st.index == self.class1_faults.rtn_page:
                    st.rtn_left -= 1
                    st.page_data = b""
                    self._trace("!", f"fault: RTN for page {st.index}".encode())
                    self._c1_queue(t30.Frame(t30.RTN))
                    return
                try:
                    rows = decode_line_page(st.page_data, order="direct") if st.page_data else []
                except t4.T4DecodeError:
                    rows = []
                if not rows:
                    self._c1_queue(t30.Frame(t30.RTN))
                    return
                last = fcf == t30.EOP
                with contextlib.suppress(CallCleared):
                    leg.send_page(st.index, write_tiff(None, [rows], fine=st.fine), last)
                st.awaiting, st.awaiting_last, st.page_data = st.index, last, b""
            return
        # rx: we play the sender
        if fcf == t30.DIS:
            st.rates = t30.Caps.from_dis(frame.fif).rates(frozenset(_C1_CODES)) or [t30.RATES[-1]]
            st.rate = st.rates[0]
            self._c1_queue(t30.Frame(t30.TSI, t30.ident_fif(leg.caller[-20:] if leg else ""), x=True, final=False))
            self._c1_queue(t30.Frame(t30.DCS, t30.Caps(fine=st.fine, rate=st.rate).dcs(), x=True))
            st.send_tcf = True
        elif fcf == t30.FTT:
            slower = [r for r in st.rates if st.rate is not None and r.bps < st.rate.bps]
            st.rate = slower[0] if slower else st.rate
            self._c1_queue(t30.Frame(t30.DCS, t30.Caps(fine=st.fine, rate=st.rate).dcs(), x=True))
            st.send_tcf = True
        elif fcf in (t30.MCF, t30.RTP) and st.rx_pending is not None and leg is not None:
            with contextlib.suppress(Exception):
                leg.confirm(st.rx_pending)
            st.rx_pending = None
            if st.rx_last:
                self._c1_queue(t30.Frame(t30.DCN, x=True))
        elif fcf == t30.RTN:
            st.rx_pending = None
            self._c1_queue(t30.Frame(t30.DCN, x=True))  # the far end cannot send the page again: it gives up

    def _c1_wait(self, ready: Callable[[], bool]) -> str:
        """Wait until ``ready()`` (it may do exchange work), the host sends a byte (abort: ``OK``), or the call
        ends (``NO CARRIER``); ``page_timeout`` at most. Returns ``""`` when ready."""
        deadline = time.monotonic() + self.page_timeout
        while time.monotonic() < deadline:
            if ready():
                return ""
            if self._call is None:
                return "NO CARRIER"
            if self._read(0.02):
                return "OK"
        return "NO CARRIER"

    def _c1_receive_frame(self) -> None:
        st = self._c1

        def ready() -> bool:
            if st.frames:
                return True
            leg = self._call
            if st.role == "tx" and st.awaiting is not None and leg is not None:
                try:
                    leg.wait_for("confirmed", 0.05, index=st.awaiting)
                except CallCleared as exc:
                    if not isinstance(exc, WaitTimedOut):
                        self._hangup_call(exc.cause, "remote")
                    return False
                st.awaiting = None
                st.index += 1
                self._c1_queue(t30.Frame(t30.MCF))
                return True
            return False

        outcome = self._c1_wait(ready)
        if outcome:
            self._result(outcome)
            return
        self._c1_deliver_frame()

    def _c1_host_data(self, code: int) -> None:
        """``+FTM``: TCF or page data from the host."""
        st = self._c1
        self._result("CONNECT")
        if st.role == "tx" and not st.expect_tcf and st.index == self.class1_faults.drop_in_page:
            self._c1_drop_while_host_sends()
            return
        data, end = self._read_page_data()
        if end != ETX:
            self._result("ERROR")
            return
        if st.role == "tx" and st.expect_tcf:
            st.expect_tcf = False
            good = st.rate is not None and code == st.rate.code and t30.tcf_ok(data, st.rate)
            if good and st.ftt_left > 0:
                st.ftt_left -= 1
                good = False
                self._trace("!", b"fault: FTT for a good TCF")
            self._c1_queue(t30.Frame(t30.CFR if good else t30.FTT))
        elif st.role == "tx":
            st.page_data = data
            # OK only once the page would have left at line speed: the host's data came in one burst (a pty has
            # no line rate), and a host may time the page from its first byte (efax divides by the seconds).
            time.sleep(self.min_page_seconds)
        self._result("OK")

    def _c1_drop_while_host_sends(self) -> None:
        """Fault: the line drops after the first bytes of the host's page: clear the call, ``NO CARRIER`` at once
        (what a modem that lost the line reports), then swallow the rest of the data up to ``<DLE><ETX>``."""
        deadline = time.monotonic() + 5.0
        while not self._rx and time.monotonic() < deadline:
            self._rx += self._read(0.05)
        self._trace("!", f"fault: the line drops in page {self._c1.index}".encode())
        self._hangup_call(41, "line dropped")
        self._result("NO CARRIER")
        self._read_page_data()

    def _c1_give_data(self, code: int) -> None:
        """``+FRM``: TCF or a page from the far end (wrong modulation: ``+FCERROR``; the far end sends TCF with the
        DCS's code and pages with :attr:`~zetafailover.devices.modem.t30.Rate.page`, V.17's short training)."""
        st = self._c1
        if st.role != "rx" or st.rate is None or code != (st.rate.code if st.send_tcf else st.rate.page):
            self._result("+FCERROR")
            return
        if st.send_tcf:
            st.send_tcf = False
            self._result("CONNECT")
            self._write(t30.tcf_bytes(st.rate) + bytes((DLE, ETX)))
            st.last_out = time.monotonic()
            self._result("NO CARRIER")
            return
        got: dict[str, object] = {}

        def ready() -> bool:
            leg = self._call
            if leg is None:
                return False
            try:
                got.update(leg.wait_for("page", 0.05))
            except CallCleared as exc:
                if not isinstance(exc, WaitTimedOut):
                    self._hangup_call(exc.cause, "remote")
                return False
            return True

        outcome = self._c1_wait(ready)
        if outcome:
            self._result(outcome)
            return
        index, last = int(str(got["index"])), bool(got.get("last"))
        try:
            rows, _fine = _page_rows(base64_decode(str(got["data"])))
        except Exception:
            self._result("NO CARRIER")
            return
        line_data = t4.encode_page(rows, 1728, fill_order=2, rtc=True) + b"\x00\x00\x00\x00"
        self._result("CONNECT")
        if index == self.class1_faults.drop_in_page:
            # Fault: the line drops half-way through the page; the modem ends the data and loses the carrier.
            self._write(line_data[: len(line_data) // 2].replace(b"\x10", b"\x10\x10"))
            self._trace("!", f"fault: the line drops in page {index}".encode())
            self._hangup_call(41, "line dropped")
            self._write(bytes((DLE, ETX)))
            st.last_out = time.monotonic()
            self._result("NO CARRIER")
            return
        self._write(line_data.replace(b"\x10", b"\x10\x10") + bytes((DLE, ETX)))
        st.last_out = time.monotonic()
        self._result("NO CARRIER")
        st.rx_pending, st.rx_last = index, last
        self._c1_queue(t30.Frame(t30.EOP if last else t30.MPS, x=True))


def base64_decode(text: str) -> bytes:
    return base64.b64decode(text)


def _page_rows(data: bytes) -> tuple[list[bytes], bool]:
    """Rows and resolution of a page carried by the exchange (a single-page TIFF-F, or raw MH LSB first)."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        info = validate_tiff_bytes(data, "<exchange page>", widths=(1728,))
        page = info.pages[0]
        strip = page_strip(data, page)
        rows = t4.decode_page(strip, page.width, rows=page.length, fill_order=page.fill_order)
        if page.photometric == 1:
            rows = [bytes(b ^ 0xFF for b in r) for r in rows]
        return rows, page.fine
    return t4.decode_page(data, 1728, fill_order=2), True


def _dial_failure(cause: int) -> str:
    if cause == 17:
        return "BUSY"
    if cause in (18, 19, 102):
        return "NO ANSWER"
    if cause in (34, 38, 41, 42):
        return "NO DIALTONE"
    return "NO CARRIER"


def _parse_ext(cmd: str) -> tuple[str, str, str]:
    """``+FCLASS=?`` → ``("+FCLASS", "=?", "")``; ``+FLI="x"`` → ``("+FLI", "=", '"x"')``."""
    j = 1
    while j < len(cmd) and (cmd[j].isalnum() or cmd[j] in "."):
        j += 1
    name = cmd[:j].upper()
    rest = cmd[j:]
    if rest.startswith("=?"):
        return name, "=?", ""
    if rest.startswith("?"):
        return name, "?", ""
    if rest.startswith("="):
        return name, "=", rest[1:].strip()
    return name, "", rest.strip()


# ------------------------------------------------------------------------------------------------- Class 1


_C1_CAPS = t30.Caps(frozenset({"v27", "v29", "v17"}), True)
"""What the far end (the simulated fax machine behind the exchange) offers in its DIS."""


@dataclass
class _C1State:
    """The far end's T.30 state while the host runs a Class 1 call."""

    role: str
    """``tx``: the host sends (we play the receiver); ``rx``: the host receives (we play the sender)."""
    frames: deque[bytes] = field(default_factory=deque)
    rate: t30.Rate | None = None
    fine: bool = True
    expect_tcf: bool = False
    page_data: bytes = b""
    awaiting: int | None = None
    awaiting_last: bool = False
    send_tcf: bool = False
    rx_pending: int | None = None
    rx_last: bool = False
    index: int = 0
    last_out: float = 0.0
    rates: list[t30.Rate] = field(default_factory=list)
    ftt_left: int = 0
    """Fault: TCFs still to be answered with FTT in this call."""
    rtn_left: int = 0
    """Fault: RTNs still to give for :attr:`Class1Faults.rtn_page` in this call."""


_C1_CODES = tuple(int(c) for c in _CLASS1_QUERIES["+FTM"].split(","))
