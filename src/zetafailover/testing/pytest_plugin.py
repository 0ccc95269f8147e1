"""pytest fixtures for testing a fax product's failover with zetafailover's own harness.

Installed as the ``pytest11`` entry point ``zetafailover``, so the fixtures are there in every test once the
package is installed (before that, or to be explicit: ``pytest -p zetafailover.testing.pytest_plugin``):

===================  ======================================================================================
fixture              gives
===================  ======================================================================================
``fake_clock``       a :class:`~zetafailover.clock.FakeClock`
``sim_cluster``      a factory: ``sim_cluster(timing, {"fax1": 200, "fax2": 100})`` → a started
                     :class:`~zetafailover.testing.simulation.SimCluster` (simulated time)
``node_pair``        two real ``zetafailover run`` processes (``fax1`` priority 200, ``fax2`` 100) on
                     ``tmp_path``, with loopback devices, started and with an active node; closed after
``nemesis``          a :class:`~zetafailover.testing.nemesis.Nemesis` bound to ``node_pair``; heals after
``exchange``         a simulated telephone exchange in this process (:class:`ExchangeServer`), stopped after;
                     its lines come from the ``zetafailover_exchange_plan`` fixture (override it)
``audits``           the :mod:`zetafailover.testing.audits` module
===================  ======================================================================================

Marker: ``@pytest.mark.zetafailover_realprocess`` — the test starts real node processes on the real clock
(select with ``-m zetafailover_realprocess``, or skip them with ``-m "not zetafailover_realprocess"``).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from zetafailover.clock import FakeClock
from zetafailover.core.timing import PROFILES, Timing
from zetafailover.testing import audits as audits_module
from zetafailover.testing.exchange import ExchangeServer
from zetafailover.testing.nemesis import FaultableNodes, Nemesis
from zetafailover.testing.simulation import SimCluster

__all__ = [
    "MARKER",
    "NODE_PAIR_PAGE_SECONDS",
    "NODE_PAIR_TIMING",
    "audits",
    "exchange",
    "fake_clock",
    "nemesis",
    "node_pair",
    "sim_cluster",
    "zetafailover_exchange_plan",
]

MARKER = "zetafailover_realprocess"

NODE_PAIR_TIMING: dict[str, float] = {
    "heartbeat_interval": 0.25,
    "timeout": 2.5,
    "store_timeout": 0.5,
    "margin": 0.5,
    "fence_timeout": 1.0,
}
"""The ``node_pair`` timing: a takeover in about 3 s, tolerant of a loaded 2-core machine."""

NODE_PAIR_PAGE_SECONDS = 0.15
"""Seconds a ``node_pair`` loopback device takes to send one page."""

SimFactory = Callable[..., SimCluster]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: the test starts real zetafailover node processes on the real clock (slower)"
    )


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`~zetafailover.clock.FakeClock`: time moves only with ``advance``/``sleep``; ``step_wall`` jumps
    the wall clock alone. Never blocks."""
    return FakeClock()


@pytest.fixture
def sim_cluster() -> SimFactory:
    """A factory for started simulated clusters: ``sim_cluster(timing, priorities, **kw)``.

    ``timing`` is a :class:`~zetafailover.core.timing.Timing` or a profile name (``"standard"``, ``"fast"``…);
    ``priorities`` maps node names to priorities; ``kw`` goes to
    :class:`~zetafailover.testing.simulation.SimCluster` (``confirming_terminator``, ``work``, ``step``…). The
    cluster is started (every node's ``start()`` called) but no simulated time has passed: run it with
    ``run_until``/``run_for``. Everything runs in simulated time, in milliseconds of real time.
    """

    def make(timing: Timing | str, priorities: Mapping[str, int], **kw: Any) -> SimCluster:
        if isinstance(timing, str):
            if timing not in PROFILES:
                raise ValueError(f"sim_cluster: unknown profile {timing!r}; known: {', '.join(PROFILES)}")
            timing = PROFILES[timing]
        sim = SimCluster(timing, dict(priorities), **kw)
        sim.start()
        return sim

    return make


@pytest.fixture
def node_pair(tmp_path: Path) -> Iterator[FaultableNodes]:
    """Two real node processes, ``fax1`` (priority 200) and ``fax2`` (100), sharing ``tmp_path/shared``.

    A :class:`~zetafailover.testing.nemesis.FaultableNodes` (a ``NodeProcesses``): timing
    :data:`NODE_PAIR_TIMING` (profile ``fast``), the ``pid`` terminator, one two-channel loopback device per
    node taking :data:`NODE_PAIR_PAGE_SECONDS` per page (logs in ``tmp_path/NAME-device.jsonl``), the spool in
    ``tmp_path/shared/spool``. Yielded once a node is ACTIVE (up to 30 s on a loaded machine); every process is
    stopped afterwards (SIGCONT, SIGTERM, SIGKILL after 15 s). Mark the test ``zetafailover_realprocess``.
    """
    nodes = FaultableNodes(
        tmp_path,
        cluster="pair",
        profile="fast",
        timing=NODE_PAIR_TIMING,
        device_options={"page_seconds": NODE_PAIR_PAGE_SECONDS},
    )
    try:
        nodes.start("fax1", 200)
        nodes.start("fax2", 100)
        nodes.wait_active(30)
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def nemesis(node_pair: FaultableNodes) -> Iterator[Nemesis]:
    """A :class:`~zetafailover.testing.nemesis.Nemesis` for ``node_pair``: SIGKILL, SIGSTOP/SIGCONT, restart,
    switchover, store faults, wall-clock steps, each in ``nemesis.history``. Afterwards every paused node is
    resumed and every fault cleared (before ``node_pair`` closes)."""
    nem = Nemesis(node_pair)
    try:
        yield nem
    finally:
        nem.heal()


@pytest.fixture
def zetafailover_exchange_plan() -> dict[str, Any]:
    """The dial plan of the ``exchange`` fixture. Override it in your conftest or test module.

    Default: an analog line ``fax-line`` with number 5550100, and a 4-channel trunk ``remote`` (5550199) for a
    :class:`~zetafailover.testing.exchange.RemoteFaxMachine`.
    """
    return {
        "lines": [
            {"name": "fax-line", "kind": "analog", "number": "5550100"},
            {"name": "remote", "kind": "trunk", "channels": 4, "number": "5550199"},
        ]
    }


@pytest.fixture
def exchange(zetafailover_exchange_plan: dict[str, Any]) -> Iterator[ExchangeServer]:
    """A simulated exchange (PSTN + PBX) served from this process on loopback, built from
    ``zetafailover_exchange_plan``; ``exchange.addresses.endpoints`` is what device configs and
    ``RemoteFaxMachine`` connect to, ``exchange.exchange`` the model with its call, page and hook logs. Stopped
    afterwards (within about a second)."""
    with ExchangeServer(zetafailover_exchange_plan) as server:
        yield server


@pytest.fixture
def audits() -> types.ModuleType:
    """The :mod:`zetafailover.testing.audits` module: ``audits.audit_single_actor(...)`` and the others, each
    returning a list of violations (empty: the invariant held)."""
    return audits_module
