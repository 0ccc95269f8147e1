"""Two real software fax modems (iaxmodem) calling each other on loopback, and a UDP relay to break the line.

iaxmodem (Debian package ``iaxmodem``) is a Class 1 fax modem built on spandsp: it shows a pty to the host and
carries real V.21/V.27ter/V.29/V.17 modulation as audio over IAX2. Two of them call each other directly (no
PBX): each has ``refresh 0`` (never register) and ``server 127.0.0.1:<the other's port>``; ``ATD<digits>`` on one
rings the other. See ``/work/shared/research/fax-peers.md`` §1–3, §9 and ``docs/modem.md``.

::

    with IaxmodemPair(relay=True) as pair:          # both modems answer AT; a fresh pair per test
        pair.a, pair.b                              # pty paths (symlinks) for a DTE: our driver, efax …
        pair.relay.drop(after_s=2.0)                # the line goes dead 2 s from now (or .cut(): now)
        pair.relay.packets                          # {"a>b": n, "b>a": n, "dropped": n}
    # both iaxmodem processes killed, the folder removed

Why a fresh pair every time: iaxmodem keeps call state across a failed call (a caller that gave up leaves the
callee ringing; ``ATH`` in a data state only ends the data phase), so one call per pair is the safe rule.

iaxmodem reads its configuration from ``/etc/iaxmodem/NAME``; the harness passes a NAME of ``../..`` followed
by the absolute path of its own config file, so nothing is written to ``/etc``. It must run as root (it makes
its pty symlink, then drops to the ``uucp`` user). Device and server strings are kept short: iaxmodem copies
them into 64-byte buffers.

Timing: :meth:`IaxmodemPair.start` blocks until both ptys answer ``AT`` (typically 0.2–1 s; at most
``ready_timeout``); :meth:`IaxmodemPair.close` blocks at most ≈ 2 s per process (SIGTERM, then SIGKILL).
:class:`UdpRelay` forwards every datagram at once on its own thread; its control methods never block.
Atomicity: none needed — one test owns a pair; the relay's counters and drop window are guarded by a lock.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from zetafailover.devices.modem.pages import REVERSE, decode_line_page
from zetafailover.errors import DeviceError
from zetafailover.spool.tiff import page_strip, validate_tiff_bytes

__all__ = [
    "BUSY_OUT_S",
    "EfaxReceiver",
    "IaxmodemError",
    "IaxmodemPair",
    "UdpRelay",
    "efax_binary",
    "efax_missing_reason",
    "efax_send",
    "fax_page_rows",
    "iaxmodem_binary",
    "iaxmodem_missing_reason",
]

BUSY_OUT_S = 5.0
"""After every on-hook transition (``ATZ``, ``ATH``, end of a call) iaxmodem refuses incoming calls for 5 s: the
caller gets ``NO DIALTONE``. A DTE that initialises with ``ATZ`` (our driver) must be given this long before a
call to it is placed."""

_MAX_CONFIG_STRING = 60
"""iaxmodem copies ``device`` and ``server`` into 64-byte buffers; stay below."""


class IaxmodemError(DeviceError):
    """An iaxmodem pair could not be set up (binary missing, not root, a modem that never answers ``AT``)."""


def iaxmodem_binary() -> str | None:
    """The iaxmodem executable on ``PATH``, or None."""
    return shutil.which("iaxmodem")


def iaxmodem_missing_reason() -> str:
    """Why an iaxmodem pair cannot run here ("" when it can): for ``pytest.mark.skipif``."""
    if iaxmodem_binary() is None:
        return "iaxmodem is not installed (apt-get install iaxmodem)"
    if os.geteuid() != 0:
        return "iaxmodem must run as root (it creates its pty symlink, then drops to the uucp user)"
    try:
        pwd.getpwnam("uucp")
    except KeyError:
        return "iaxmodem needs the system user 'uucp' (it drops privileges to it)"
    return ""


def _free_udp_ports(count: int) -> list[int]:
    """``count`` distinct UDP ports free on every interface a moment ago (iaxmodem binds 0.0.0.0)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 0))  # noqa: S104 - iaxmodem itself binds every interface; the port must be free there
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class UdpRelay:
    """A UDP relay between two iaxmodems that can kill the line: both modems' ``server`` point at it.

    Datagrams from ``127.0.0.1:port_a`` go to ``port_b`` and the other way round, unchanged. :meth:`drop` opens a
    window in which every datagram (both ways) is discarded — a dropout when ``for_s`` is set, a dead line when
    it is None; :meth:`cut` is ``drop(0)``. :attr:`packets` counts what crossed and what was dropped.

    Timing: one daemon thread; each datagram is forwarded as soon as it is read. ``drop``/``cut``/``heal`` and
    the counters never block. Atomicity: the counters and the window are changed under one lock.
    """

    def __init__(self, port_a: int, port_b: int, *, port: int = 0) -> None:
        self.port_a = port_a
        self.port_b = port_b
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", port))
        self._sock.settimeout(0.1)
        self.port: int = int(self._sock.getsockname()[1])
        self._lock = threading.Lock()
        self._counts = {"a>b": 0, "b>a": 0, "dropped": 0, "foreign": 0}
        self._drop_from: float | None = None
        self._drop_until: float | None = None
        self._first_packet: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"udp-relay-{self.port}", daemon=True)
        self._thread.start()

    @property
    def packets(self) -> dict[str, int]:
        """A copy of the counters: ``a>b``, ``b>a`` (forwarded), ``dropped``, ``foreign`` (from other ports)."""
        with self._lock:
            return dict(self._counts)

    @property
    def first_packet_at(self) -> float | None:
        """``time.monotonic()`` of the first forwarded datagram (the start of the call), or None."""
        return self._first_packet

    def drop(self, after_s: float = 0.0, for_s: float | None = None) -> None:
        """Discard every datagram from ``after_s`` seconds from now, for ``for_s`` seconds (None: for good)."""
        if after_s < 0 or (for_s is not None and for_s <= 0):
            raise ValueError(f"drop(after_s={after_s}, for_s={for_s}): after_s must be >= 0 and for_s > 0 or None")
        start = time.monotonic() + after_s
        with self._lock:
            self._drop_from = start
            self._drop_until = None if for_s is None else start + for_s

    def cut(self) -> None:
        """The line goes dead now: every later datagram is discarded."""
        self.drop(0.0)

    def heal(self) -> None:
        """Forward again (ends any drop window)."""
        with self._lock:
            self._drop_from = self._drop_until = None

    def close(self) -> None:
        """Stop the thread and close the socket (waits at most ≈ 1 s)."""
        self._stop.set()
        self._thread.join(1.0)
        self._sock.close()

    def _dropping(self, now: float) -> bool:
        if self._drop_from is None or now < self._drop_from:
            return False
        return self._drop_until is None or now < self._drop_until

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, (host, src) = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            if src == self.port_a:
                way, dest = "a>b", self.port_b
            elif src == self.port_b:
                way, dest = "b>a", self.port_a
            else:
                with self._lock:
                    self._counts["foreign"] += 1
                continue
            with self._lock:
                if self._dropping(now):
                    self._counts["dropped"] += 1
                    continue
                self._counts[way] += 1
                if self._first_packet is None:
                    self._first_packet = now
            with contextlib.suppress(OSError):
                self._sock.sendto(data, (host, dest))


@dataclass
class _Modem:
    label: str
    config: Path
    device: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None


class IaxmodemPair:
    """Two iaxmodem processes that call each other: A (``cidnumber`` 1000) and B (2000). A context manager.

    ``relay=True`` puts a :class:`UdpRelay` between them (:attr:`relay`). ``folder``: where configs, pty symlinks
    and logs go (default: a new short folder under ``/tmp``, removed on close; a given folder is kept). The
    pty paths are :attr:`a` and :attr:`b`; ``ATD<digits>`` on one rings the other (the digits are passed on as
    the called number). Raises :class:`IaxmodemError` when iaxmodem cannot run here (see
    :func:`iaxmodem_missing_reason`) or a modem does not answer ``AT`` within ``ready_timeout``.

    Timing: entering starts both modems and blocks until both answer ``AT`` (at most ``ready_timeout``);
    leaving kills them (SIGTERM, SIGKILL after 2 s) — at most ≈ 4 s. Not reusable after :meth:`close`.
    """

    def __init__(
        self,
        *,
        relay: bool = False,
        folder: Path | None = None,
        codec: str = "slinear",
        ready_timeout: float = 15.0,
    ) -> None:
        if codec not in ("slinear", "ulaw", "alaw"):
            raise ValueError(f"IaxmodemPair codec {codec!r}: one of slinear, ulaw, alaw")
        self._own_folder = folder is None
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="zfiax-", dir="/tmp"))
        self.codec = codec
        self.ready_timeout = ready_timeout
        self._want_relay = relay
        self.relay: UdpRelay | None = None
        self._modems: list[_Modem] = []
        self._started = False

    # ------------------------------------------------------------------------------------------ public

    @staticmethod
    def available() -> bool:
        """True when iaxmodem can run here (installed, root, ``uucp`` user)."""
        return not iaxmodem_missing_reason()

    @property
    def a(self) -> str:
        """Path of modem A's pty (for the DTE)."""
        return str(self._modem(0).device)

    @property
    def b(self) -> str:
        """Path of modem B's pty (for the DTE)."""
        return str(self._modem(1).device)

    @property
    def logs(self) -> dict[str, Path]:
        """Each modem's stdout/stderr log file (``A``, ``B``)."""
        return {m.label: m.log for m in self._modems}

    def log_text(self) -> str:
        """Both modems' logs, for assertion messages."""
        parts = []
        for m in self._modems:
            with contextlib.suppress(OSError):
                parts.append(f"--- iaxmodem {m.label} ---\n" + m.log.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def start(self) -> IaxmodemPair:
        """Write the configs, start both modems and wait until both answer ``AT``."""
        if self._started:
            raise IaxmodemError("this IaxmodemPair was started already; make a new one per call")
        reason = iaxmodem_missing_reason()
        if reason:
            raise IaxmodemError(reason)
        self._started = True
        try:
            port_a, port_b = _free_udp_ports(2)
            if self._want_relay:
                self.relay = UdpRelay(port_a, port_b)
                server_a = server_b = self.relay.port
            else:
                server_a, server_b = port_b, port_a
            self._modems = [
                self._write_config("A", port_a, server_a, "1000"),
                self._write_config("B", port_b, server_b, "2000"),
            ]
            for m in self._modems:
                self._spawn(m)
            deadline = time.monotonic() + self.ready_timeout
            for m in self._modems:
                self._wait_ready(m, deadline)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill both modems, stop the relay, remove the folder if the pair made it. Idempotent."""
        for m in self._modems:
            proc, m.proc = m.proc, None
            if proc is None:
                continue
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(2.0)
        if self.relay is not None:
            self.relay.close()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> IaxmodemPair:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ inside

    def _modem(self, index: int) -> _Modem:
        if len(self._modems) <= index:
            raise IaxmodemError("the iaxmodem pair is not started")
        return self._modems[index]

    def _write_config(self, label: str, port: int, server_port: int, number: str) -> _Modem:
        device = self.folder / f"tty{label}"
        server = f"127.0.0.1:{server_port}"
        if len(str(device)) > _MAX_CONFIG_STRING:
            raise IaxmodemError(
                f"iaxmodem device path {str(device)!r} is {len(str(device))} characters; iaxmodem keeps at most 63 "
                f"(pass a shorter folder)"
            )
        config = self.folder / f"{label}.cfg"
        config.write_text(
            f"device\t\t{device}\n"
            "owner\t\troot:root\n"
            "mode\t\t660\n"
            f"port\t\t{port}\n"
            "refresh\t\t0\n"
            f"server\t\t{server}\n"
            f"peername\tmodem{label}\n"
            "secret\t\tunused\n"
            f"cidname\t\tModem {label}\n"
            f"cidnumber\t{number}\n"
            f"codec\t\t{self.codec}\n",
            encoding="ascii",
        )
        return _Modem(label, config, device, port, self.folder / f"{label}.log")

    def _spawn(self, m: _Modem) -> None:
        binary = iaxmodem_binary()
        assert binary is not None
        # iaxmodem reads /etc/iaxmodem/NAME: "../.." + an absolute path reaches our own file.
        argv = [binary, "../.." + str(m.config.resolve())]
        stdbuf = shutil.which("stdbuf")
        if stdbuf is not None:
            argv = [stdbuf, "-oL", *argv]  # iaxmodem's informational lines go to a fully buffered stdout
        with m.log.open("wb") as log:
            m.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _wait_ready(self, m: _Modem, deadline: float) -> None:
        """Wait for the pty symlink, then for ``AT`` → ``OK`` on it."""
        import serial  # noqa: PLC0415

        last = "its pty symlink never appeared"
        while time.monotonic() < deadline:
            assert m.proc is not None
            if m.proc.poll() is not None:
                raise IaxmodemError(
                    f"iaxmodem {m.label} ({m.config}) exited with {m.proc.returncode}:\n{self.log_text()}"
                )
            if not os.path.exists(m.device):
                time.sleep(0.05)
                continue
            try:
                with serial.Serial(str(m.device), 19200, timeout=0.3, exclusive=True) as port:
                    port.reset_input_buffer()
                    port.write(b"AT\r")
                    got = b""
                    until = time.monotonic() + 1.0
                    while time.monotonic() < until and b"OK" not in got:
                        got += port.read(64)
                    if b"OK" in got:
                        return
                    last = f"AT answered {got!r}"
            except (OSError, serial.SerialException) as exc:
                last = f"cannot open {m.device}: {exc}"
            time.sleep(0.1)
        raise IaxmodemError(f"iaxmodem {m.label} not ready within {self.ready_timeout:g} s: {last}\n{self.log_text()}")


# ------------------------------------------------------------------------------------------------- efax


def fax_page_rows(path: Path) -> list[bytes]:
    """The rows of a single-page fax TIFF as a real receiver wrote it, up to its first undecodable row.

    efax ends a page it sends at RTC, not at the strip's byte count: a page whose strip has no RTC arrives
    with the bytes that follow the strip in the file (typically the page's directory) as some 25 junk rows,
    which do not decode. Our writer ends every strip with RTC, so our pages arrive exact; pages made by other
    writers may not. The rows before the first undecodable one are the page.
    """
    data = Path(path).read_bytes()
    page = validate_tiff_bytes(data, str(path)).pages[0]
    strip = page_strip(data, page)
    if page.fill_order == 1:
        strip = strip.translate(REVERSE)
    return decode_line_page(strip, page.width)[: page.length]


def efax_binary() -> str | None:
    """The efax executable on ``PATH``, or None."""
    return shutil.which("efax")


def efax_missing_reason() -> str:
    """Why efax cannot run here ("" when it can): for ``pytest.mark.skipif``."""
    return "" if efax_binary() is not None else "efax is not installed (apt-get install efax)"


def efax_send(
    device: str,
    files: list[Path],
    number: str,
    *,
    log: Path,
    local_id: str = "+1 555 0001",
    timeout: float = 180.0,
) -> int:
    """Send ``files`` (one TIFF-G3 per page) with efax in Class 1 from ``device``; return efax's exit code.

    efax adds its 20-row header band on top of every page (``-h " "`` keeps it blank). Exit codes: 0 sent, 1
    busy, 2 fatal (dial failed, bad file), 3 protocol error, 4 modem not responding. Timing: blocks for the call
    (≈ 10 s + ≈ 10 s a page at V.17 14400), at most ``timeout`` (then efax is killed and 5 returned).
    """
    binary = efax_binary()
    if binary is None:
        raise IaxmodemError(efax_missing_reason())
    argv = [binary, "-d", device, "-o1", "-v", "ewinchamr", "-l", local_id, "-h", " ", "-t", number]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv + [str(f) for f in files], stdout=out, stderr=subprocess.STDOUT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
            return 5


class EfaxReceiver:
    """``efax -o1 -w -iS0=1 -r PREFIX`` on ``device``: waits for a call, lets the modem answer by itself, writes
    one TIFF per received page (``PREFIX.001``, ``.002`` …). A context manager; kills efax on exit.

    Timing: :meth:`start` blocks until efax has initialised the modem and waits for activity (≈ 1 s, at most
    ``ready_timeout``); :meth:`wait` blocks until efax exits (after one call), at most its ``timeout``.
    """

    def __init__(
        self, device: str, prefix: Path, *, log: Path, local_id: str = "+1 555 0002", ready_timeout: float = 15.0
    ) -> None:
        self.device = device
        self.prefix = Path(prefix)
        self.log = Path(log)
        self.local_id = local_id
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EfaxReceiver:
        """Start efax and wait until it says ``waiting for activity``."""
        binary = efax_binary()
        if binary is None:
            raise IaxmodemError(efax_missing_reason())
        argv = [binary, "-d", self.device, "-o1", "-w", "-iS0=1", "-v", "ewinchamr", "-l", self.local_id]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*argv, "-r", str(self.prefix)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if b"waiting for activity" in self._log_bytes():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise IaxmodemError(f"efax -r on {self.device} did not get ready:\n{self.log_text()}")

    def wait(self, timeout: float) -> int:
        """efax's exit code once the call is over (0: received). Raises ``subprocess.TimeoutExpired``."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def pages(self) -> list[Path]:
        """The page files efax wrote, in order (after an RTN efax keeps the bad copy *and* the repeat)."""
        return sorted(self.prefix.parent.glob(self.prefix.name + ".[0-9][0-9][0-9]"))

    def log_text(self) -> str:
        """The end of efax's log (for assertion messages)."""
        return self._log_bytes()[-6000:].decode("ascii", "replace")

    def close(self) -> None:
        """Kill efax if it still runs (at most ≈ 5 s)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5.0)

    def _log_bytes(self) -> bytes:
        try:
            return self.log.read_bytes()
        except OSError:
            return b""

    def __enter__(self) -> EfaxReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
