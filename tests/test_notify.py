"""PluginNotifier: in order, each hook isolated and time-bounded, never blocking or raising into the caller."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from zetafailover.interfaces import FenceResult, NodeState, Notifier, Transition
from zetafailover.notify import HookFailure, PluginNotifier
from zetafailover.plugins import PluginManager, get_plugin_manager, hookimpl

TIMEOUT = 0.2
"""Hook timeout for these tests: small, but far above what a hook that returns at once needs."""
FLUSH = 10.0
"""Generous bound for waiting on delivery (the machine is shared)."""


class Recorder:
    """A well-behaved plugin: records every notification it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    @hookimpl
    def zetafailover_term_won(self, node: str, term: int) -> None:
        self.seen.append(("term_won", (node, term)))

    @hookimpl
    def zetafailover_peer_fenced(self, term: int, result: FenceResult) -> None:
        self.seen.append(("peer_fenced", (term, result.confirmed)))

    @hookimpl
    def zetafailover_devices_online(self, devices: list[str]) -> None:
        self.seen.append(("devices_online", devices))

    @hookimpl
    def zetafailover_role_changed(self, transition: Transition) -> None:
        self.seen.append(("role_changed", transition.to_state))


class Hanger:
    """Hangs in term_won until released; answers other hooks at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.seen: list[str] = []

    @hookimpl
    def zetafailover_term_won(self, term: int) -> None:
        self.entered.set()
        self.release.wait(30)
        self.seen.append(f"term_won {term}")

    @hookimpl
    def zetafailover_lines_switched(self, term: int) -> None:
        self.seen.append(f"lines_switched {term}")


@pytest.fixture
def pm() -> PluginManager:
    return get_plugin_manager(load_entrypoints=False)


@pytest.fixture
def notifier(pm: PluginManager) -> Iterator[PluginNotifier]:
    n = PluginNotifier(pm, TIMEOUT)
    yield n
    n.close(timeout=FLUSH)


def transition(to: NodeState, term: int = 1) -> Transition:
    return Transition("fax1", NodeState.PASSIVE, to, term, "test", 0.0)


def test_it_is_a_notifier(notifier: PluginNotifier) -> None:
    assert isinstance(notifier, Notifier)


def test_events_arrive_in_order_with_only_the_declared_arguments(pm: PluginManager, notifier: PluginNotifier) -> None:
    rec = Recorder()
    pm.register(rec, name="recorder")
    notifier.notify("role_changed", transition=transition(NodeState.ACTIVATING, 5))
    notifier.notify("term_won", node="fax1", term=5)
    notifier.notify("peer_fenced", node="fax1", term=5, result=FenceResult(True, "pid", "gone"))
    notifier.notify("devices_online", node="fax1", term=5, devices=["lo0", "lo1"])
    notifier.notify("role_changed", transition=transition(NodeState.ACTIVE, 5))
    for term in range(6, 30):
        notifier.notify("term_won", node="fax1", term=term)
    assert notifier.flush(FLUSH)
    assert rec.seen[:5] == [
        ("role_changed", NodeState.ACTIVATING),
        ("term_won", ("fax1", 5)),
        ("peer_fenced", (5, True)),
        ("devices_online", ["lo0", "lo1"]),
        ("role_changed", NodeState.ACTIVE),
    ]
    assert [term for _, (_, term) in rec.seen[5:]] == list(range(6, 30))
    assert notifier.failures == []
    assert notifier.pending == 0


def test_implementations_run_in_pluggys_order(pm: PluginManager, notifier: PluginNotifier) -> None:
    calls: list[str] = []

    class First:
        @hookimpl(tryfirst=True)
        def zetafailover_lines_switched(self) -> None:
            calls.append("first")

    class Plain:
        @hookimpl
        def zetafailover_lines_switched(self) -> None:
            calls.append("plain")

    class Last:
        @hookimpl(trylast=True)
        def zetafailover_lines_switched(self) -> None:
            calls.append("last")

    pm.register(Last(), name="last")
    pm.register(Plain(), name="plain")
    pm.register(First(), name="first")
    notifier.notify("lines_switched", node="fax1", term=1)
    assert notifier.flush(FLUSH)
    assert calls == ["first", "plain", "last"]


def test_a_raising_hook_is_logged_with_its_plugin_and_skipped(
    pm: PluginManager, notifier: PluginNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    class Raiser:
        @hookimpl(tryfirst=True)
        def zetafailover_term_won(self, term: int) -> None:
            raise RuntimeError(f"boom at term {term}")

    rec = Recorder()
    pm.register(rec, name="recorder")
    pm.register(Raiser(), name="raiser")
    with caplog.at_level(logging.ERROR, logger="zetafailover.plugins"):
        notifier.notify("term_won", node="fax1", term=7)
        notifier.notify("term_won", node="fax1", term=8)
        assert notifier.flush(FLUSH)
    # The raiser ran first and failed; the recorder still got both events.
    assert rec.seen == [("term_won", ("fax1", 7)), ("term_won", ("fax1", 8))]
    assert notifier.failures == [
        HookFailure("raiser", "zetafailover_term_won", "raised", "RuntimeError: boom at term 7"),
        HookFailure("raiser", "zetafailover_term_won", "raised", "RuntimeError: boom at term 8"),
    ]
    assert "plugin 'raiser' hook zetafailover_term_won raised RuntimeError: boom at term 7; skipped" in caplog.text


def test_a_hanging_hook_is_abandoned_after_the_timeout_and_never_blocks_the_caller(
    pm: PluginManager, notifier: PluginNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    hanger = Hanger()
    rec = Recorder()
    pm.register(rec, name="recorder")
    pm.register(hanger, name="hanger")  # registered last: called first
    try:
        with caplog.at_level(logging.WARNING, logger="zetafailover.plugins"):
            started = time.monotonic()
            notifier.notify("term_won", node="fax1", term=1)
            assert hanger.entered.wait(FLUSH)
            # The worker is stuck in the hanger now; notifying must still return at once.
            worst = 0.0
            for term in (2, 3):
                t0 = time.monotonic()
                notifier.notify("term_won", node="fax1", term=term)
                worst = max(worst, time.monotonic() - t0)
            notifier.notify("lines_switched", node="fax1", term=3)
            assert worst < 0.1, f"notify blocked the caller for {worst:.3f}s"
            assert notifier.flush(FLUSH)
            elapsed = time.monotonic() - started
        # Term 1 waited one timeout for the hanger; terms 2 and 3 skipped it (still hung) without waiting.
        assert elapsed < TIMEOUT + 2.0, elapsed
        assert rec.seen == [("term_won", ("fax1", t)) for t in (1, 2, 3)]
        assert [(f.plugin, f.hook, f.kind) for f in notifier.failures] == [
            ("hanger", "zetafailover_term_won", "timeout"),
            ("hanger", "zetafailover_term_won", "skipped"),
            ("hanger", "zetafailover_term_won", "skipped"),
            ("hanger", "zetafailover_lines_switched", "skipped"),
        ]
        assert notifier.failures[0].detail == "did not return within 0.2s"
        assert notifier.failures[1].detail == "still stuck in hook zetafailover_term_won"
        assert "plugin 'hanger' hook zetafailover_term_won did not return within 0.2s; skipped" in caplog.text
        assert hanger.seen == []
    finally:
        hanger.release.set()
    # Once it returns, the plugin gets later events again.
    deadline = time.monotonic() + FLUSH
    while hanger.seen != ["term_won 1"] and time.monotonic() < deadline:
        time.sleep(0.01)
    notifier.notify("lines_switched", node="fax1", term=4)
    assert notifier.flush(FLUSH)
    assert hanger.seen == ["term_won 1", "lines_switched 4"]


def test_a_hung_plugin_keeps_at_most_one_abandoned_thread(pm: PluginManager, notifier: PluginNotifier) -> None:
    hanger = Hanger()
    pm.register(hanger, name="hanger")
    try:
        for term in range(1, 6):
            notifier.notify("term_won", node="fax1", term=term)
        assert notifier.flush(FLUSH)
        hook_threads = [t for t in threading.enumerate() if t.name.startswith("zetafailover-hook-hanger")]
        assert len(hook_threads) == 1
        assert [f.kind for f in notifier.failures] == ["timeout", "skipped", "skipped", "skipped", "skipped"]
    finally:
        hanger.release.set()


def test_a_slow_hook_within_the_timeout_is_delivered(pm: PluginManager) -> None:
    seen: list[int] = []

    class Slow:
        @hookimpl
        def zetafailover_term_won(self, term: int) -> None:
            time.sleep(0.05)
            seen.append(term)

    pm.register(Slow(), name="slow")
    notifier = PluginNotifier(pm, hook_timeout=2.0)
    try:
        t0 = time.monotonic()
        for term in range(3):
            notifier.notify("term_won", node="fax1", term=term)
        assert time.monotonic() - t0 < 0.1  # three slow hooks queued; the caller did not wait for them
        assert notifier.flush(FLUSH)
        assert seen == [0, 1, 2]
        assert notifier.failures == []
    finally:
        notifier.close(FLUSH)


def test_unknown_events_are_logged_and_recorded_never_raised(
    notifier: PluginNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="zetafailover.plugins"):
        notifier.notify("takeover_done", node="fax1")
        notifier.notify("make_device", section=None)  # a provider hook is not a notification
    assert [(f.hook, f.kind) for f in notifier.failures] == [
        ("zetafailover_takeover_done", "unknown_event"),
        ("zetafailover_make_device", "unknown_event"),
    ]
    assert "'takeover_done' is not a zetafailover notification hook" in caplog.text


def test_a_missing_argument_is_a_recorded_failure(pm: PluginManager, notifier: PluginNotifier) -> None:
    rec = Recorder()
    pm.register(rec, name="recorder")
    notifier.notify("term_won", node="fax1")  # the core forgot term=
    assert notifier.flush(FLUSH)
    assert rec.seen == []
    assert notifier.failures == [
        HookFailure("recorder", "zetafailover_term_won", "raised", "TypeError: the notification lacks argument(s) term")
    ]


def test_lists_in_the_payload_are_copied(pm: PluginManager, notifier: PluginNotifier) -> None:
    class Mutator:
        @hookimpl(tryfirst=True)
        def zetafailover_devices_online(self, devices: list[str]) -> None:
            devices.clear()

    rec = Recorder()
    pm.register(rec, name="recorder")
    pm.register(Mutator(), name="mutator")
    devices = ["lo0"]
    notifier.notify("devices_online", node="fax1", term=1, devices=devices)
    devices.append("changed-after-notify")
    assert notifier.flush(FLUSH)
    assert rec.seen == [("devices_online", ["lo0"])]


def test_a_full_queue_drops_and_records_instead_of_blocking(pm: PluginManager) -> None:
    hanger = Hanger()
    pm.register(hanger, name="hanger")
    notifier = PluginNotifier(pm, hook_timeout=FLUSH, max_queue=2)
    try:
        notifier.notify("term_won", node="fax1", term=1)
        assert hanger.entered.wait(FLUSH)  # the worker holds event 1; the queue is empty again
        t0 = time.monotonic()
        for term in (2, 3, 4):
            notifier.notify("term_won", node="fax1", term=term)
        assert time.monotonic() - t0 < 0.1
        assert notifier.failures == [
            HookFailure("", "zetafailover_term_won", "dropped", "the queue is full (2 events waiting)")
        ]
        hanger.release.set()
        assert notifier.flush(FLUSH)
        assert hanger.seen == ["term_won 1", "term_won 2", "term_won 3"]
    finally:
        hanger.release.set()
        notifier.close(FLUSH)


def test_close_delivers_what_is_queued_then_drops_later_events(pm: PluginManager) -> None:
    rec = Recorder()
    pm.register(rec, name="recorder")
    notifier = PluginNotifier(pm, TIMEOUT)
    notifier.notify("term_won", node="fax1", term=1)
    assert notifier.close(FLUSH)
    assert notifier.close(FLUSH)  # idempotent
    notifier.notify("term_won", node="fax1", term=2)
    assert rec.seen == [("term_won", ("fax1", 1))]
    assert notifier.failures == [HookFailure("", "zetafailover_term_won", "dropped", "the notifier is closed")]


def test_flush_reports_a_timeout(pm: PluginManager) -> None:
    hanger = Hanger()
    pm.register(hanger, name="hanger")
    notifier = PluginNotifier(pm, hook_timeout=FLUSH)
    try:
        notifier.notify("term_won", node="fax1", term=1)
        assert not notifier.flush(0.05)
    finally:
        hanger.release.set()
        notifier.close(FLUSH)


def test_the_hook_timeout_must_be_positive(pm: PluginManager) -> None:
    with pytest.raises(ValueError, match="hook_timeout"):
        PluginNotifier(pm, 0)
