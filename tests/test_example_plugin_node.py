"""The worked example plugin, installed like any third-party package, driving real nodes from config."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from zetafailover.testing.processes import NodeProcesses

pytestmark = [
    pytest.mark.realprocess,
    pytest.mark.skipif(
        importlib.util.find_spec("zetafailover_example_plugin") is None,
        reason="the example plugin is not installed: pip install -e examples/zetafailover-example-plugin",
    ),
]

TIMING = {"heartbeat_interval": 0.25, "timeout": 2.5, "store_timeout": 0.5, "margin": 0.5, "fence_timeout": 1.0}


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[NodeProcesses]:
    p = NodeProcesses(tmp_path, cluster="ex", profile="fast", timing=TIMING)
    yield p
    p.close()


def start(nodes: NodeProcesses, name: str, priority: int) -> None:
    """A node with the example's device (its own log) and the example's line strategy (one shared file)."""
    nodes.start(
        name,
        priority,
        extra=f'\n[[device]]\ndriver = "example"\nname = "ex0"\nlog = "ex0-{name}.log"\n'
        '\n[line]\nstrategy = "logfile"\nlog = "lines.log"\n',
    )


def test_node_uses_example_driver_and_line_strategy(nodes: NodeProcesses) -> None:
    start(nodes, "fax1", 200)
    start(nodes, "fax2", 100)
    first = nodes.wait_active()
    assert first.holder == "fax1"
    killed = nodes.signal("fax1", signal.SIGKILL)
    second = nodes.wait_active(30, holder="fax2", above_term=first.term)
    active_at = nodes.became_active_at("fax2", second.term)
    assert active_at is not None and active_at - killed < TIMING["timeout"] + TIMING["heartbeat_interval"] + 1.0

    lines = (nodes.folder / "lines.log").read_text().splitlines()
    assert any(f"take node=fax1 term={first.term}" in line for line in lines)
    assert lines[-1].endswith(f"take node=fax2 term={second.term}")
    device = (nodes.folder / "ex0-fax2.log").read_text()
    assert f"start term={second.term}" in device


def run_cli(tmp_path: Path, device: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bad.toml"
    config.write_text(
        f'[cluster]\nname = "ex"\nstore = "shared"\nprofile = "lab"\n\n[node]\nname = "fax1"\n\n{device}',
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "zetafailover", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("device", "expect"),
    [
        ('[[device]]\ndriver = "warp-drive"\n', ["device[0]", "warp-drive", "loopback", "example"]),
        ('[[device]]\ndriver = "example"\nname = "ex0"\n', ["device[0]", "log"]),
        ('[[device]]\ndriver = "loopback"\nchannels = 999\n', ["device[0].channels", "1 to"]),
    ],
    ids=["unknown-driver-lists-available", "plugin-validation-rejects", "factory-rejects-value"],
)
def test_startup_errors_are_clear(tmp_path: Path, device: str, expect: list[str]) -> None:
    proc = run_cli(tmp_path, device)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("zetafailover: error: ") and "Traceback" not in proc.stderr
    for word in expect:
        assert word in proc.stderr, proc.stderr
    assert not (tmp_path / "shared" / "heartbeat.json").exists(), "nothing started, nothing written"
