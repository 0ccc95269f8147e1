"""The terminators, against real processes: pid (pidfd and its fallbacks), command, none, and the factory."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from zetafailover import _process
from zetafailover.clock import FakeClock
from zetafailover.interfaces import FenceTarget, ProcessIdentity, ProcessTerminator
from zetafailover.terminators import CommandTerminator, NullTerminator, PidTerminator
from zetafailover.terminators import pid as pid_mod

pytestmark = pytest.mark.skipif(os.name != "posix", reason="real-process tests use POSIX signals")

PY = sys.executable

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"

# Ignores SIGTERM (and records it), so only SIGKILL ends it.
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)

# Records every catchable signal it receives in the file argv[1] and keeps running: an innocent bystander.
BYSTANDER = (
    "import signal, sys, time\n"
    "path = sys.argv[1]\n"
    "def note(num, frame):\n"
    "    with open(path, 'a') as fh:\n"
    "        fh.write(f'{num}\\n')\n"
    "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCONT):\n"
    "    signal.signal(s, note)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def spawn(procs: list[subprocess.Popen[bytes]], code: str, *args: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([PY, "-c", code, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    procs.append(p)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == b"ready", "child did not start"
    return p


def ident(p: subprocess.Popen[bytes], role: str = "faxd") -> ProcessIdentity:
    found = _process.identity_of(p.pid, role=role)
    assert found is not None
    return found


def target(*processes: ProcessIdentity, node: str = "fax1", term: int = 4) -> FenceTarget:
    return FenceTarget(node=node, term=term, processes=tuple(processes))


def wait_state(pid: int, states: set[str | None], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while _process.process_state(pid) not in states:
        assert time.monotonic() < deadline, f"pid {pid} never reached {states}"
        time.sleep(0.01)


def still_alive(p: subprocess.Popen[bytes]) -> bool:
    time.sleep(0.1)  # let any signal sent land
    return p.poll() is None and _process.process_state(p.pid) in {"S", "R"}


BACKENDS = ["pidfd", "proc", "psutil"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name: str = request.param
    if not sys.platform.startswith("linux"):
        pytest.skip("backends are chosen by platform off Linux")
    if name == "pidfd" and not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    if name == "psutil":
        pytest.importorskip("psutil")
    monkeypatch.setattr(pid_mod, "_backend", lambda: name)
    return name


# ---------------------------------------------------------------------------------------------------- pid


def test_all_terminators_satisfy_the_protocol() -> None:
    for t in (PidTerminator(), CommandTerminator([PY, "-c", "pass"]), NullTerminator()):
        assert isinstance(t, ProcessTerminator)
    assert (PidTerminator.kind, PidTerminator.confirms) == ("pid", True)
    assert (CommandTerminator.kind, CommandTerminator.confirms) == ("command", True)
    assert (NullTerminator.kind, NullTerminator.confirms) == ("none", False)


def test_kills_a_sleeping_child(backend: str, children: list[subprocess.Popen[bytes]]) -> None:
    child = spawn(children, SLEEPER)
    result = PidTerminator(grace=20).terminate(target(ident(child)), timeout=40)
    assert result.confirmed, result.evidence
    assert result.method == "pid"
    assert f"pid {child.pid} (faxd) SIGTERM → exited after" in result.evidence
    assert child.wait(timeout=10) == -signal.SIGTERM
    assert 0 <= result.duration_s < 20


def test_sigterm_ignored_then_sigkill_after_grace(backend: str, children: list[subprocess.Popen[bytes]]) -> None:
    child = spawn(children, STUBBORN)
    result = PidTerminator(grace=0.3).terminate(target(ident(child)), timeout=30)
    assert result.confirmed, result.evidence
    assert "SIGTERM ignored for" in result.evidence
    assert "SIGKILL → exited after" in result.evidence
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert 0.3 <= result.duration_s < 20


def test_stopped_child_is_killed_without_being_woken(
    backend: str, children: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A paused old active must never run again, not even to handle SIGTERM: it gets SIGKILL while stopped."""
    log = tmp_path / "signals"
    child = spawn(children, BYSTANDER, str(log))
    child.send_signal(signal.SIGSTOP)
    wait_state(child.pid, {"T"})
    result = PidTerminator(grace=20).terminate(target(ident(child)), timeout=40)
    assert result.confirmed, result.evidence
    assert "was stopped: SIGKILL without waking it" in result.evidence
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert result.duration_s < 10  # no grace spent waiting for a SIGTERM it could not handle
    assert not log.exists() or log.read_text() == ""  # no handler ran: not SIGCONT's, not SIGTERM's


def test_stopped_child_ignoring_sigterm_is_killed(backend: str, children: list[subprocess.Popen[bytes]]) -> None:
    child = spawn(children, STUBBORN)
    child.send_signal(signal.SIGSTOP)
    wait_state(child.pid, {"T"})
    result = PidTerminator(grace=0.2).terminate(target(ident(child)), timeout=30)
    assert result.confirmed, result.evidence
    assert child.wait(timeout=10) == -signal.SIGKILL


def test_reaped_child_is_already_gone(backend: str, children: list[subprocess.Popen[bytes]]) -> None:
    child = spawn(children, SLEEPER)
    recorded = ident(child)
    child.kill()
    child.wait()
    result = PidTerminator().terminate(target(recorded), timeout=10)
    assert result.confirmed, result.evidence
    # the pid is free, or (rarely) already reused by somebody else, who is not signalled
    assert "already gone" in result.evidence or "reused by another process" in result.evidence
    assert result.duration_s < 5


def test_zombie_counts_as_gone(backend: str, children: list[subprocess.Popen[bytes]]) -> None:
    child = spawn(children, "import sys; print('ready', flush=True); sys.exit(7)")
    recorded = ident(child)
    wait_state(child.pid, {"Z"})  # exited, not reaped: it can no longer act
    result = PidTerminator(grace=20).terminate(target(recorded), timeout=40)
    assert result.confirmed, result.evidence
    assert "already exited (zombie" in result.evidence
    assert result.duration_s < 5
    assert child.wait(timeout=10) == 7  # it ended on its own: nothing killed it


def test_reused_pid_is_never_signalled(backend: str, tmp_path: Path, children: list[subprocess.Popen[bytes]]) -> None:
    marks = tmp_path / "signals"
    innocent = spawn(children, BYSTANDER, str(marks))
    real = ident(innocent)
    recorded = replace(real, start_time=real.start_time - 1)  # the pid once belonged to an older process
    result = PidTerminator(grace=0.2).terminate(target(recorded), timeout=10)
    assert result.confirmed, result.evidence  # the recorded process is gone
    assert f"reused by another process (start time {recorded.start_time} ≠ {real.start_time})" in result.evidence
    assert "not signalled" in result.evidence
    assert still_alive(innocent)
    assert not marks.exists(), marks.read_text()


def test_other_host_is_unconfirmed_and_untouched(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    marks = tmp_path / "signals"
    bystander = spawn(children, BYSTANDER, str(marks))
    recorded = replace(ident(bystander), host="fax2.example")
    result = PidTerminator(grace=0.2).terminate(target(recorded), timeout=10)
    assert not result.confirmed
    assert "on host 'fax2.example', not this host" in result.evidence
    assert still_alive(bystander)
    assert not marks.exists()


def test_other_boot_is_unconfirmed_unless_reboots_are_trusted(
    backend: str, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    marks = tmp_path / "signals"
    bystander = spawn(children, BYSTANDER, str(marks))
    recorded = replace(ident(bystander), boot_id="0badb00t-0000-0000-0000-000000000000")
    cautious = PidTerminator(grace=0.2).terminate(target(recorded), timeout=10)
    assert not cautious.confirmed
    assert "the host rebooted since, or another machine has the same host name" in cautious.evidence
    trusting = PidTerminator(grace=0.2, reboot_confirms=True).terminate(target(recorded), timeout=10)
    assert trusting.confirmed, trusting.evidence
    assert "earlier boot of this host" in trusting.evidence
    assert still_alive(bystander)
    assert not marks.exists()


def test_never_signals_itself_or_its_ancestors(backend: str) -> None:
    me = _process.current_identity()
    result = PidTerminator(grace=0.1).terminate(target(me), timeout=5)
    assert not result.confirmed
    assert "is this process itself: refused, never signalled" in result.evidence
    parent = _process.identity_of(os.getppid())
    if parent is not None:
        result = PidTerminator(grace=0.1).terminate(target(parent), timeout=5)
        assert not result.confirmed
        assert "ancestor of this process: refused" in result.evidence
    assert _process.is_same_process(me)


def test_invalid_records_are_never_signalled() -> None:
    me = _process.current_identity()
    for bad in (replace(me, pid=0), replace(me, pid=-1), replace(me, pid=-os.getpid())):
        result = PidTerminator(grace=0.1).terminate(target(bad), timeout=5)
        assert not result.confirmed
        assert "not a valid process id" in result.evidence
    result = PidTerminator().terminate(target(replace(me, pid=os.getppid(), start_time=0)), timeout=5)
    assert not result.confirmed
    assert "no recorded start time" in result.evidence


def test_no_processes_recorded_is_unconfirmed() -> None:
    result = PidTerminator().terminate(target(), timeout=5)
    assert not result.confirmed
    assert "no processes recorded" in result.evidence


def test_fences_what_it_can_but_confirms_only_all(children: list[subprocess.Popen[bytes]]) -> None:
    local = spawn(children, SLEEPER)
    remote = replace(ident(local), host="fax2.example", pid=4242)
    result = PidTerminator(grace=20).terminate(target(ident(local), remote), timeout=40)
    assert not result.confirmed
    assert child_ended(local) == -signal.SIGTERM
    assert f"pid {local.pid} (faxd) SIGTERM → exited" in result.evidence
    assert "pid 4242 (faxd) on host 'fax2.example'" in result.evidence


def child_ended(p: subprocess.Popen[bytes]) -> int:
    return p.wait(timeout=10)


def test_several_processes_share_one_grace(children: list[subprocess.Popen[bytes]]) -> None:
    stubborn = [spawn(children, STUBBORN) for _ in range(3)]
    began = time.monotonic()
    result = PidTerminator(grace=1.0).terminate(target(*(ident(c) for c in stubborn)), timeout=30)
    took = time.monotonic() - began
    assert result.confirmed, result.evidence
    assert result.evidence.count("SIGKILL → exited") == 3
    assert took < 2.9  # one grace for all, not one after another (3 × 1 s)
    assert all(c.wait(timeout=10) == -signal.SIGKILL for c in stubborn)


def test_grace_is_shortened_so_sigkill_fits_the_timeout(backend: str, children: list[subprocess.Popen[bytes]]) -> None:
    child = spawn(children, STUBBORN)
    result = PidTerminator(grace=60).terminate(target(ident(child)), timeout=1.0)
    assert result.confirmed, result.evidence
    assert re.search(r"SIGTERM ignored for 0\.[2-9]\d s", result.evidence), result.evidence  # ~ timeout / 2
    assert result.duration_s < 10
    assert child.wait(timeout=10) == -signal.SIGKILL


def test_a_process_that_survives_sigkill_is_unconfirmed_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, children: list[subprocess.Popen[bytes]]
) -> None:
    # A process in uninterruptible sleep (D) outlives SIGKILL; simulate it by letting no signal through.
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    monkeypatch.setattr(pid_mod, "_backend", lambda: "pidfd")
    sent: list[str] = []
    monkeypatch.setattr(pid_mod._PidfdHandle, "send", lambda self, sig: sent.append(sig))
    child = spawn(children, SLEEPER)
    began = time.monotonic()
    result = PidTerminator(grace=0.3).terminate(target(ident(child)), timeout=1.0)
    took = time.monotonic() - began
    assert not result.confirmed
    assert "SIGKILL sent but still present after" in result.evidence
    assert "not confirmed" in result.evidence
    assert sent == ["SIGTERM", "SIGKILL"]
    assert 0.9 <= took < 10
    assert 0.9 <= result.duration_s < 10
    assert child.poll() is None


def test_fake_clock_bounds_the_wait(monkeypatch: pytest.MonkeyPatch, children: list[subprocess.Popen[bytes]]) -> None:
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    monkeypatch.setattr(pid_mod, "_backend", lambda: "pidfd")
    monkeypatch.setattr(pid_mod._PidfdHandle, "send", lambda self, sig: None)
    child = spawn(children, SLEEPER)
    clock = FakeClock()
    result = PidTerminator(grace=0.2, clock=clock).terminate(target(ident(child)), timeout=0.6)
    assert not result.confirmed
    assert 0.6 <= result.duration_s < 5  # measured on the fake clock, which the wait moved along


def test_permission_denied_is_unconfirmed(
    monkeypatch: pytest.MonkeyPatch, children: list[subprocess.Popen[bytes]]
) -> None:
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    monkeypatch.setattr(pid_mod, "_backend", lambda: "pidfd")

    def refuse(self: object, sig: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(pid_mod._PidfdHandle, "send", refuse)
    child = spawn(children, SLEEPER)
    result = PidTerminator(grace=0.2).terminate(target(ident(child)), timeout=5)
    assert not result.confirmed
    assert "permission denied to send SIGTERM" in result.evidence
    assert child.poll() is None


def test_falls_back_when_the_kernel_has_no_pidfd(
    monkeypatch: pytest.MonkeyPatch, children: list[subprocess.Popen[bytes]]
) -> None:
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    monkeypatch.setattr(pid_mod, "_broken", set())

    def enosys(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", enosys)
    child = spawn(children, SLEEPER)
    result = PidTerminator(grace=20).terminate(target(ident(child)), timeout=40)
    assert result.confirmed, result.evidence
    assert child.wait(timeout=10) == -signal.SIGTERM
    assert pid_mod._backend() in {"psutil", "proc"}


def test_without_proc_psutil_start_times_are_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    # What macOS and Windows do: start times are psutil's create_time in microseconds.
    pytest.importorskip("psutil")
    monkeypatch.setattr(_process, "_has_proc", lambda: False)
    monkeypatch.setattr(pid_mod, "_backend", lambda: "psutil")
    marks = tmp_path / "signals"
    innocent = spawn(children, BYSTANDER, str(marks))
    real = ident(innocent)
    assert real.start_time > 10**15  # microseconds since the epoch, not clock ticks since boot
    assert _process.process_state(innocent.pid) in {"S", "R"}
    assert _process.is_same_process(real) is True
    assert _process.is_same_process(replace(real, start_time=real.start_time + 1)) is False
    reused = PidTerminator(grace=0.2).terminate(target(replace(real, start_time=real.start_time - 10**6)), 10)
    assert reused.confirmed, reused.evidence
    assert "reused by another process" in reused.evidence
    assert still_alive(innocent)
    assert not marks.exists()
    child = spawn(children, SLEEPER)
    result = PidTerminator(grace=20).terminate(target(ident(child)), timeout=40)
    assert result.confirmed, result.evidence
    assert child.wait(timeout=10) == -signal.SIGTERM


def test_bad_arguments_are_refused() -> None:
    for grace in (-1, float("nan"), "3", True):
        with pytest.raises(ValueError, match="grace"):
            PidTerminator(grace=grace)  # type: ignore[arg-type]
    for timeout in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            PidTerminator().terminate(target(), timeout=timeout)


# ------------------------------------------------------------------------------------------------ command


def test_command_exit_zero_confirms() -> None:
    t = CommandTerminator([PY, "-c", "import sys; print('powered off'); sys.exit(0)"])
    result = t.terminate(target(), timeout=30)
    assert result.confirmed, result.evidence
    assert result.method == "command"
    assert "exited 0" in result.evidence
    assert "stdout: powered off" in result.evidence


def test_command_nonzero_is_unconfirmed_with_status_and_stderr() -> None:
    code = "import sys; print('ipmi: no route to host', file=sys.stderr); sys.exit(3)"
    result = CommandTerminator([PY, "-c", code]).terminate(target(), timeout=30)
    assert not result.confirmed
    assert "exited with status 3" in result.evidence
    assert "stderr: ipmi: no route to host" in result.evidence


def test_command_killed_by_a_signal_is_unconfirmed() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    result = CommandTerminator([PY, "-c", code]).terminate(target(), timeout=30)
    assert not result.confirmed
    assert "killed by signal 9 (SIGKILL)" in result.evidence


def test_command_output_is_capped() -> None:
    code = "import sys; sys.stderr.write('x' * 100000 + 'END'); sys.exit(1)"
    result = CommandTerminator([PY, "-c", code]).terminate(target(), timeout=30)
    assert not result.confirmed
    assert "END" in result.evidence
    assert len(result.evidence) < 4500


def test_command_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    info = tmp_path / "grandchild.json"
    agent = (
        "import json, subprocess, sys, time\n"
        "from zetafailover._process import identity_of\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "i = identity_of(g.pid)\n"
        "open(sys.argv[1] + '.tmp', 'w').write(json.dumps([g.pid, i.start_time]))\n"
        "import os; os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "time.sleep(60)\n"
    )
    t = CommandTerminator([PY, "-c", agent, str(info)], timeout=3.0)
    began = time.monotonic()
    result = t.terminate(target(), timeout=30)
    took = time.monotonic() - began
    assert not result.confirmed
    assert "timed out after 3 s; its process group was killed" in result.evidence
    assert 3.0 <= took < 15
    assert info.exists(), "the agent did not start its grandchild within 3 s"
    gpid, gstart = json.loads(info.read_text())
    grandchild = ProcessIdentity(
        host=_process.this_host(), boot_id=_process.boot_id(), pid=gpid, start_time=gstart, role="grandchild"
    )
    deadline = time.monotonic() + 10
    while _process.is_same_process(grandchild) and _process.process_state(gpid) != "Z":
        assert time.monotonic() < deadline, "the agent's grandchild survived the timeout"
        time.sleep(0.02)


def test_command_call_timeout_applies_when_smaller() -> None:
    t = CommandTerminator([PY, "-c", "import time; time.sleep(60)"], timeout=50)
    result = t.terminate(target(), timeout=0.5)
    assert not result.confirmed
    assert "timed out after 0.5 s" in result.evidence
    assert result.duration_s < 10


def test_command_missing_executable(tmp_path: Path) -> None:
    missing = str(tmp_path / "fence_nothing")
    result = CommandTerminator([missing, "{node}"]).terminate(target(), timeout=5)
    assert not result.confirmed
    assert f"fencing command {missing!r} not found" in result.evidence


def test_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "fence_site"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    if os.geteuid() == 0 and os.access(script, os.X_OK):
        pytest.skip("root may execute anything here")
    result = CommandTerminator([str(script)]).terminate(target(), timeout=5)
    assert not result.confirmed
    assert "not executable" in result.evidence


def test_command_placeholders_are_substituted_per_argument(tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    code = (
        "import json, os, sys\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith(('ZETAFAILOVER_', 'SITE_'))}\n"
        "json.dump({'argv': sys.argv[2:], 'env': env}, open(sys.argv[1], 'w'))\n"
    )
    argv = [PY, "-c", code, str(out), "--node={node}", "{term}", "{host}", "{pids}", "{other}", "{{node}}", "{node"]
    argv += ["{NODE}", "{0}", "{node.__class__}", "x{pids}y{term}"]
    processes = (
        ProcessIdentity(host="fax1.example", boot_id="b", pid=11, start_time=1),
        ProcessIdentity(host="fax1.example", boot_id="b", pid=22, start_time=2, role="modem"),
        ProcessIdentity(host="fax1-b", boot_id="c", pid=33, start_time=3),
    )
    t = CommandTerminator(argv, env={"SITE_TOKEN": "s3cret"})
    result = t.terminate(FenceTarget(node="fax1", term=7, processes=processes), timeout=30)
    assert result.confirmed, result.evidence
    assert "s3cret" not in result.evidence
    seen = json.loads(out.read_text())
    assert seen["argv"] == [
        "--node=fax1",
        "7",
        "fax1.example,fax1-b",
        "11,22,33",
        "{other}",
        "{fax1}",
        "{node",
        "{NODE}",
        "{0}",
        "{node.__class__}",
        "x11,22,33y7",
    ]
    assert seen["env"] == {
        "SITE_TOKEN": "s3cret",
        "ZETAFAILOVER_NODE": "fax1",
        "ZETAFAILOVER_TERM": "7",
        "ZETAFAILOVER_HOST": "fax1.example,fax1-b",
        "ZETAFAILOVER_PIDS": "11,22,33",
    }


def test_command_refuses_unsafe_values_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    t = CommandTerminator([PY, "-c", "import sys; open(sys.argv[1], 'w')", str(marker), "{host}"])
    evil = ProcessIdentity(host="-oProxyCommand=touch /tmp/x", boot_id="b", pid=5, start_time=1)
    result = t.terminate(target(evil), timeout=10)
    assert not result.confirmed
    assert "not run" in result.evidence
    assert "-oProxyCommand" in result.evidence
    result = t.terminate(FenceTarget(node="a;b", term=1, processes=()), timeout=10)
    assert not result.confirmed
    assert "node name 'a;b'" in result.evidence
    assert not marker.exists()


def test_command_argv_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="shell"):
        CommandTerminator("ssh fax1 pkill faxd")
    with pytest.raises(ValueError, match="shell"):
        CommandTerminator(b"ssh fax1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least the program"):
        CommandTerminator([])
    with pytest.raises(ValueError, match=r"command\[1\]"):
        CommandTerminator(["ssh", 5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="NUL"):
        CommandTerminator(["ssh", "a\x00b"])
    with pytest.raises(ValueError, match="timeout"):
        CommandTerminator(["ssh"], timeout=0)
    with pytest.raises(ValueError, match="env"):
        CommandTerminator(["ssh"], env={"A=B": "x"})


# --------------------------------------------------------------------------------------------------- none


def test_null_never_confirms_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="zetafailover.terminators.null"):
        t = NullTerminator()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    me = _process.current_identity()
    result = t.terminate(target(me), timeout=5)
    assert not result.confirmed
    assert result.method == "none"
    assert result.evidence == (
        "the none terminator is explicitly unsafe: takeover waits for the old active's self-fence deadline"
    )
    assert not t.confirms
