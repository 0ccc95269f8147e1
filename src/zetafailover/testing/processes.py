"""Real node processes on one shared folder, for integration tests, the demo and the benchmarks.

:class:`NodeProcesses` writes a config per node, starts ``zetafailover run`` processes, sends them signals
(SIGKILL, SIGSTOP/SIGCONT, SIGTERM) and reads what happened: the heartbeat record from the shared folder, each
node's event log and each loopback device's log. Event logs carry the node's monotonic clock, which on Linux is
the same clock in every process, so a test can time a takeover against the moment it sent a signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zetafailover.core.events import read_events
from zetafailover.interfaces import HeartbeatRecord, NodeState
from zetafailover.stores.file import FileHeartbeatStore

__all__ = ["NodeProcesses", "write_node_config"]


def write_node_config(
    folder: Path,
    name: str,
    priority: int,
    *,
    cluster: str = "demo",
    profile: str = "lab",
    timing: Mapping[str, float] | None = None,
    terminator: str = "pid",
    devices: int = 1,
    extra: str = "",
    device_options: Mapping[str, float | int | str] | None = None,
    store: str = "shared",
) -> Path:
    """Write ``folder/NAME.toml`` for a node on the shared folder ``folder/shared`` with loopback devices.

    ``device_options`` are added to every ``[[device]]`` section (e.g. ``{"page_seconds": 0.2}``).
    """
    timing_table = "".join(f"{k} = {v}\n" for k, v in (timing or {}).items())
    options = "".join(f"{k} = {json.dumps(v)}\n" for k, v in (device_options or {}).items())
    grace = "grace = 0.3\n" if terminator == "pid" else ""
    device_sections = "".join(
        f'\n[[device]]\ndriver = "loopback"\nname = "{name}-lo{i}"\nchannels = 2\n'
        f'log = "{name}-device.jsonl"\n{options}'
        for i in range(devices)
    )
    path = folder / f"{name}.toml"
    path.write_text(
        f'[cluster]\nname = "{cluster}"\nstore = "{store}"\nprofile = "{profile}"\n\n'
        + (f"[timing]\n{timing_table}\n" if timing_table else "")
        + f'[node]\nname = "{name}"\npriority = {priority}\nstate_dir = "state/{name}"\n\n'
        f'[terminator]\nkind = "{terminator}"\n{grace}{device_sections}{extra}',
        encoding="utf-8",
    )
    return path


class NodeProcesses:
    """A set of real ``zetafailover run`` processes sharing ``folder/shared``."""

    def __init__(
        self,
        folder: Path,
        *,
        cluster: str = "demo",
        profile: str = "lab",
        timing: Mapping[str, float] | None = None,
        terminator: str = "pid",
        extra: str = "",
        env: Mapping[str, str] | None = None,
        device_options: Mapping[str, float | int | str] | None = None,
        devices: int = 1,
        node_extra: Mapping[str, str] | None = None,
    ) -> None:
        self.device_options = dict(device_options or {})
        self.node_extra = dict(node_extra or {})
        """TOML appended to one node's config, by node name (e.g. its own ``[[device]]`` on its own line), after
        ``extra``; also used by :meth:`write_config` calls without an ``extra`` (restarts, ``start_together``)."""
        self.devices = devices
        """Loopback devices per node (0: only the devices given in ``extra``)."""
        self.folder = folder
        self.extra = extra
        self.env = dict(env or {})
        self.cluster = cluster
        self.profile = profile
        self.timing = dict(timing or {})
        self.terminator = terminator
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.store = FileHeartbeatStore(folder / "shared", cluster, lock_timeout=2.0)

    def config_path(self, name: str) -> Path:
        return self.folder / f"{name}.toml"

    def start(self, name: str, priority: int, extra: str | None = None) -> subprocess.Popen[bytes]:
        """Write the node's config and start it (stdout and stderr go to ``folder/NAME.log``).

        ``extra`` is appended to this node's config (default: the ``extra`` given to the constructor).
        """
        return self.launch(name, self.write_config(name, priority, extra))

    def write_config(self, name: str, priority: int, extra: str | None = None) -> Path:
        """Write ``folder/NAME.toml`` from this set's settings; subclasses adjust the text here.

        The node's text is ``extra`` (default: the constructor's ``extra``) followed by ``node_extra[name]``.
        """
        return write_node_config(
            self.folder,
            name,
            priority,
            cluster=self.cluster,
            profile=self.profile,
            timing=self.timing,
            terminator=self.terminator,
            devices=self.devices,
            extra=(self.extra if extra is None else extra) + self.node_extra.get(name, ""),
            device_options=self.device_options,
        )

    def launch(self, name: str, config: Path) -> subprocess.Popen[bytes]:
        """Start ``zetafailover run --config CONFIG`` as node ``name``."""
        with (self.folder / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "zetafailover", "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.folder,
                env={**os.environ, **self.env},
            )
        self.procs[name] = proc
        return proc

    def signal(self, name: str, sig: int) -> float:
        """Send ``sig`` to the node; returns the monotonic time it was sent."""
        sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.procs[name].pid, sig)
        if sig == signal.SIGKILL:
            self.procs[name].wait()
        return sent

    def record(self) -> HeartbeatRecord | None:
        return self.store.read().record

    def wait(
        self, what: str, pred: Callable[[HeartbeatRecord], bool], limit: float, poll: float = 0.01
    ) -> HeartbeatRecord:
        """Wait until the heartbeat record satisfies ``pred``; raises ``TimeoutError`` with the logs."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            record = self.record()
            if record is not None and pred(record):
                return record
            for name, proc in self.procs.items():
                code = proc.poll()
                if code not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                    raise RuntimeError(f"{name} exited with {code}:\n{self.logs()}")
            time.sleep(poll)
        raise TimeoutError(f"timed out after {limit:g} s waiting for {what}; logs:\n{self.logs()}")

    def wait_active(self, limit: float = 30.0, holder: str = "", above_term: int = 0) -> HeartbeatRecord:
        return self.wait(
            f"{holder or 'a node'} active above term {above_term}",
            lambda r: r.state == NodeState.ACTIVE and r.term > above_term and (not holder or r.holder == holder),
            limit,
        )

    def events(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        events = read_events(self.folder / "state" / name / "events.jsonl")
        return [e for e in events if kind is None or e.get("kind") == kind]

    def became_active_at(self, name: str, term: int) -> float | None:
        """The node's monotonic time of its transition to ACTIVE in ``term`` (devices were on line by then)."""
        for e in self.events(name, "transition"):
            if e.get("to_state") == "active" and e.get("term") == term:
                return float(e["mono"])
        return None

    def device_log(self, name: str) -> list[dict[str, Any]]:
        path = self.folder / f"{name}-device.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def cli(self, *args: str, config: str) -> subprocess.CompletedProcess[str]:
        """Run ``zetafailover ARGS --config folder/CONFIG.toml`` and capture its output."""
        return subprocess.run(
            [sys.executable, "-m", "zetafailover", *args, "--config", str(self.config_path(config))],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.folder,
            check=False,
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.folder.glob("*.log"))
        )

    def close(self) -> None:
        """SIGCONT (in case one is stopped), SIGTERM and wait for every node; SIGKILL stragglers."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.store.close()
