"""Delivering lifecycle notifications to plugins without letting them slow failover down (invariant 9).

:class:`PluginNotifier` is the :class:`~zetafailover.interfaces.Notifier` the node uses. The core calls
``notify("term_won", node=..., term=...)`` *after* the step it reports; the call only puts the event on a
queue. One worker thread delivers the events in the order they were notified. For each event it calls every
plugin's hook implementation **separately** (pluggy itself would stop at the first one that raises), each on
its own daemon thread bounded by ``hook_timeout``:

* an implementation that raises is logged with its plugin's name and the exception, and skipped;
* one that does not return within ``hook_timeout`` is abandoned (its thread keeps running, as Python cannot
  kill a thread), logged as ``plugin X hook Y did not return within Ns; skipped``, and later events still
  flow. While that thread is still running, every further hook of the same plugin is skipped (and logged),
  so a plugin holds at most one abandoned thread and cannot pile up threads or stall the queue again.

So a hook can delay *later notifications* by at most ``hook_timeout`` per implementation, and can never delay
the caller at all. Failures are kept in :attr:`PluginNotifier.failures` for callers and tests to report.

The timeouts are real time (``time.monotonic`` and thread joins), not the injected :class:`Clock`: they bound
real threads running real plugin code.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from zetafailover.hookspecs import NOTIFICATION_EVENTS

__all__ = ["HookFailure", "PluginNotifier"]

_PREFIX = "zetafailover_"


@dataclass(frozen=True, slots=True)
class HookFailure:
    """One notification that did not reach a plugin, and why.

    ``kind`` is ``"raised"`` (the hook raised; ``detail`` is the exception), ``"timeout"`` (it did not return
    within the hook timeout and was abandoned), ``"skipped"`` (the plugin was still stuck in an earlier hook),
    ``"unknown_event"`` (the core notified an event no hook spec exists for; ``plugin`` is empty) or
    ``"dropped"`` (the queue was full or the notifier closed; ``plugin`` is empty).
    """

    plugin: str
    hook: str
    kind: str
    detail: str


class PluginNotifier:
    """Delivers ``zetafailover_*`` notification hooks in order, each implementation isolated and time-bounded.

    Timing: :meth:`notify` never blocks (it appends to an in-memory queue of at most ``max_queue`` events;
    beyond that, events are dropped and recorded) and never raises. Each hook implementation gets at most
    ``hook_timeout`` seconds on the worker thread. Atomicity: none needed; events are delivered at most once,
    in FIFO order, and ``failures`` only grows (keeping the latest ``max_failures``).
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        hook_timeout: float,
        logger: logging.Logger | None = None,
        *,
        max_queue: int = 10_000,
        max_failures: int = 1_000,
    ) -> None:
        if not hook_timeout > 0:
            raise ValueError(f"hook_timeout must be greater than 0, not {hook_timeout!r}")
        self._pm = pm
        self.hook_timeout = float(hook_timeout)
        self._log = logger or logging.getLogger("zetafailover.plugins")
        self._max_queue = max_queue
        self._max_failures = max_failures
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._submitted = 0
        self._delivered = 0
        self._closed = False
        self._failures_lock = threading.Lock()
        self.failures: list[HookFailure] = []
        """Every notification that did not reach a plugin (the latest ``max_failures``)."""
        self._hung: dict[str, tuple[threading.Thread, str]] = {}
        """Plugin name → (its abandoned thread, the hook it is stuck in). Touched by the worker only."""
        self._worker = threading.Thread(target=self._run, name="zetafailover-notifier", daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------------------------------- public

    def notify(self, event: str, **payload: Any) -> None:
        """Queue ``event`` (a hook name without ``zetafailover_``) with its keyword ``payload``.

        Returns at once; never raises. An unknown event, a full queue or a closed notifier is logged and
        recorded in :attr:`failures`. Lists in the payload are copied, so the caller may reuse them.
        """
        try:
            hook = _PREFIX + event
            if event not in NOTIFICATION_EVENTS or not hasattr(self._pm.hook, hook):
                self._log.error(
                    "notification %r is not a zetafailover notification hook (known: %s); not delivered",
                    event,
                    ", ".join(NOTIFICATION_EVENTS),
                )
                self._record(HookFailure("", hook, "unknown_event", f"no notification hook named {hook!r}"))
                return
            snapshot = {k: list(v) if isinstance(v, list) else v for k, v in payload.items()}
            with self._cond:
                if self._closed:
                    reason = "the notifier is closed"
                elif len(self._queue) >= self._max_queue:
                    reason = f"the queue is full ({self._max_queue} events waiting)"
                else:
                    self._queue.append((hook, snapshot))
                    self._submitted += 1
                    self._cond.notify_all()
                    return
            self._log.error("notification %s dropped: %s", hook, reason)
            self._record(HookFailure("", hook, "dropped", reason))
        except Exception:  # notify must never raise into the failover path
            self._log.exception("notification %r could not be queued", event)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every event notified so far has been delivered.

        Returns True when they all were. Blocks; meant for tests and shutdown, never for the failover path.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            while self._delivered < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting events, deliver those already queued, and stop the worker thread.

        Waits at most ``timeout`` seconds and returns True when the queue was fully delivered. Idempotent.
        The worker is a daemon thread: if it is still busy after ``timeout`` it never keeps the process alive.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout)
        return not self._worker.is_alive()

    @property
    def pending(self) -> int:
        """Events queued or being delivered."""
        with self._cond:
            return self._submitted - self._delivered

    # ---------------------------------------------------------------------------------------- worker

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed and drained
                hook, payload = self._queue.popleft()
            try:
                self._deliver(hook, payload)
            except Exception:  # a bug here must not stop later events
                self._log.exception("delivering %s failed", hook)
            finally:
                with self._cond:
                    self._delivered += 1
                    self._cond.notify_all()

    def _deliver(self, hook: str, payload: Mapping[str, Any]) -> None:
        caller = getattr(self._pm.hook, hook)
        # The order pluggy itself would use: last registered first, tryfirst/trylast honoured.
        for impl in reversed(caller.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                continue  # wrappers make no sense for isolated notifications
            plugin = impl.plugin_name
            if self._still_hung(plugin, hook):
                continue
            missing = [name for name in impl.argnames if name not in payload]
            if missing:
                self._failed(
                    plugin, hook, "raised", f"TypeError: the notification lacks argument(s) {', '.join(missing)}"
                )
                continue
            kwargs = {
                name: list(payload[name]) if isinstance(payload[name], list) else payload[name]
                for name in (*impl.argnames, *impl.kwargnames)
                if name in payload
            }
            self._call(plugin, hook, impl, kwargs)

    def _still_hung(self, plugin: str, hook: str) -> bool:
        stuck = self._hung.get(plugin)
        if stuck is None:
            return False
        thread, stuck_in = stuck
        if not thread.is_alive():
            del self._hung[plugin]
            self._log.info("plugin %r returned from hook %s at last; delivering to it again", plugin, stuck_in)
            return False
        detail = f"still stuck in hook {stuck_in}"
        self._log.warning("plugin %r hook %s skipped: the plugin is %s", plugin, hook, detail)
        self._record(HookFailure(plugin, hook, "skipped", detail))
        return True

    def _call(self, plugin: str, hook: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> None:
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                impl.function(**kwargs)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run, name=f"zetafailover-hook-{plugin}-{hook}", daemon=True)
        thread.start()
        thread.join(self.hook_timeout)
        if thread.is_alive():
            self._hung[plugin] = (thread, hook)
            self._failed(
                plugin, hook, "timeout", f"did not return within {self.hook_timeout:g}s", log_level=logging.WARNING
            )
        elif outcome:
            exc = outcome[0]
            text = str(exc)
            self._failed(
                plugin, hook, "raised", f"{type(exc).__name__}: {text}" if text else type(exc).__name__, exc=exc
            )

    def _failed(
        self,
        plugin: str,
        hook: str,
        kind: str,
        detail: str,
        *,
        exc: BaseException | None = None,
        log_level: int = logging.ERROR,
    ) -> None:
        if kind == "timeout":
            self._log.log(log_level, "plugin %r hook %s %s; skipped", plugin, hook, detail)
        else:
            self._log.log(
                log_level,
                "plugin %r hook %s raised %s; skipped",
                plugin,
                hook,
                detail,
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            )
        self._record(HookFailure(plugin, hook, kind, detail))

    def _record(self, failure: HookFailure) -> None:
        with self._failures_lock:
            self.failures.append(failure)
            if len(self.failures) > self._max_failures:
                del self.failures[: len(self.failures) - self._max_failures]
