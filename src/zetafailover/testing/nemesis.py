"""The nemesis: faults injected into real node processes, each logged with its monotonic time.

It works on a :class:`~zetafailover.testing.processes.NodeProcesses` set::

    nodes = FaultableNodes(tmp_path, cluster="t", profile="fast", timing=TIMING)
    nemesis = Nemesis(nodes)
    nemesis.start_together({"fax1": 200, "fax2": 100})
    nodes.wait_active()
    nemesis.kill("fax1")                    # SIGKILL
    nemesis.pause("fax2", 1.0)              # SIGSTOP, 1 s, SIGCONT
    nemesis.restart("fax1")                 # a fresh process from the same config
    nemesis.store_fault("read_only", node="fax2")
    nemesis.spool_fault("unreadable", node="fax1")   # fax1's view of the spool folder: EACCES
    nemesis.folder_fault("full")            # the whole shared folder (store and spool) full, for both nodes
    nemesis.kill_worker("fax1")             # fax1's fax worker dies mid-job; the node lives
    nemesis.step_wall("fax2", -3600)        # fax2's wall clock one hour back; the machine's is untouched
    nemesis.switchover(to="fax1")           # a planned switchover, as ``zetafailover switchover`` does it
    nemesis.history                         # every action with its monotonic time, for the audits

Signals, restarts and switchovers work on any ``NodeProcesses``. Store, spool and folder faults, worker kills
and wall-clock steps need nodes that load their store and spool through :mod:`zetafailover.testing.fault_plugin`;
:class:`FaultableNodes` writes such configs (a ``faulty+file`` store, the spool named explicitly, the plugin
module registered).

The monotonic times are ``time.monotonic()`` of the test process, which on Linux is the clock every node's
event log and device log carry, so audits can relate each fault to what followed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zetafailover._atomic import atomic_write
from zetafailover.admin import request_switchover
from zetafailover.assemble import open_store
from zetafailover.clock import SystemClock
from zetafailover.config import load_config
from zetafailover.errors import ConfigError, ZetafailoverError
from zetafailover.testing.fault_plugin import SCHEME, STORE_MODES, faulty_store_url
from zetafailover.testing.faulty_spool import SPOOL_MODES
from zetafailover.testing.processes import NodeProcesses, write_node_config

__all__ = ["FaultableNodes", "Nemesis", "NemesisAction"]

PLUGIN_MODULE = "zetafailover.testing.fault_plugin"


@dataclass(frozen=True, slots=True)
class NemesisAction:
    """One thing the nemesis did.

    ``mono`` is the monotonic time it took effect (the signal sent, the control file replaced, the request
    written); ``ended`` the time a lasting action finished (a timed pause, a switchover), else equal to ``mono``.
    """

    mono: float
    action: str
    """``start``, ``kill``, ``pause``, ``resume``, ``restart``, ``switchover``, ``store_fault``, ``heal_store``,
    ``spool_fault``, ``heal_spool``, ``folder_fault``, ``heal_folder``, ``kill_worker``, ``wall_step``."""
    node: str
    """The node it was done to ("" for a cluster-wide action such as a switchover)."""
    ended: float
    detail: Mapping[str, Any] = field(default_factory=dict)


class FaultableNodes(NodeProcesses):
    """:class:`NodeProcesses` whose nodes open their store through the fault plugin (see the module docstring).

    Each node's config gets ``store = "faulty+file://FOLDER/shared?control=FOLDER/NAME.faults.json"``, a
    ``[spool] path`` on the shared folder (a ``faulty+file`` store is not a plain folder, so the spool must be
    named) and ``[plugins] modules = ["zetafailover.testing.fault_plugin"]``; the plugin opens both the store and
    the spool through the control file. Without a control file the nodes behave exactly as with a plain shared
    folder. Do not pass ``[spool]`` or ``[plugins]`` in ``extra``.
    """

    def control_path(self, name: str) -> Path:
        """The node's fault control file (written by :class:`Nemesis`; absent means no fault)."""
        return self.folder / f"{name}.faults.json"

    def write_config(self, name: str, priority: int, extra: str | None = None) -> Path:
        path = super().write_config(name, priority, extra)
        text = path.read_text(encoding="utf-8")
        for table in ("[spool]", "[plugins]"):
            if f"\n{table}" in text:
                raise ConfigError(str(path), table.strip("[]"), "FaultableNodes writes this table itself; drop it")
        shared = self.folder / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        url = faulty_store_url(shared, self.control_path(name))
        plain = 'store = "shared"'
        if plain not in text:
            raise ConfigError(str(path), "cluster.store", f"expected {plain!r} to replace with a {SCHEME} store")
        text = text.replace(plain, f"store = {json.dumps(url)}", 1)
        text += (
            f"\n[spool]\npath = {json.dumps(str(shared.resolve() / 'spool'))}\n"
            f"\n[plugins]\nmodules = [{json.dumps(PLUGIN_MODULE)}]\n"
        )
        path.write_text(text, encoding="utf-8")
        return path


class Nemesis:
    """Injects faults into the nodes of ``nodes`` and keeps :attr:`history`.

    Timing: every method returns once its fault is in force (a signal sent, a control file replaced), except
    :meth:`pause` with ``seconds`` (blocks that long), :meth:`restart` (waits for the old process to die)
    and :meth:`switchover` (blocks until the switchover is done or refused, bounded by ``wait``). A store fault
    or a wall-clock step reaches the node at its next store call (within one heartbeat interval); a spool fault
    at its next spool call (a working active calls it at least every ``poll_s``, 0.5 s); a worker kill at the
    node's next page record.
    Atomicity: the control file is replaced atomically (the node reads the old or the new faults, never a mix).
    Thread-safe: :attr:`history` is appended under a lock, so a switchover may race a fault on another thread.
    """

    def __init__(self, nodes: NodeProcesses) -> None:
        self.nodes = nodes
        self.history: list[NemesisAction] = []
        self._lock = threading.Lock()
        self._paused: set[str] = set()
        self._faults: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------------------------------ history

    def _record(self, action: str, node: str, mono: float, ended: float | None = None, **detail: Any) -> NemesisAction:
        entry = NemesisAction(mono, action, node, mono if ended is None else ended, detail)
        with self._lock:
            self.history.append(entry)
        return entry

    def actions(self, *kinds: str) -> list[NemesisAction]:
        """The history, only the given kinds of action when some are named."""
        with self._lock:
            return [a for a in self.history if not kinds or a.action in kinds]

    def kills(self) -> list[tuple[str, float]]:
        """``(node, monotonic time)`` of every SIGKILL (also those a restart sent), for the audits."""
        return [(a.node, a.mono) for a in self.actions("kill")]

    # ------------------------------------------------------------------------------------------ processes

    def start(self, node: str, priority: int, extra: str | None = None) -> NemesisAction:
        """Write the node's config and start it (``NodeProcesses.start``)."""
        self.nodes.start(node, priority, extra)
        return self._record("start", node, time.monotonic(), priority=priority)

    def start_together(self, priorities: Mapping[str, int]) -> list[NemesisAction]:
        """Start every node at (nearly) the same moment: configs first, then the processes back to back."""
        configs = {name: self.nodes.write_config(name, prio) for name, prio in priorities.items()}
        started = []
        for name, config in configs.items():
            self.nodes.launch(name, config)
            started.append(self._record("start", name, time.monotonic(), priority=priorities[name], together=True))
        return started

    def kill(self, node: str) -> NemesisAction:
        """SIGKILL ``node`` and wait for it to die (its devices go with it)."""
        sent = self.nodes.signal(node, signal.SIGKILL)
        with self._lock:
            self._paused.discard(node)
        return self._record("kill", node, sent, time.monotonic())

    def pause(self, node: str, seconds: float | None = None) -> NemesisAction:
        """SIGSTOP ``node``; with ``seconds``, sleep that long and SIGCONT it (blocks), else see :meth:`resume`.

        A paused node's devices stay as they were (a modem stays off-hook); its monotonic clock jumps when it
        resumes. Pause longer than the timeout to make the back-up take over.
        """
        if seconds is not None and seconds < 0:
            raise ValueError(f"pause: seconds must be ≥ 0, not {seconds!r}")
        sent = self.nodes.signal(node, signal.SIGSTOP)
        with self._lock:
            self._paused.add(node)
        if seconds is None:
            return self._record("pause", node, sent, seconds=None)
        time.sleep(seconds)
        resumed = self._cont(node)
        return self._record("pause", node, sent, resumed, seconds=seconds)

    def resume(self, node: str) -> NemesisAction:
        """SIGCONT ``node`` (a no-op for a node that is not stopped, but logged all the same)."""
        return self._record("resume", node, self._cont(node))

    def _cont(self, node: str) -> float:
        sent = self.nodes.signal(node, signal.SIGCONT)
        with self._lock:
            self._paused.discard(node)
        return sent

    def restart(self, node: str) -> NemesisAction:
        """Start ``node`` again from its existing config; a node still running is SIGKILLed first.

        A former primary comes back PASSIVE (no automatic failback).
        """
        proc = self.nodes.procs.get(node)
        if proc is not None and proc.poll() is None:
            self.kill(node)
        self.nodes.launch(node, self.nodes.config_path(node))
        return self._record("restart", node, time.monotonic())

    def paused(self) -> list[str]:
        """The nodes this nemesis stopped and has not resumed, sorted."""
        with self._lock:
            return sorted(self._paused)

    # ---------------------------------------------------------------------------------------- switchover

    def cli_config(self) -> Path:
        """A config with the cluster's plain shared-folder store, for ``zetafailover`` admin commands.

        (The nodes' configs name a ``faulty+file`` store; an administrator's command should see the shared
        folder as it is, not through the faults the nemesis injects into the nodes.)
        """
        path = self.nodes.folder / "nemesis-cli.toml"
        if not path.exists():
            write_node_config(
                self.nodes.folder,
                "nemesis-cli",
                1,
                cluster=self.nodes.cluster,
                profile=self.nodes.profile,
                timing=self.nodes.timing,
                terminator="none",
                devices=0,
            )
        return path

    def switchover(self, to: str | None = None, *, via: str = "admin", wait: float | None = 60.0) -> NemesisAction:
        """Ask for a planned switchover (to ``to``, or the best standby) and wait until it is done or refused.

        ``via="admin"`` calls :func:`zetafailover.admin.request_switchover` in this process; ``via="cli"`` runs
        ``zetafailover switchover`` as a user would. The action's ``detail`` has ``ok`` (bool) and ``result``
        (the outcome or the refusal's reason); a refusal is recorded, not raised. Blocks up to ``wait`` seconds
        (the CLI: its own default wait).
        """
        if via not in ("admin", "cli"):
            raise ValueError(f"switchover: via must be 'admin' or 'cli', not {via!r}")
        started = time.monotonic()
        ok, result = self._switch_cli(to) if via == "cli" else self._switch_admin(to, wait)
        return self._record("switchover", "", started, time.monotonic(), to=to or "", via=via, ok=ok, result=result)

    def _switch_admin(self, to: str | None, wait: float | None) -> tuple[bool, str]:
        config = load_config(self.cli_config())
        clock = SystemClock()
        store = open_store(config, clock)
        try:
            done = request_switchover(store, config.cluster, config.timing, clock, target=to or "", wait=wait)
        except (ZetafailoverError, TimeoutError) as exc:
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            store.close()
        return True, f"{done.status}: {done.reason}"

    def _switch_cli(self, to: str | None) -> tuple[bool, str]:
        self.cli_config()
        out = self.nodes.cli("switchover", *(["--to", to] if to else []), config="nemesis-cli")
        return out.returncode == 0, (out.stdout + out.stderr).strip()

    # ---------------------------------------------------------------------------------- store and clock

    def _targets(self, node: str | None) -> list[str]:
        names = [node] if node else sorted(self.nodes.procs)
        if not isinstance(self.nodes, FaultableNodes):
            raise TypeError(
                "store, spool and folder faults, worker kills and wall-clock steps need FaultableNodes (nodes that "
                f"load the fault plugin), not {type(self.nodes).__name__}"
            )
        if not names:
            raise ValueError("no node to inject a fault into: start the nodes first or name one")
        return names

    def _write_control(self, name: str) -> float:
        assert isinstance(self.nodes, FaultableNodes)
        data = json.dumps(self._faults.get(name, {}), sort_keys=True).encode() + b"\n"
        atomic_write(self.nodes.control_path(name), data)
        return time.monotonic()

    def store_fault(self, mode: str, node: str | None = None, *, delay: float = 0.0) -> list[NemesisAction]:
        """Make the heartbeat store ``mode`` for ``node`` (``None``: every node started so far); the spool is untouched.

        Modes: ``unreadable``, ``read_only``, ``full``, ``slow`` (with ``delay`` seconds per operation),
        ``stale`` (reads return an old record), ``ok`` (same as :meth:`heal_store`). For the spool see
        :meth:`spool_fault`, for both at once :meth:`folder_fault`.
        """
        self._check_mode("store_fault", mode, STORE_MODES, delay)
        return self._set_faults("store_fault", "heal_store", ("store",), mode, node=node, delay=delay)

    def heal_store(self, node: str | None = None) -> list[NemesisAction]:
        """Clear the store faults of ``node`` (``None``: every node)."""
        return self.store_fault("ok", node)

    def spool_fault(self, mode: str, node: str | None = None, *, delay: float = 0.0) -> list[NemesisAction]:
        """Make the spool folder ``mode`` for ``node`` (``None``: every node started so far); the store is untouched.

        Modes: ``unreadable`` (EACCES on every operation), ``read_only`` (EROFS on every write), ``full`` (ENOSPC
        on every write), ``slow`` (``delay`` seconds before every operation), ``ok`` (same as :meth:`heal_spool`).
        See :mod:`zetafailover.testing.faulty_spool` for what counts as a write, and
        ``docs/nemesis-and-audits.md`` for what a node does under each.
        """
        self._check_mode("spool_fault", mode, SPOOL_MODES, delay)
        return self._set_faults("spool_fault", "heal_spool", ("spool",), mode, node=node, delay=delay)

    def heal_spool(self, node: str | None = None) -> list[NemesisAction]:
        """Clear the spool faults of ``node`` (``None``: every node)."""
        return self.spool_fault("ok", node)

    def folder_fault(self, mode: str, node: str | None = None, *, delay: float = 0.0) -> list[NemesisAction]:
        """The whole shared folder — heartbeat store and spool together — ``mode`` for ``node`` (``None``: all).

        Modes: those common to :meth:`store_fault` and :meth:`spool_fault` (``unreadable``, ``read_only``,
        ``full``, ``slow``, ``ok``). Both parts change in one atomic replace of the control file.
        """
        self._check_mode("folder_fault", mode, tuple(m for m in SPOOL_MODES if m in STORE_MODES), delay)
        return self._set_faults("folder_fault", "heal_folder", ("store", "spool"), mode, node=node, delay=delay)

    def heal_folder(self, node: str | None = None) -> list[NemesisAction]:
        """Clear the store and spool faults of ``node`` (``None``: every node)."""
        return self.folder_fault("ok", node)

    def kill_worker(self, node: str) -> NemesisAction:
        """Make ``node``'s fax worker die mid-job while the node process lives.

        The next page that a dispatcher worker of ``node`` records raises
        :class:`~zetafailover.testing.faulty_spool.WorkerKilled` (a ``BaseException``) in that worker thread,
        before the page is recorded: the thread dies with its job in flight. The node's dispatcher replaces the
        worker, which resumes the job from its first unrecorded page (event ``worker_died`` in the node's log).
        Requests made before the node's next page record merge into one death. ``detail["token"]`` is the
        request's token; returns once the control file is replaced.
        """
        (name,) = self._targets(node)
        token = secrets.token_hex(8)
        with self._lock:
            self._faults.setdefault(name, {})["worker"] = {"kill": token}
            at = self._write_control(name)
        return self._record("kill_worker", name, at, token=token)

    @staticmethod
    def _check_mode(what: str, mode: str, modes: tuple[str, ...], delay: float) -> None:
        if mode not in modes:
            raise ValueError(f"{what}: mode {mode!r} is not one of {', '.join(modes)}")
        if mode == "slow" and delay <= 0:
            raise ValueError(f"{what}: mode 'slow' needs delay > 0, not {delay!r}")

    def _set_faults(
        self, action: str, heal: str, parts: tuple[str, ...], mode: str, *, node: str | None, delay: float
    ) -> list[NemesisAction]:
        done = []
        for name in self._targets(node):
            with self._lock:
                faults = self._faults.setdefault(name, {})
                for part in parts:
                    faults[part] = {"mode": mode, "delay": float(delay)}
                at = self._write_control(name)
            done.append(self._record(action if mode != "ok" else heal, name, at, mode=mode, delay=delay))
        return done

    def step_wall(self, node: str, seconds: float) -> NemesisAction:
        """Step ``node``'s wall clock by ``seconds`` (cumulative; negative goes back), not the machine's.

        The node's ``time.time`` moves; its monotonic clock does not. ``detail["offset"]`` is the total offset.
        """
        (name,) = self._targets(node)
        with self._lock:
            faults = self._faults.setdefault(name, {})
            offset = float(faults.get("wall_offset", 0.0)) + float(seconds)
            faults["wall_offset"] = offset
            at = self._write_control(name)
        return self._record("wall_step", name, at, seconds=seconds, offset=offset)

    # ------------------------------------------------------------------------------------------- cleanup

    def heal(self) -> None:
        """Resume every node this nemesis paused; clear every store and spool fault, wall-clock offset and worker
        kill not yet carried out. Idempotent."""
        for name in self.paused():
            with contextlib.suppress(KeyError):
                self.resume(name)
        if isinstance(self.nodes, FaultableNodes):
            with self._lock:
                names = list(self._faults)
                self._faults.clear()
                for name in names:
                    self._write_control(name)
