"""Configuration: profiles, overrides, and errors that name the file, the key and the reason (invariant 7, 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zetafailover.config import load_config
from zetafailover.core.timing import PROFILES, timing_from_profile
from zetafailover.errors import ConfigError, TimingError

GOOD = """
[cluster]
name = "fax"
store = "shared"
profile = "fast"

[node]
name = "fax1"
priority = 150

[terminator]
kind = "pid"

[[device]]
driver = "loopback"
name = "lo0"
channels = 4
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "node.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.cluster == "fax" and cfg.node == "fax1" and cfg.priority == 150
    assert cfg.timing == PROFILES["fast"]
    assert cfg.store_url == "file://" + str((tmp_path / "shared").resolve())
    assert cfg.devices[0].kind == "loopback" and cfg.devices[0].options["channels"] == 4
    assert cfg.state_dir == tmp_path / "state-fax1"


@pytest.mark.parametrize(
    ("name", "heartbeat", "timeout"),
    [("standard", 2.0, 15.0), ("fast", 0.5, 5.0), ("share", 2.0, 30.0), ("lab", 0.1, 1.0)],
)
def test_profiles(name: str, heartbeat: float, timeout: float) -> None:
    t = PROFILES[name]
    assert (t.heartbeat_interval, t.timeout) == (heartbeat, timeout)
    t.check()
    assert t.heartbeat_interval + 2 * t.store_timeout + t.margin <= t.timeout
    assert t.fence_timeout + t.store_timeout <= t.self_fence_after


def test_override_key_by_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD + "\n[timing]\ntimeout = 8\nactivity_timeout = 60\n"))
    assert cfg.timing.timeout == 8.0 and cfg.timing.heartbeat_interval == 0.5 and cfg.timing.activity_timeout == 60
    assert cfg.timing.hash != PROFILES["fast"].hash


@pytest.mark.parametrize(
    ("patch", "key", "reason"),
    [
        (('profile = "fast"', 'profile = "turbo"'), "cluster.profile", "unknown profile"),
        (("priority = 150", 'priority = "high"'), "node.priority", "whole number"),
        (('name = "fax1"', 'name = "fax 1;rm"'), "node.name", "not a valid name"),
        (('kind = "pid"', 'kind = "pid"\nbogus = 1\n[bogus]'), "bogus", "unknown section"),
        (("[node]", '[node]\ncolour = "red"'), "node.colour", "unknown key"),
        (('store = "shared"\n', ""), "cluster.store", "missing"),
    ],
)
def test_errors_name_file_key_and_reason(tmp_path: Path, patch: tuple[str, str], key: str, reason: str) -> None:
    path = write(tmp_path, GOOD.replace(*patch, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and reason in message


def test_timing_rule_error_names_the_values(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[timing]\ntimeout = 3\n")
    with pytest.raises(TimingError) as info:
        load_config(path)
    assert "timing.timeout" in str(info.value) and "0.5 + 2 × 1 + 1 = 3.5 > 3" in str(info.value)


def test_bad_override_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"timing\.timeout: must be a number"):
        load_config(write(tmp_path, GOOD + '\n[timing]\ntimeout = "soon"\n'))
    with pytest.raises(ConfigError, match=r"timing\.heartbeat: unknown key"):
        timing_from_profile("fast", {"heartbeat": 1}, "x.toml")


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[cluster\nname="))
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.toml")


def test_duplicate_device_names(tmp_path: Path) -> None:
    text = GOOD + '\n[[device]]\ndriver = "loopback"\nname = "lo0"\n'
    with pytest.raises(ConfigError, match=r"device\[1\]\.name: device name 'lo0' is used twice"):
        load_config(write(tmp_path, text))


def test_cli_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('profile = "fast"', 'profile = "turbo"'))
    proc = subprocess.run(
        [sys.executable, "-m", "zetafailover", "status", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("zetafailover: error: ") and "cluster.profile" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_status_loads_plugin_modules_for_the_store(tmp_path: Path) -> None:
    """A store scheme that only a ``[plugins] modules`` module provides opens in ``status`` as in ``run``."""
    shared = tmp_path / "shared"
    shared.mkdir()
    path = tmp_path / "node.toml"
    path.write_text(
        '[cluster]\nname = "c"\n'
        f'store = "faulty+file://{shared}?control={tmp_path / "faults.json"}"\nprofile = "fast"\n\n'
        '[node]\nname = "fax1"\npriority = 100\n\n'
        f'[spool]\npath = "{shared / "spool"}"\n\n'
        '[plugins]\nmodules = ["zetafailover.testing.fault_plugin"]\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "zetafailover", "status", "--json", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
