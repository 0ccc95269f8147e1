"""Simulated modems in a process of their own (``python -m zetafailover.testing.modem``).

Hardware outlives the program driving it: a node that is SIGKILLed closes its serial port (DTR drops, the modem
hangs up), a node that is SIGSTOPped keeps it open (the modem stays off-hook). Running the modems in their own
process gives tests exactly that behaviour. The process prints one JSON line ``{"ready": {...}}`` naming the
device path of every modem, then serves until SIGTERM / its stdin closes.

Timing: :meth:`ModemProcess.start` waits at most ``timeout`` for the ready line; :meth:`ModemProcess.stop`
terminates the process (kill after 3 s). Atomicity: none.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModemProcess", "ModemSpec"]


@dataclass(frozen=True, slots=True)
class ModemSpec:
    """One modem of a :class:`ModemProcess`: its label, exchange line, and the symlink a host opens."""

    label: str
    line: str
    link: Path
    classes: str = "0,1,2,2.0"


class ModemProcess:
    """Runs ``specs`` as simulated modems in a child process attached to the exchange at ``exchange``."""

    def __init__(self, exchange: str, specs: list[ModemSpec], *, transcript: Path | None = None) -> None:
        self.exchange = exchange
        self.specs = specs
        self.transcript = transcript
        self.proc: subprocess.Popen[bytes] | None = None
        self.paths: dict[str, str] = {}

    def start(self, timeout: float = 20.0) -> ModemProcess:
        args = [sys.executable, "-m", "zetafailover.testing.modem", "--exchange", self.exchange]
        for spec in self.specs:
            args += ["--modem", f"{spec.label}={spec.line}={spec.link}={spec.classes}"]
        if self.transcript is not None:
            args += ["--transcript", str(self.transcript)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError("the simulated modem process did not start")
        self.paths = json.loads(line)["ready"]
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.terminate()
        try:
            proc.wait(3.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3.0)

    def __enter__(self) -> ModemProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
