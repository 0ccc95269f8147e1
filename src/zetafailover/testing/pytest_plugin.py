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
``remote_fax``       a :class:`~zetafailover.testing.exchange.RemoteFaxMachine` on the exchange's ``remote``
                     trunk (number :data:`REMOTE_NUMBER`): receives what the nodes send, sends them faxes
``sim_modem``        a factory: ``sim_modem("fax1")`` → a :class:`SimModem`, a simulated fax modem on a pty
                     plugged into a line of ``exchange`` (default ``fax-line``), with its number; closed after
``isdn_card``        a factory: ``isdn_card("fax1", kind="e1")`` → a :class:`SimCard`, a card's line(s) on
                     ``exchange``, ready for a node config (``device_section``) or a FaxDevice (``device``)
``fax_pair``         a factory: ``fax_pair({"fax1": toml, "fax2": toml}, line=toml)`` → a started
                     :class:`FaxPair` of real nodes with the devices you give them; closed after
``modem_pair``       a :class:`FaxPair` of real nodes, each with a simulated modem on the one Y-split line
                     ``fax-line`` (number :data:`FAX_NUMBER`), line strategy ``ysplitter``
``audits``           the :mod:`zetafailover.testing.audits` module
===================  ======================================================================================

Marker: ``@pytest.mark.zetafailover_realprocess`` — the test starts real node processes on the real clock
(select with ``-m zetafailover_realprocess``, or skip them with ``-m "not zetafailover_realprocess"``).
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from zetafailover.clock import FakeClock
from zetafailover.core.timing import PROFILES, Timing
from zetafailover.devices.isdn import IsdnCard, IsdnDevice, SpanType
from zetafailover.spool.directory import DirectorySpool
from zetafailover.testing import audits as audits_module
from zetafailover.testing.exchange import ExchangeError, ExchangeServer, RemoteFaxMachine
from zetafailover.testing.nemesis import FaultableNodes, Nemesis
from zetafailover.testing.simulation import SimCluster

if TYPE_CHECKING:  # the simulated modem needs ptys (POSIX): imported when a test asks for one
    from zetafailover.testing.modem import SimulatedModem

__all__ = [
    "FAX_NUMBER",
    "MARKER",
    "MODEM_PAIR_TIMING",
    "NODE_PAIR_PAGE_SECONDS",
    "NODE_PAIR_TIMING",
    "REMOTE_NUMBER",
    "FaxPair",
    "SimCard",
    "SimModem",
    "audits",
    "exchange",
    "fake_clock",
    "fax_pair",
    "isdn_card",
    "modem_pair",
    "nemesis",
    "node_pair",
    "remote_fax",
    "sim_cluster",
    "sim_modem",
    "toml_section",
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

MODEM_PAIR_TIMING: dict[str, float] = {**NODE_PAIR_TIMING, "timeout": 3.0}
"""The ``modem_pair`` (and default ``fax_pair``) timing: as ``node_pair``'s, with 3 s of heartbeat timeout for the
serial driver's AT dialogues on a loaded machine."""

FAX_NUMBER = "5550100"
"""The number of the default plan's analog line ``fax-line`` (the Y-split line of ``modem_pair``)."""

REMOTE_NUMBER = "5550199"
"""The number of the default plan's ``remote`` trunk (where ``remote_fax`` answers)."""

MODEM_PAGE_SECONDS = 0.5
"""Seconds a ``modem_pair`` modem takes at least to move one page (a real one takes 5–30 s): long enough for a
test to kill the sender with a page in flight."""

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

    Default: an analog line ``fax-line`` with number :data:`FAX_NUMBER` (5550100), and a 4-channel trunk
    ``remote`` (:data:`REMOTE_NUMBER`, 5550199) for a :class:`~zetafailover.testing.exchange.RemoteFaxMachine`;
    an analog line rings every second, an unanswered call is cleared after 15 s.
    """
    return {
        "lines": [
            {"name": "fax-line", "kind": "analog", "number": FAX_NUMBER},
            {"name": "remote", "kind": "trunk", "channels": 4, "number": REMOTE_NUMBER},
        ],
        "ring_interval": 1.0,
        "answer_timeout": 15,
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


# ---------------------------------------------------------------------------------------- the outside world


@pytest.fixture
def remote_fax(exchange: ExchangeServer) -> Iterator[RemoteFaxMachine]:
    """A remote fax machine on the exchange's ``remote`` trunk (:data:`REMOTE_NUMBER` in the default plan).

    It answers the calls the nodes place to that number and keeps what it confirmed (``received``,
    ``pages_received()``); ``send(number, pages)`` sends a fax to the nodes (blocks for the call). Left on the
    exchange until the test ends.
    """
    machine = RemoteFaxMachine(exchange.addresses.endpoints, "remote", label="remote")
    try:
        yield machine
    finally:
        machine.close()


def toml_section(title: str, **keys: Any) -> str:
    """A TOML table with ``keys`` (strings, numbers, booleans, lists, nested tables as inline tables).

    ``toml_section("[device]", driver="isdn", lines=["pri-1"])`` gives an array-of-tables entry ``[[device]]``.
    """

    def value(v: Any) -> str:
        if isinstance(v, Mapping):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, Path):
            return json.dumps(str(v))
        return json.dumps(v)

    return f"\n[{title}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in keys.items())


# ------------------------------------------------------------------------------------------------- modems


@dataclass
class SimModem:
    """A simulated fax modem (:class:`~zetafailover.testing.modem.SimulatedModem`) on a pty, plugged into
    ``line`` of the ``exchange`` fixture's server.

    ``path`` is what a fax program or a node's ``driver = "modem"`` opens (the pty, through a symlink in the
    test's folder); ``number`` is the line's number ("" when it has none). Two modems on one analog line form a
    Y-splitter. The modem runs on a thread of the test process: a node process that dies closes the port (DTR
    drops, the modem hangs up); one that is paused keeps it open (the modem stays off-hook).
    """

    label: str
    line: str
    number: str
    path: str
    modem: SimulatedModem

    def device_section(self, name: str = "modem0", *, log: str = "", **keys: Any) -> str:
        """A ``[[device]]`` for ``driver = "modem"`` on this modem's port: Class 2.0, answering on the first
        ring, 5 s per AT command, 20 s to dial, 30 s a page; ``log`` (e.g. ``"fax1-device.jsonl"``, relative to
        the node's config) and any other ``keys`` of the modem driver are added or override these."""
        options: dict[str, Any] = {
            "driver": "modem",
            "name": name,
            "port": self.path,
            "class": "2.0",
            "local_id": f"+1 555 {self.label}"[:20],
            "rings": 1,
            "command_timeout": 5,
            "dial_timeout": 20,
            "page_timeout": 30,
        }
        if log:
            options["log"] = log
        options.update(keys)
        return toml_section("[device]", **options)


@pytest.fixture
def sim_modem(exchange: ExchangeServer, tmp_path: Path) -> Iterator[Callable[..., SimModem]]:
    """A factory of simulated modems: ``sim_modem(label, line="fax-line", classes=("2", "2.0"), page_seconds=0)``.

    Each call plugs a new :class:`SimModem` into ``line`` of ``exchange`` (an unknown line is a ``ValueError``
    naming the lines there are) with a symlink ``tmp_path/tty-LABEL`` to its pty; ``page_seconds`` is the least
    time a page takes. Timing: returns once the modem is attached (at most 5 s). Every modem is closed after
    the test (hung up, detached, pty closed: each within about a second).
    """
    made: list[SimulatedModem] = []

    def make(
        label: str, line: str = "fax-line", *, classes: Sequence[str] = ("2", "2.0"), page_seconds: float = 0.0
    ) -> SimModem:
        from zetafailover.testing.modem import ModemProfile, SimulatedModem  # noqa: PLC0415 - POSIX only

        known = exchange.exchange.lines
        if line not in known:
            raise ValueError(f"sim_modem: no line {line!r} on the exchange; its lines: {', '.join(sorted(known))}")
        if not known[line].analog:
            raise ValueError(f"sim_modem: line {line!r} is a {known[line].kind} line; a modem needs an analog line")
        modem = SimulatedModem(
            exchange.addresses.endpoints,
            line,
            label=label,
            link=tmp_path / f"tty-{label}",
            profile=ModemProfile(classes=tuple(classes)),
            min_page_seconds=page_seconds,
        )
        made.append(modem)
        return SimModem(label, line, known[line].number, modem.path, modem)

    try:
        yield make
    finally:
        for modem in made:
            modem.close()


# -------------------------------------------------------------------------------------------------- cards


@dataclass
class SimCard:
    """An ISDN card's place on the exchange: one line per span, named ``LABEL-spanN``, and the fax ``number``
    routed to the first span (when given).

    Use it in a node config (:meth:`device_section`) or as a FaxDevice in this process (:meth:`device`).
    """

    label: str
    kind: str
    lines: tuple[str, ...]
    address: str
    """The exchange's endpoint address (``host:port``)."""
    number: str
    channels: int
    _devices: list[IsdnDevice] = field(default_factory=list, repr=False)

    def device_section(self, name: str = "card0", *, log: str = "", **keys: Any) -> str:
        """A ``[[device]]`` for ``driver = "isdn"`` on this card's lines; ``log`` (e.g. ``"fax1-device.jsonl"``)
        and other keys of the isdn driver (``page_seconds``, ``answer_timeout``…) are added."""
        options: dict[str, Any] = {
            "driver": "isdn",
            "name": name,
            "exchange": self.address,
            "card": self.kind,
            "lines": list(self.lines),
        }
        if log:
            options["log"] = log
        options.update(keys)
        return toml_section("[device]", **options)

    def device(self, node: str, name: str = "card0", **options: Any) -> IsdnDevice:
        """A :class:`~zetafailover.devices.isdn.IsdnDevice` (a ``FaxDevice``) for ``node`` on this card, not yet
        opened (``device.open(spool)``, then ``device.start(term)``). ``options`` go to ``IsdnDevice``
        (``page_seconds``, ``answer_timeout``, ``log_path``…). Closed after the test."""
        card = IsdnCard(name, [(self.kind, line) for line in self.lines], self.address, label=node)
        device = IsdnDevice(name, node, card, **options)
        self._devices.append(device)
        return device


@pytest.fixture
def isdn_card(exchange: ExchangeServer) -> Iterator[Callable[..., SimCard]]:
    """A factory of card places on the exchange: ``isdn_card(label, kind="e1", spans=1, number="")``.

    ``kind`` is ``bri`` (2 B-channels a span), ``t1`` (23) or ``e1`` (30); ``spans`` 1 to 8. It adds the lines
    ``LABEL-span1``… to ``exchange`` and routes ``number`` to the first one unless the number already has a
    route (the first card that names a number gets it; a ``pbx`` line strategy moves it later). Returns at once.
    Devices made with :meth:`SimCard.device` are closed after the test.
    """
    cards: list[SimCard] = []

    def make(label: str, kind: str = "e1", *, spans: int = 1, number: str = "") -> SimCard:
        try:
            span = SpanType(kind)
        except ValueError:
            raise ValueError(f"isdn_card: kind {kind!r} is not one of bri, t1, e1") from None
        if not 1 <= spans <= 8:
            raise ValueError(f"isdn_card: spans must be 1 to 8, not {spans!r}")
        ex = exchange.exchange
        lines = tuple(f"{label}-span{i + 1}" for i in range(spans))
        try:
            for line in lines:
                if line in ex.lines:
                    raise ValueError(f"isdn_card: line {line!r} exists already: give each card its own label")
                ex.add_line(line, span.value)
            if number and number not in ex.routes:
                ex.set_route(number, [lines[0]])
        except ExchangeError as exc:
            raise ValueError(f"isdn_card {label!r}: {exc}") from None
        card = SimCard(
            label, span.value, lines, exchange.addresses.endpoints, number, sum(ex.lines[x].channels for x in lines)
        )
        cards.append(card)
        return card

    try:
        yield make
    finally:
        for card in cards:
            for device in card._devices:
                device.close()


# ------------------------------------------------------------------------------------------ a running pair


@dataclass
class FaxPair:
    """Two (or more) real ``zetafailover run`` processes with the devices a test gave them, and what a test
    needs around them: the shared :attr:`spool`, the :attr:`nemesis`, the :attr:`exchange` (when any).

    Node ``NAME``'s device log is ``folder/NAME-device.jsonl`` when its device section logs there (the sections
    made by :class:`SimModem` and :class:`SimCard` do when ``fax_pair`` builds the pair's configs).
    """

    nodes: FaultableNodes
    nemesis: Nemesis
    spool: DirectorySpool
    exchange: ExchangeServer | None = None
    number: str = ""
    """The fax number the pair answers ("" when the test did not say)."""
    hardware: dict[str, Any] = field(default_factory=dict)
    """What each node's device is, by node name (:class:`SimModem`, :class:`SimCard` or what the test gave)."""

    def active(self) -> str:
        """The node holding the current term (from the shared heartbeat record; "" when there is none)."""
        record = self.nodes.record()
        return record.holder if record is not None else ""

    def standby(self) -> str:
        """A node that is not :meth:`active` (the first by name)."""
        active = self.active()
        return next(name for name in sorted(self.nodes.procs) if name != active)

    def wait(self, predicate: Callable[[], object], limit: float, what: str) -> None:
        """Poll ``predicate`` every 50 ms until it is true; after ``limit`` seconds raise ``AssertionError``
        naming ``what``, with every node's log."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {limit:g} s waiting for {what}\n{self.nodes.logs()}")

    def device_events(self, name: str, event: str) -> list[dict[str, Any]]:
        """Node ``name``'s device-log entries of kind ``event`` (``page``, ``answered``, ``received_page``…)."""
        return [e for e in self.nodes.device_log(name) if e.get("event") == event]

    def audit(
        self, accepted: Sequence[str] = (), *, callers: Sequence[RemoteFaxMachine] = (), planned: bool = False
    ) -> dict[str, list[str]]:
        """Run every audit that applies over the pair's evidence; returns the violated ones (empty: all held).

        ``single_actor`` (event and device logs, and the exchange's page log), ``jobs_terminal`` (the spool,
        with the ids in ``accepted``), ``duplicates`` (``planned=True``: none at all; else only the page in
        flight on a node that died), ``inbound`` (every page the ``callers`` — e.g. ``remote_fax`` — saw
        confirmed is stored) and ``inbound_closed`` (no reception left open). Call it once the queue has
        drained and the calls have ended. Reads files; blocks for as long as that takes (milliseconds).
        """
        events = audits_module.collect_events(self.nodes)
        devices = audits_module.collect_device_logs(self.nodes)
        pages = self.exchange.exchange.pages() if self.exchange is not None else []
        deaths = audits_module.deaths_from(events, self.nemesis.kills())
        found = {
            "single_actor": audits_module.audit_single_actor(events, devices, exchange_pages=pages, slack=0.25),
            "jobs_terminal": audits_module.audit_jobs_terminal(self.spool, accepted=accepted),
            "duplicates": audits_module.audit_duplicates(devices, planned=planned, deaths=deaths),
        }
        received = self.spool.received()
        results = [result for caller in callers for result in caller.sent]
        found["inbound"] = audits_module.audit_inbound(results, received)
        found["inbound_closed"] = audits_module.audit_inbound_closed(received)
        return {name: violations for name, violations in found.items() if violations}


PairFactory = Callable[..., FaxPair]


@pytest.fixture
def fax_pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PairFactory]:
    """A factory of running pairs: ``fax_pair(devices, line="", timing=None, priorities=None, number="")``.

    ``devices`` maps each node name to the TOML of its devices (e.g. ``sim_modem(...).device_section(log=
    "fax1-device.jsonl")``); ``line`` is the ``[line]`` table every node gets (e.g. a ``ysplitter``);
    ``priorities`` default to 200, 100, 50… in the order of ``devices``; ``timing`` defaults to
    :data:`MODEM_PAIR_TIMING` (profile ``fast``). The nodes are
    :class:`~zetafailover.testing.nemesis.FaultableNodes` on ``tmp_path`` (spool ``tmp_path/shared/spool``,
    ``pid`` terminator) and start together. Timing: returns once a node is ACTIVE (up to 30 s on a loaded
    machine). After the test the nemesis heals and every node is stopped (SIGCONT, SIGTERM, SIGKILL after 15 s).
    Mark the test ``zetafailover_realprocess``. One pair per test.
    """
    made: list[FaxPair] = []

    def make(
        devices: Mapping[str, str],
        *,
        line: str = "",
        timing: Mapping[str, float] | None = None,
        priorities: Mapping[str, int] | None = None,
        number: str = "",
        hardware: Mapping[str, Any] | None = None,
    ) -> FaxPair:
        if made:
            raise RuntimeError("fax_pair: one pair per test (the nodes share tmp_path/shared)")
        if len(devices) < 2:
            raise ValueError(f"fax_pair: give at least two nodes' devices, not {sorted(devices)!r}")
        prios = dict(priorities or {name: 200 // (2**i) for i, name in enumerate(devices)})
        if set(prios) != set(devices):
            raise ValueError(f"fax_pair: priorities name {sorted(prios)}, devices name {sorted(devices)}")
        nodes = FaultableNodes(
            tmp_path,
            cluster="pair",
            profile="fast",
            timing=dict(timing or MODEM_PAIR_TIMING),
            devices=0,
            node_extra={name: text + line for name, text in devices.items()},
        )
        nemesis = Nemesis(nodes)
        server = request.getfixturevalue("exchange") if "exchange" in request.fixturenames else None
        pair = FaxPair(
            nodes,
            nemesis,
            DirectorySpool(tmp_path / "shared" / "spool", node="test"),
            server,
            number,
            dict(hardware or {}),
        )
        made.append(pair)
        nemesis.start_together(prios)
        nodes.wait_active(30)
        return pair

    try:
        yield make
    finally:
        for pair in made:
            try:
                pair.nemesis.heal()
            finally:
                pair.nodes.close()


@pytest.fixture
def modem_pair(fax_pair: PairFactory, sim_modem: Callable[..., SimModem], exchange: ExchangeServer) -> FaxPair:
    """Two real nodes, ``fax1`` (priority 200) and ``fax2`` (100), each with a simulated Class 2.0 modem on the
    one analog line ``fax-line`` (a Y-splitter; number :data:`FAX_NUMBER` in the default plan) and the
    ``ysplitter`` line strategy: only the active answers. Each modem takes at least
    :data:`MODEM_PAGE_SECONDS` a page; each node logs its device to ``tmp_path/NAME-device.jsonl``. Returned
    once a node is ACTIVE and both modems are open (up to 30 s each); stopped after the test. Outbound faxes
    to ``remote_fax`` go to :data:`REMOTE_NUMBER`. Mark the test ``zetafailover_realprocess``.
    """
    modems = {name: sim_modem(name, "fax-line", page_seconds=MODEM_PAGE_SECONDS) for name in ("fax1", "fax2")}
    line = toml_section("line", strategy="ysplitter", state="shared/lines.json")
    pair = fax_pair(
        {name: m.device_section(log=f"{name}-device.jsonl") for name, m in modems.items()},
        line=line,
        number=modems["fax1"].number,
        hardware=modems,
    )
    pair.wait(lambda: all(pair.device_events(n, "open") for n in modems), 30, "both modems open")
    return pair
