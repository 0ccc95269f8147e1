"""Throw-away etcd servers for tests and benchmarks: one member or a cluster, on free loopback ports.

::

    with EtcdCluster(tmp_path, size=3) as cluster:      # started, healthy and verified to be ours
        url = cluster.url("my-test")                    # etcd://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/my-test
        cluster.kill(0)                                 # SIGKILL member 0
        cluster.restart(0)                              # same data dir and ports, rejoins the cluster
    # every member SIGKILLed, data dirs removed

Every member runs ``/usr/bin/etcd`` (or ``$TEST_ETCD_BINARY``) with its own temporary data dir, a unique
``--name`` and test-tuned raft timing. Readiness means: ``/health`` answers ``{"health":"true"}`` (a leader
exists) **and** the member list answered on that port contains our unique name, so a stray server already
listening on a port can never pass for ours. Teardown is SIGKILL (the data is temporary; SIGTERM of a
cluster without quorum takes seconds). The child processes get an environment without any ``ETCD_*``
variable, because etcd reads each as a flag.

Timing: :meth:`EtcdCluster.start` blocks until every member is ready (typically 0.1–2.5 s; at most its
``timeout``); the signal methods return at once; :meth:`EtcdCluster.wait_healthy` blocks at most its timeout.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from zetafailover.interfaces import HeartbeatRecord
from zetafailover.stores._etcd_client import EtcdClient, EtcdError
from zetafailover.stores.etcd import EtcdHeartbeatStore
from zetafailover.testing.processes import NodeProcesses, write_node_config

__all__ = ["EtcdCluster", "EtcdMember", "EtcdNodeProcesses", "etcd_binary", "etcd_missing_reason"]

DEFAULT_BINARY = "/usr/bin/etcd"
BINARY_ENV = "TEST_ETCD_BINARY"
"""Environment variable naming another etcd binary (never ``ETCD_*``: etcd would read it as a flag)."""


def etcd_binary() -> str | None:
    """The etcd binary to use (``$TEST_ETCD_BINARY`` or ``/usr/bin/etcd``), or None when it is not installed."""
    path = os.environ.get(BINARY_ENV) or DEFAULT_BINARY
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return shutil.which("etcd") if not os.environ.get(BINARY_ENV) else None


def etcd_missing_reason() -> str:
    """Why etcd tests cannot run here ("" when they can): for ``pytest.mark.skipif``."""
    if etcd_binary() is not None:
        return ""
    return (
        f"etcd is not installed ({os.environ.get(BINARY_ENV) or DEFAULT_BINARY} missing): install the Debian package "
        f"etcd-server (CI does) or point {BINARY_ENV} at an etcd binary"
    )


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (held open together while choosing)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class EtcdMember:
    """One member: its name, ports, data dir, log and process (None while not running)."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_once: bool = False
    stopped: bool = field(default=False)
    """SIGSTOPped and not yet continued."""

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """``size`` throw-away etcd members on loopback (``size=1``: a single server). A context manager.

    ``heartbeat_ms`` / ``election_ms`` set etcd's raft timing; the defaults (50 / 500 ms) let a 3-member
    cluster elect a new leader in well under a second yet stay stable on a busy 2-core machine; the minimum
    lease TTL is then ``ceil(1.5 × election_ms)`` = 1 s.
    """

    def __init__(
        self,
        base_dir: Path,
        size: int = 1,
        *,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        binary: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"an etcd cluster needs at least one member, not {size}")
        found = binary or etcd_binary()
        if found is None:
            raise RuntimeError(etcd_missing_reason())
        self.binary = found
        self.base_dir = Path(base_dir)
        self.size = size
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.token = f"zf-{secrets.token_hex(4)}"
        self.members: list[EtcdMember] = []

    # ------------------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self, timeout: float = 60.0, attempts: int = 3) -> EtcdCluster:
        """Start every member and wait until all are healthy and ours. Retries with new ports if one is taken.

        Raises RuntimeError with the members' log tails when the cluster does not come up, and at once when
        this cluster is running already (the context manager starts it: a second start would leave the first
        members running with nobody to close them).
        """
        if any(m.running for m in self.members):
            raise RuntimeError("this etcd cluster is running already (the `with` block started it)")
        last = ""
        for _ in range(attempts):
            self._plan()
            for member in self.members:
                self._spawn(member, state="new")
            try:
                self.wait_healthy(timeout=timeout)
                return self
            except RuntimeError as exc:
                last = str(exc)
                self.close()
                if "address already in use" not in last:
                    break
        raise RuntimeError(f"etcd cluster did not start: {last}")

    def close(self) -> None:
        """SIGKILL every member, reap it and remove the data dirs. Idempotent."""
        for member in self.members:
            if member.proc is not None and member.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    member.proc.send_signal(signal.SIGKILL)
            if member.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    member.proc.wait(timeout=10)
            shutil.rmtree(member.data_dir, ignore_errors=True)

    def _plan(self) -> None:
        ports = _free_ports(2 * self.size)
        run = secrets.token_hex(3)
        self.members = []
        for i in range(self.size):
            folder = self.base_dir / f"etcd-{self.token}-{run}-{i}"
            folder.mkdir(parents=True, exist_ok=True)
            self.members.append(
                EtcdMember(
                    name=f"{self.token}-{run}-m{i}",
                    client_port=ports[2 * i],
                    peer_port=ports[2 * i + 1],
                    data_dir=folder / "data",
                    log_path=folder / "etcd.log",
                )
            )

    def _spawn(self, member: EtcdMember, state: str) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        argv = [
            self.binary,
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", f"http://{member.endpoint}",
            "--advertise-client-urls", f"http://{member.endpoint}",
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", state,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with member.log_path.open("ab") as log:
            member.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        member.started_once = True
        member.stopped = False

    # ------------------------------------------------------------------------------------------ readiness

    def wait_healthy(self, indexes: list[int] | None = None, timeout: float = 30.0) -> None:
        """Wait until the members ``indexes`` (default: all running ones) report health and are ours.

        Raises RuntimeError naming the member, what was last seen and the tail of its log.
        """
        chosen = [self.members[i] for i in (indexes if indexes is not None else range(self.size))]
        deadline = time.monotonic() + timeout
        for member in chosen:
            last = "no answer yet"
            while True:
                if member.proc is None or member.proc.poll() is not None:
                    raise RuntimeError(f"etcd member {member.name} exited: {self.log_tail(member)}")
                ok, last = self._probe(member)
                if ok:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"etcd member {member.name} not healthy after {timeout:g} s ({last}): {self.log_tail(member)}"
                    )
                time.sleep(0.02)

    def _probe(self, member: EtcdMember) -> tuple[bool, str]:
        client = EtcdClient([("127.0.0.1", member.client_port)])
        if not client.health(timeout=1.0):
            return False, "/health is not true (yet)"
        try:
            names = client.member_names(timeout=1.0)
        except EtcdError as exc:
            return False, f"member list: {exc}"
        if member.name not in names:
            return False, f"port {member.client_port} is served by another etcd (members {names}), not {member.name}"
        return True, "healthy"

    def leader_index(self, timeout: float = 10.0) -> int:
        """The index of the member that is the raft leader now, as the running members report it
        (``maintenance/status``: its ``leader`` id matched to each member's own id). Waits up to ``timeout``
        for a leader; RuntimeError if none appears. A test that kills one member and must not cause an
        election kills one that is not the leader."""
        deadline = time.monotonic() + timeout
        last = "no member answered"
        while True:
            ids: dict[str, int] = {}
            leader = ""
            for index, member in enumerate(self.members):
                if not member.running or member.stopped:
                    continue
                client = EtcdClient([("127.0.0.1", member.client_port)])
                try:
                    status = client.call("maintenance/status", {}, 1.0)
                except EtcdError as exc:
                    last = f"{member.name}: {exc}"
                    continue
                own = str(status.get("header", {}).get("member_id", ""))
                if own:
                    ids[own] = index
                leader = str(status.get("leader", "")) or leader
            if leader in ids:
                return ids[leader]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no etcd leader within {timeout:g} s ({last})")
            time.sleep(0.05)

    def log_tail(self, member: EtcdMember, size: int = 2000) -> str:
        try:
            return member.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    # -------------------------------------------------------------------------------------------- faults

    def kill(self, index: int) -> float:
        """SIGKILL member ``index`` and reap it; returns the monotonic time of the signal."""
        member = self.members[index]
        sent = time.monotonic()
        if member.proc is not None and member.proc.poll() is None:
            member.proc.send_signal(signal.SIGKILL)
            member.proc.wait(timeout=10)
        return sent

    def freeze(self, index: int) -> float:
        """SIGSTOP member ``index`` (it keeps its sockets but answers nothing); returns the signal time."""
        member = self.members[index]
        sent = time.monotonic()
        if member.proc is not None and member.proc.poll() is None:
            member.proc.send_signal(signal.SIGSTOP)
            member.stopped = True
        return sent

    def thaw(self, index: int) -> None:
        """SIGCONT member ``index``."""
        member = self.members[index]
        if member.proc is not None and member.proc.poll() is None:
            member.proc.send_signal(signal.SIGCONT)
        member.stopped = False

    def restart(self, index: int, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Start killed member ``index`` again with its data dir and ports (it rejoins as an existing member).

        With ``wait`` blocks until it is healthy, which needs a quorum (with two of three members dead,
        restart both with ``wait=False`` and then call :meth:`wait_healthy`).
        """
        member = self.members[index]
        if member.running:
            raise RuntimeError(f"etcd member {member.name} is still running")
        self._spawn(member, state="existing")
        if wait:
            self.wait_healthy([index], timeout=timeout)

    # ---------------------------------------------------------------------------------------------- URLs

    @property
    def endpoints(self) -> list[str]:
        """``host:port`` of every member's client URL, in member order."""
        return [m.endpoint for m in self.members]

    def url(self, prefix: str = "", first: int = 0) -> str:
        """A store URL for this cluster: ``etcd://E1,E2,E3/prefix``, listing member ``first`` first."""
        eps = self.endpoints
        rotated = eps[first % len(eps) :] + eps[: first % len(eps)]
        return f"etcd://{','.join(rotated)}" + (f"/{prefix}" if prefix else "")


class EtcdNodeProcesses(NodeProcesses):
    """Real ``zetafailover run`` processes whose heartbeat store is ``etcd`` (and whose spool is ``folder/spool``).

    Like :class:`~zetafailover.testing.processes.NodeProcesses` (same configs, signals, events, device logs),
    except that each node's store URL lists the members of ``etcd`` starting with the one given to
    :meth:`start` (the member that node talks to first), under the key prefix ``prefix``, and that
    :meth:`record` reads the heartbeat from etcd (None while etcd has no quorum).
    """

    def __init__(
        self,
        folder: Path,
        etcd: EtcdCluster,
        *,
        prefix: str = "zf-test",
        cluster: str = "demo",
        profile: str = "fast",
        timing: Mapping[str, float] | None = None,
        terminator: str = "pid",
        member_of: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(folder, cluster=cluster, profile=profile, timing=timing, terminator=terminator)
        self.member_of = dict(member_of or {})
        """The etcd member each node talks to first when :meth:`start` is not told (default: member 0)."""
        self.etcd = etcd
        self.prefix = prefix
        self.spool_dir = folder / "spool"
        self.first_endpoint: dict[str, int] = {}
        self.observer = EtcdHeartbeatStore(etcd.endpoints, cluster, prefix=prefix, timeout=2.0)

    def start(
        self, name: str, priority: int, extra: str | None = None, *, first_endpoint: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Write the node's config (store: etcd, listing member ``first_endpoint`` first) and start it."""
        self.first_endpoint[name] = self.member_of.get(name, 0) if first_endpoint is None else first_endpoint
        return super().start(name, priority, extra)

    def write_config(self, name: str, priority: int, extra: str | None = None) -> Path:
        """The usual node config, with the etcd store URL and a spool folder every node shares."""
        return write_node_config(
            self.folder,
            name,
            priority,
            cluster=self.cluster,
            profile=self.profile,
            timing=self.timing,
            terminator=self.terminator,
            devices=self.devices,
            extra=(self.extra if extra is None else extra) + f'\n[spool]\npath = "{self.spool_dir}"\n',
            device_options=self.device_options,
            store=self.etcd.url(self.prefix, first=self.first_endpoint.get(name, self.member_of.get(name, 0))),
        )

    def record(self) -> HeartbeatRecord | None:
        return self.observer.read().record

    def logs(self) -> str:
        etcd_logs = "\n".join(f"--- etcd {m.name}\n{self.etcd.log_tail(m, 1500)}" for m in self.etcd.members)
        return super().logs() + "\n" + etcd_logs

    def close(self) -> None:
        super().close()
        self.observer.close()
