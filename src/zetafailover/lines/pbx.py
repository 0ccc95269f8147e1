"""The PBX-notification strategy: on takeover, tell the PBX to route the fax DIDs / hunt group to the new active.

Three transports, all idempotent ("route to X") and each with a read-back where the PBX allows:

* :class:`WebhookTransport` — an HTTP request (URL, method, JSON body template, bearer token, TLS verification
  on by default, timeout), then an optional ``GET`` of ``verify_url`` that must show the values sent;
* :class:`AmiTransport` — Asterisk AMI: ``Login``, ``DBGet`` of the term key (a higher term there is refused),
  ``DBPut`` of the routing key the dialplan reads (``${DB(fax/active)}``) and of the term, ``DBGet`` to confirm,
  ``Logoff``;
* :class:`CommandTransport` — a program run with an argument list (never a shell), optionally followed by a
  verify command whose output must contain the target.

Templates use ``{node}``, ``{term}``, ``{target}`` (the node's line / trunk / extension from ``targets``).

:class:`PbxLineSwitch` makes **one** bounded attempt inside ``take`` (the node renews its heartbeat between
takeover phases, so ``take`` must stay short). A failure is reported (a WARNING log record, a JSON line in the
``status`` file, :attr:`PbxLineSwitch.results`), raised as :class:`~zetafailover.errors.LineSwitchError` so the
node's event log shows ``line_switch_failed`` — the takeover completes regardless — and retried on a background
thread every ``retry_interval`` seconds until it succeeds, ``retries`` run out (an ERROR record: the alert), or
a newer term takes over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from zetafailover.errors import LineSwitchError
from zetafailover.lines._holder import Holder

__all__ = [
    "AmiTransport",
    "CommandTransport",
    "PbxError",
    "PbxLineSwitch",
    "PbxStaleError",
    "PbxTransport",
    "WebhookTransport",
    "render",
]

log = logging.getLogger(__name__)


class PbxError(Exception):
    """The PBX could not be told (unreachable, timeout, refused, wrong answer). Worth retrying."""


class PbxStaleError(PbxError):
    """The PBX shows a higher term: this request is stale and must not be retried."""


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """Fill ``{node}``, ``{term}``, ``{target}`` into every string of ``template`` (a string that is exactly one
    placeholder keeps the value's type, so ``"{term}"`` becomes a number)."""
    if isinstance(template, str):
        for key, value in values.items():
            if template == "{" + key + "}":
                return value
        text = template
        for key, value in values.items():
            text = text.replace("{" + key + "}", str(value))
        return text
    if isinstance(template, Mapping):
        return {str(k): render(v, values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render(v, values) for v in template]
    return template


class PbxTransport(Protocol):
    """One way of telling the PBX. ``route`` blocks at most the transport's timeout (per round trip)."""

    kind: str

    def route(self, node: str, target: str, term: int) -> str:
        """Route the fax numbers to ``target`` (``node``'s lines) under ``term``; return the read-back evidence.

        Idempotent. Raises :class:`PbxStaleError` when the PBX shows a higher term, :class:`PbxError` otherwise.
        """
        ...


# ------------------------------------------------------------------------------------------------ webhook


class WebhookTransport:
    """An HTTP webhook. Timing: at most two requests (the call and the read-back), each bounded by ``timeout``."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        body: Mapping[str, Any] | None = None,
        token: str = "",
        tls_verify: bool = True,
        ca_file: Path | None = None,
        timeout: float = 2.0,
        verify_url: str = "",
    ) -> None:
        self.url = url
        self.method = method
        self.body = dict(
            body or {"event": "failover", "active_server": "{node}", "target": "{target}", "term": "{term}"}
        )
        self.token = token
        self.timeout = timeout
        self.verify_url = verify_url
        self._context: ssl.SSLContext | None = None
        if url.startswith("https://") or verify_url.startswith("https://"):
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if not tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context

    def route(self, node: str, target: str, term: int) -> str:
        values = {"node": node, "term": term, "target": target}
        url = render(self.url, values)
        body = render(self.body, values)
        status, answer = self._request(self.method, url, body)
        if status == 409:
            raise PbxStaleError(f"{self.method} {url}: the PBX refused a stale term ({answer[:200]})")
        if not 200 <= status < 300:
            raise PbxError(f"{self.method} {url} answered HTTP {status}: {answer[:200]}")
        if not self.verify_url:
            return f"{self.method} {url}: HTTP {status}"
        verify = render(self.verify_url, values)
        status, answer = self._request("GET", verify, None)
        if not 200 <= status < 300:
            raise PbxError(f"read-back GET {verify} answered HTTP {status}: {answer[:200]}")
        try:
            shown = json.loads(answer)
        except ValueError:
            raise PbxError(f"read-back GET {verify}: not JSON: {answer[:200]}") from None
        wrong = {
            k: (v, shown.get(k)) for k, v in body.items() if isinstance(shown, dict) and k in shown and shown[k] != v
        }
        if not isinstance(shown, dict) or wrong:
            raise PbxError(f"read-back GET {verify} shows {wrong or shown!r}, not what was sent")
        return f"{self.method} {url}: HTTP 2xx; read back from {verify}"

    def _request(self, method: str, url: str, body: Any) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only, checked at config
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:  # noqa: S310
                return int(response.status), response.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read(4096).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PbxError(f"{method} {url}: {reason}") from None


# ---------------------------------------------------------------------------------------------------- AMI


class AmiTransport:
    """Asterisk AMI over TCP. Timing: one connection; every read bounded by ``timeout`` (a handful of round
    trips). Atomicity: the term check and the two ``DBPut`` are not one transaction (AMI has none); the node's
    holder file (``state``) is what makes ``take`` a compare-and-set across nodes."""

    kind = "ami"

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        family: str = "fax",
        key: str = "active",
        value: str = "{target}",
        term_key: str = "term",
        timeout: float = 2.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.family, self.key, self.value, self.term_key = family, key, value, term_key
        self.timeout = timeout

    def route(self, node: str, target: str, term: int) -> str:
        value = str(render(self.value, {"node": node, "term": term, "target": target}))
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                sock.settimeout(self.timeout)
                reader = sock.makefile("rb")
                banner = reader.readline(200)
                if not banner.startswith(b"Asterisk Call Manager"):
                    raise PbxError(f"AMI {self.host}:{self.port}: not an AMI banner: {banner[:60]!r}")
                answer = self._action(sock, reader, "Login", Username=self.username, Secret=self.secret)
                if answer.get("response") != "Success":
                    raise PbxError(f"AMI login as {self.username!r} refused: {answer.get('message', answer)}")
                if self.term_key:
                    held = self._get(sock, reader, self.term_key)
                    if held is not None and held.isdigit() and int(held) > term:
                        raise PbxStaleError(f"AMI {self.family}/{self.term_key} is {held}, above term {term}")
                for key, val in ((self.key, value), *(((self.term_key, str(term)),) if self.term_key else ())):
                    answer = self._action(sock, reader, "DBPut", Family=self.family, Key=key, Val=val)
                    if answer.get("response") != "Success":
                        raise PbxError(f"AMI DBPut {self.family}/{key} failed: {answer.get('message', answer)}")
                shown = self._get(sock, reader, self.key)
                if shown != value:
                    raise PbxError(f"AMI read-back of {self.family}/{self.key} shows {shown!r}, not {value!r}")
                self._action(sock, reader, "Logoff")
        except PbxError:
            raise
        except (OSError, TimeoutError) as exc:
            raise PbxError(f"AMI {self.host}:{self.port}: {exc}") from None
        return f"AMI DBPut {self.family}/{self.key}={value} (term {term}); read back"

    def _get(self, sock: socket.socket, reader: Any, key: str) -> str | None:
        answer = self._action(sock, reader, "DBGet", Family=self.family, Key=key)
        if answer.get("response") != "Success":
            return None
        while True:
            event = self._read(reader)
            if event.get("event") == "DBGetResponse":
                value = event.get("val")
                while event.get("event") != "DBGetComplete" and event.get("eventlist") != "Complete":
                    event = self._read(reader)
                return value
            if event.get("event") == "DBGetComplete":
                return None

    def _action(self, sock: socket.socket, reader: Any, action: str, **fields: str) -> dict[str, str]:
        text = f"Action: {action}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        if any(c in v for v in fields.values() for c in "\r\n"):
            raise PbxError(f"AMI {action}: a value contains a line break")
        sock.sendall(text.encode())
        return self._read(reader)

    def _read(self, reader: Any) -> dict[str, str]:
        fields: dict[str, str] = {}
        while True:
            line = reader.readline(8192)
            if not line:
                raise PbxError(f"AMI {self.host}:{self.port} closed the connection")
            text = line.decode("utf-8", "replace").strip()
            if not text:
                if fields:
                    return fields
                continue
            name, _, value = text.partition(":")
            fields[name.strip().lower()] = value.strip()


# ------------------------------------------------------------------------------------------------ command


class CommandTransport:
    """A program (argument list, no shell). Timing: bounded by ``timeout`` per program run."""

    kind = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        verify: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.argv = list(argv)
        self.verify = list(verify)
        self.env = dict(env or {})
        self.timeout = timeout

    def route(self, node: str, target: str, term: int) -> str:
        values = {"node": node, "term": term, "target": target}
        env = {**os.environ, **self.env, "ZF_NODE": node, "ZF_TERM": str(term), "ZF_TARGET": target}
        argv = [str(render(a, values)) for a in self.argv]
        self._run(argv, env)
        if not self.verify:
            return f"{argv[0]} exited 0"
        shown = self._run([str(render(a, values)) for a in self.verify], env)
        if target not in shown:
            raise PbxError(f"verify command {self.verify[0]} does not show {target!r}: {shown[:200]!r}")
        return f"{argv[0]} exited 0; {self.verify[0]} shows {target}"

    def _run(self, argv: list[str], env: dict[str, str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise PbxError(f"{argv[0]} did not finish within {self.timeout:g} s") from None
        except OSError as exc:
            raise PbxError(f"cannot run {argv[0]}: {exc}") from None
        if done.returncode == 3:
            raise PbxStaleError(f"{argv[0]} refused a stale term: {done.stderr.strip()[:200]}")
        if done.returncode != 0:
            raise PbxError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[:200]}")
        return done.stdout


# ------------------------------------------------------------------------------------------------- switch


class PbxLineSwitch:
    """A :class:`~zetafailover.interfaces.LineSwitch` that re-routes the fax numbers through the PBX.

    Timing: ``take`` makes one attempt, bounded by the transport's timeout, and never waits for retries;
    ``release`` and ``may_answer`` only touch the holder (memory, or the ``state`` file). Atomicity: ``take`` is
    term-checked (a lower term than the holder's — or than the PBX shows — is refused) and idempotent.
    """

    def __init__(
        self,
        transport: PbxTransport,
        targets: Mapping[str, str] | None = None,
        *,
        state: Path | None = None,
        status: Path | None = None,
        retry_interval: float = 2.0,
        retries: int = 30,
        name: str = "pbx",
    ) -> None:
        self.name = name
        self.transport = transport
        self.targets = dict(targets or {})
        self.holder = Holder(state)
        self.status = status
        self.retry_interval = retry_interval
        self.retries = retries
        self.results: list[dict[str, Any]] = []
        """Every attempt: ``{"node", "term", "target", "ok", "attempt", "evidence" | "error", "at"}``."""
        self._lock = threading.Lock()
        self._generation = 0
        self._routed: tuple[str, int] | None = None
        self._retrier: threading.Thread | None = None

    def target_of(self, node: str) -> str:
        return self.targets.get(node, node)

    def take(self, node: str, term: int) -> None:
        self.holder.take(node, term, f"pbx ({self.transport.kind})")
        with self._lock:
            if self._routed == (node, term):
                return
            self._generation += 1
            generation = self._generation
        error = self._attempt(node, term, 1)
        if error is None:
            return
        if isinstance(error, PbxStaleError):
            raise LineSwitchError(f"the PBX refused to route to {node} under term {term}: {error}")
        thread = threading.Thread(
            target=self._retry, args=(node, term, generation), name=f"pbx-retry-{term}", daemon=True
        )
        self._retrier = thread
        thread.start()
        raise LineSwitchError(
            f"the PBX ({self.transport.kind}) could not route the fax numbers to {node} under term {term}: {error}; "
            f"retrying every {self.retry_interval:g} s in the background"
        )

    def release(self, node: str, term: int) -> None:
        with self._lock:
            if self._routed is not None and self._routed[0] == node:
                self._generation += 1  # stop retrying for this node
        self.holder.release(node, term)

    def may_answer(self, node: str) -> bool:
        current = self.holder.current()
        return current is not None and current.node == node and not current.released

    def wait_routed(self, timeout: float) -> bool:
        """Test helper: wait until a background retry finished (True when the PBX was told)."""
        thread = self._retrier
        if thread is not None:
            thread.join(timeout)
        return self._routed is not None

    def _retry(self, node: str, term: int, generation: int) -> None:
        for attempt in range(2, self.retries + 2):
            time.sleep(self.retry_interval)
            with self._lock:
                if generation != self._generation:
                    return
            current = self.holder.current()
            if current is not None and (current.node, current.term) != (node, term):
                return
            error = self._attempt(node, term, attempt)
            if error is None or isinstance(error, PbxStaleError):
                return
        log.error(
            "ALERT pbx: gave up routing the fax numbers to %s (term %d) after %d attempts; fix the PBX by hand",
            node,
            term,
            self.retries + 1,
        )
        self._report({"node": node, "term": term, "ok": False, "gave_up": True, "attempt": self.retries + 1})

    def _attempt(self, node: str, term: int, attempt: int) -> PbxError | None:
        target = self.target_of(node)
        t0 = time.monotonic()
        try:
            evidence = self.transport.route(node, target, term)
        except PbxError as exc:
            log.warning("pbx: attempt %d to route to %s (term %d) failed: %s", attempt, node, term, exc)
            self._report(
                {
                    "node": node,
                    "term": term,
                    "target": target,
                    "ok": False,
                    "attempt": attempt,
                    "error": str(exc),
                    "duration_s": round(time.monotonic() - t0, 3),
                }
            )
            return exc
        with self._lock:
            self._routed = (node, term)
        log.info("pbx: fax numbers routed to %s (term %d): %s", node, term, evidence)
        self._report(
            {
                "node": node,
                "term": term,
                "target": target,
                "ok": True,
                "attempt": attempt,
                "evidence": evidence,
                "duration_s": round(time.monotonic() - t0, 3),
            }
        )
        return None

    def _report(self, result: dict[str, Any]) -> None:
        result = {**result, "transport": self.transport.kind, "at": time.time(), "mono": time.monotonic()}
        with self._lock:
            self.results.append(result)
        if self.status is not None:
            try:
                self.status.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.status, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    os.write(fd, (json.dumps(result) + "\n").encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                log.warning("pbx: cannot write the status file %s: %s", self.status, exc)
