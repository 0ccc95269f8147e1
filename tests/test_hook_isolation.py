"""Invariant 9 on real processes: plugins that raise, hang or dawdle cannot delay or break a takeover."""

from __future__ import annotations

import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zetafailover.testing.processes import NodeProcesses

pytestmark = pytest.mark.realprocess

TIMING = {
    "heartbeat_interval": 0.25,
    "timeout": 2.5,
    "store_timeout": 0.5,
    "margin": 0.5,
    "fence_timeout": 1.0,
    "hook_timeout": 0.5,
}

BAD_HOOKS = textwrap.dedent(
    """
    import time
    from zetafailover.plugins import hookimpl

    @hookimpl
    def zetafailover_role_changed(transition):
        raise RuntimeError("role hook exploded on purpose")

    @hookimpl
    def zetafailover_term_won(node, term):
        time.sleep(3600)  # hangs for ever

    @hookimpl
    def zetafailover_peer_fenced(node, term, result):
        time.sleep(0.3)  # slow but within its timeout
    """
)

GOOD_HOOKS = textwrap.dedent(
    """
    from zetafailover.plugins import hookimpl

    @hookimpl
    def zetafailover_devices_online(node, term, devices):
        with open("hooks-seen.txt", "a") as fh:
            fh.write(f"devices_online {node} {term}\\n")
    """
)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[NodeProcesses]:
    (tmp_path / "badhooks.py").write_text(BAD_HOOKS, encoding="utf-8")
    (tmp_path / "goodhooks.py").write_text(GOOD_HOOKS, encoding="utf-8")
    p = NodeProcesses(
        tmp_path,
        cluster="hooks",
        profile="fast",
        timing=TIMING,
        extra='\n[plugins]\nmodules = ["badhooks", "goodhooks"]\n',
        env={"PYTHONPATH": str(tmp_path)},
    )
    yield p
    p.close()


def test_raising_hanging_and_slow_hooks_do_not_delay_takeover(pair: NodeProcesses) -> None:
    pair.start("fax1", 200)
    pair.start("fax2", 100)
    first = pair.wait_active()
    assert first.holder == "fax1"
    time.sleep(1.0)
    killed = pair.signal("fax1", signal.SIGKILL)
    second = pair.wait_active(30, holder="fax2", above_term=first.term)
    active_at = pair.became_active_at("fax2", second.term)
    assert active_at is not None
    bound = TIMING["timeout"] + TIMING["heartbeat_interval"] + TIMING["hook_timeout"]
    assert active_at - killed <= bound + 1.0, f"takeover took {active_at - killed:.2f} s (bound {bound} s + 1 s)"
    time.sleep(1.0)
    log = (pair.folder / "fax2.log").read_text()
    assert "badhooks" in log and "role hook exploded on purpose" in log, log[-2000:]
    assert "did not return" in log, log[-2000:]
    # another plugin's hook, due after the hung one, still ran
    seen = (pair.folder / "hooks-seen.txt").read_text()
    assert f"devices_online fax2 {second.term}" in seen
