"""A small client of etcd's v3 JSON gateway (``/v3/…``), on the standard library only.

Why our own: the Python etcd clients either hang without a timeout, talk to one endpoint only, hang silently
in a watch when the member dies, or trip over the fields etcd leaves out of its JSON when they are zero (see
``docs/etcd.md``). This client does just what the etcd heartbeat store needs, and does it with:

* **a deadline on every call.** Each request is plain HTTP/1.1 over one socket whose every ``connect``,
  ``send`` and ``recv`` is bounded by the time left until the call's deadline, so a frozen (SIGSTOPped)
  member can never hold a caller past it;
* **several endpoints with failover.** A call goes to the endpoint that answered last; on a connection error,
  a timeout or a "try elsewhere" answer (gRPC ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED`` …, HTTP 5xx) it moves
  on to the next one, each attempt getting a share of the time left, and stays with the one that answers;
* **omitted fields read as their protobuf defaults** (``0``, ``false``, ``""``, ``[]``): etcd's gateway leaves
  out ``count``, ``revision``, ``create_revision``, ``succeeded``, ``kvs``, ``TTL``, an event's ``type`` (PUT)
  … whenever they are zero; int64 values arrive as JSON strings;
* **a watch that notices a dead member.** :meth:`EtcdClient.watch` returns the events that arrived before its
  deadline (possibly none); a member that dies or closes the stream raises :class:`EtcdUnavailableError`
  instead of blocking forever.

A write whose answer was lost (timeout, connection reset after sending) may or may not have been applied:
:class:`EtcdUnavailableError` says so in :attr:`EtcdUnavailableError.maybe_applied`; the store checks by reading.
Keys and values are bytes (base64 on the wire). Thread-safe: every call uses its own connection.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EtcdClient",
    "EtcdError",
    "EtcdRequestError",
    "EtcdUnavailableError",
    "KeyValue",
    "TxnResult",
    "WatchEvent",
    "cmp_create",
    "cmp_mod",
    "op_delete",
    "op_put",
    "op_range",
    "parse_endpoints",
    "prefix_end",
]

API_PREFIX = "/v3/"
"""etcd 3.4 and later serve the gateway at ``/v3/`` (``/v3beta/`` is gone from 3.5 on)."""
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
RETRY_ELSEWHERE_CODES = frozenset({1, 4, 10, 13, 14})
"""gRPC codes that mean "this member cannot answer now": CANCELLED, DEADLINE_EXCEEDED, ABORTED, INTERNAL,
UNAVAILABLE (``etcdserver: request timed out``, ``no leader``, ``leader changed``)."""
_MIN_ATTEMPT_S = 0.05


class EtcdError(Exception):
    """Any failure of an etcd call."""


class EtcdUnavailableError(EtcdError):
    """No endpoint answered in time (connection errors, timeouts, members that cannot serve).

    ``maybe_applied`` is True when a request reached a member but its answer was lost: a write may have
    been applied (or may still be, once the cluster has a quorum again).
    """

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class EtcdRequestError(EtcdError):
    """etcd answered with an error that another endpoint would answer the same way (bad request, no lease…)."""

    def __init__(self, message: str, *, code: int, status: int, endpoint: str) -> None:
        super().__init__(f"{endpoint}: {message} (gRPC code {code}, HTTP {status})")
        self.code = code
        self.status = status
        self.endpoint = endpoint
        self.server_message = message

    @property
    def lease_not_found(self) -> bool:
        """The request named a lease that has expired or was revoked."""
        return self.code == 5 and "lease not found" in self.server_message


class _AttemptFailed(Exception):
    """Internal: one endpoint failed in a way that another endpoint may not."""

    def __init__(self, reason: str, *, maybe_applied: bool) -> None:
        super().__init__(reason)
        self.maybe_applied = maybe_applied


# ------------------------------------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd returns it (missing numbers are 0, a missing value is empty)."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    """The outcome of a transaction: which branch ran, at which revision, and the ranges it read."""

    succeeded: bool
    revision: int
    ranges: tuple[tuple[KeyValue, ...], ...]
    """The ``kvs`` of every range operation of the branch that ran, in order (other operations are skipped)."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a watch: ``PUT`` or ``DELETE`` of ``kv`` (a DELETE carries the key and revision)."""

    type: str
    kv: KeyValue


# ------------------------------------------------------------------------------------- request builders


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix`` (etcd's rule: last byte + 1)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


def cmp_create(key: bytes, revision: int, result: str = "EQUAL") -> dict[str, Any]:
    """Compare ``create_revision(key) <result> revision`` (``create_revision == 0``: the key does not exist)."""
    return {"key": _b64(key), "target": "CREATE", "result": result, "create_revision": str(revision)}


def cmp_mod(key: bytes, revision: int, result: str = "EQUAL") -> dict[str, Any]:
    """Compare ``mod_revision(key) <result> revision``: the key was not written since ``revision``."""
    return {"key": _b64(key), "target": "MOD", "result": result, "mod_revision": str(revision)}


def op_put(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    """A put inside a transaction (attached to ``lease`` unless 0)."""
    request: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        request["lease"] = str(lease)
    return {"request_put": request}


def op_range(key: bytes, *, prefix: bool = False) -> dict[str, Any]:
    """A (linearizable) range read inside a transaction: one key, or every key under ``prefix``."""
    request: dict[str, Any] = {"key": _b64(key)}
    if prefix:
        request["range_end"] = _b64(prefix_end(key))
    return {"request_range": request}


def op_delete(key: bytes) -> dict[str, Any]:
    """A delete of one key inside a transaction."""
    return {"request_delete_range": {"key": _b64(key)}}


# ------------------------------------------------------------------------------------- response parsing


def _int(obj: dict[str, Any], name: str) -> int:
    """An int64 field: a JSON string (or number), absent when zero."""
    value = obj.get(name, 0)
    if isinstance(value, bool):
        raise EtcdError(f"etcd answered a boolean for the number {name!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EtcdError(f"etcd answered {value!r} for the number {name!r}") from None


def _bytes(obj: dict[str, Any], name: str) -> bytes:
    value = obj.get(name, "")
    if not isinstance(value, str):
        raise EtcdError(f"etcd answered {type(value).__name__} for the bytes field {name!r}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise EtcdError(f"etcd answered bad base64 in {name!r}") from None


def _kv(obj: Any) -> KeyValue:
    if not isinstance(obj, dict):
        raise EtcdError(f"etcd answered {obj!r} for a key-value")
    return KeyValue(
        key=_bytes(obj, "key"),
        value=_bytes(obj, "value"),
        create_revision=_int(obj, "create_revision"),
        mod_revision=_int(obj, "mod_revision"),
        version=_int(obj, "version"),
        lease=_int(obj, "lease"),
    )


def _kvs(obj: dict[str, Any]) -> tuple[KeyValue, ...]:
    items = obj.get("kvs", [])
    if not isinstance(items, list):
        raise EtcdError("etcd answered a non-list for 'kvs'")
    return tuple(_kv(item) for item in items)


def _header_revision(obj: dict[str, Any]) -> int:
    header = obj.get("header", {})
    return _int(header, "revision") if isinstance(header, dict) else 0


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """``"127.0.0.1:2379,[::1]:22379,http://h:2379"`` → ``[(host, port), …]``; raises ValueError with the reason."""
    out: list[tuple[str, int]] = []
    for raw in text.split(","):
        item = raw.strip()
        if item.startswith("http://"):
            item = item[len("http://") :].rstrip("/")
        elif "://" in item:
            raise ValueError(f"endpoint {raw.strip()!r}: only plain http endpoints are supported (no TLS)")
        if not item:
            raise ValueError(f"empty endpoint in {text!r}")
        if item.startswith("["):
            host, sep, port_text = item[1:].partition("]:")
        else:
            host, sep, port_text = item.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"endpoint {raw.strip()!r} must be HOST:PORT with a port from 1 to 65535")
        if any(c.isspace() or c in "/?#@" for c in host):
            raise ValueError(f"endpoint {raw.strip()!r}: bad host name {host!r}")
        out.append((host, int(port_text)))
    return out


# ----------------------------------------------------------------------------------------------- HTTP


class _Deadline:
    def __init__(self, at: float) -> None:
        self.at = at

    def left(self) -> float:
        return self.at - time.monotonic()

    def require(self) -> float:
        left = self.left()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


def _request_bytes(host: str, port: int, path: str, body: bytes | None) -> bytes:
    """A POST of ``body`` (a GET when None) that asks the server to close the connection afterwards."""
    host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    verb = "GET" if body is None else "POST"
    head = f"{verb} {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("ascii") + (body or b"")


def _connect(host: str, port: int, deadline: _Deadline) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=deadline.require())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _ChunkedReader:
    """Reads an HTTP/1.1 response from a socket, every ``recv`` bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.eof = False
        self.total = 0

    def _fill(self) -> None:
        if self.eof:
            raise ConnectionError("the member closed the connection")
        self.sock.settimeout(self.deadline.require())
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise ConnectionError("the member closed the connection")
        self.total += len(data)
        if self.total > MAX_RESPONSE_BYTES:
            raise ConnectionError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        self.buf += data

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return out
            if len(self.buf) > 65536:
                raise ConnectionError("an HTTP header line longer than 64 KiB")
            self._fill()

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def rest(self) -> bytes:
        while True:
            try:
                self._fill()
            except ConnectionError:
                if self.eof:
                    out = bytes(self.buf)
                    self.buf.clear()
                    return out
                raise

    def head(self) -> tuple[int, dict[str, str]]:
        status_line = self.line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP response: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = self.line().decode("latin-1")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def chunk(self) -> bytes | None:
        """The next chunk of a chunked body; None after the last one."""
        size_text = self.line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ConnectionError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            return None
        data = self.exactly(size)
        self.exactly(2)
        return data

    def body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while (data := self.chunk()) is not None:
                parts.append(data)
            return b"".join(parts)
        if "content-length" in headers:
            return self.exactly(int(headers["content-length"]))
        return self.rest()


def _decode_json(data: bytes, endpoint: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _AttemptFailed(
            f"{endpoint}: answered something that is not JSON: {data[:80]!r}", maybe_applied=True
        ) from None
    if not isinstance(obj, dict):
        raise _AttemptFailed(f"{endpoint}: answered JSON that is not an object", maybe_applied=True)
    return obj


def _check_error(status: int, obj: dict[str, Any], endpoint: str, maybe_applied: bool) -> None:
    """Raise for an error answer: _AttemptFailed (try elsewhere) or EtcdRequestError (final)."""
    if status == 200 and "error" not in obj:
        return
    message = str(obj.get("message") or obj.get("error") or f"HTTP {status}")
    code = obj.get("code", 2)
    code = code if isinstance(code, int) and not isinstance(code, bool) else 2
    if code in RETRY_ELSEWHERE_CODES or (status >= 500 and "code" not in obj):
        raise _AttemptFailed(f"{endpoint}: {message}", maybe_applied=maybe_applied)
    raise EtcdRequestError(message, code=code, status=status, endpoint=endpoint)


# --------------------------------------------------------------------------------------------- client


class EtcdClient:
    """A client of one etcd cluster through its JSON gateway, with failover between ``endpoints``.

    Timing: every method takes ``timeout`` (seconds) and returns or raises within it (plus scheduling
    noise): the time is shared among the endpoints tried. Raises :class:`EtcdUnavailableError` when no
    endpoint answered in time and :class:`EtcdRequestError` when etcd refused the request. Atomicity: as
    etcd's (a :meth:`txn` is atomic and linearizable; ranges are linearizable reads).
    """

    def __init__(self, endpoints: Sequence[tuple[str, int] | str] | str, *, first: int = 0) -> None:
        items = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        parsed: list[tuple[str, int]] = []
        for item in items:
            parsed.extend(parse_endpoints(item) if isinstance(item, str) else [item])
        if not parsed:
            raise ValueError("an etcd client needs at least one endpoint")
        self.endpoints: tuple[tuple[str, int], ...] = tuple(parsed)
        self._lock = threading.Lock()
        self._current = first % len(self.endpoints)

    def __repr__(self) -> str:
        return f"EtcdClient({','.join(f'{h}:{p}' for h, p in self.endpoints)})"

    @property
    def current_endpoint(self) -> str:
        """``host:port`` of the endpoint the next call goes to first (the one that answered last)."""
        host, port = self.endpoints[self._current]
        return f"{host}:{port}"

    # ------------------------------------------------------------------------------------------ calls

    def call(self, method: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<method>`` and return the decoded answer, failing over between endpoints."""
        data = json.dumps(body, separators=(",", ":")).encode()
        deadline = _Deadline(time.monotonic() + timeout)
        with self._lock:
            start = self._current
        count = len(self.endpoints)
        reasons: list[str] = []
        maybe_applied = False
        for n in range(count):
            index = (start + n) % count
            left = deadline.left()
            if left <= 0:
                break
            share = left if n == count - 1 else max(left / (count - n), min(left, _MIN_ATTEMPT_S))
            host, port = self.endpoints[index]
            try:
                result = self._post(host, port, API_PREFIX + method, data, _Deadline(time.monotonic() + share))
            except _AttemptFailed as exc:
                reasons.append(str(exc))
                maybe_applied = maybe_applied or exc.maybe_applied
                continue
            with self._lock:
                self._current = index
            return result
        with self._lock:  # start the next call with the endpoint after the one that failed first
            if self._current == start:
                self._current = (start + 1) % count
        tried = "; ".join(reasons) if reasons else "no time left"
        raise EtcdUnavailableError(
            f"etcd {method} failed on every endpoint within {timeout:.3g} s: {tried}", maybe_applied=maybe_applied
        )

    def _post(self, host: str, port: int, path: str, data: bytes | None, deadline: _Deadline) -> dict[str, Any]:
        endpoint = f"{host}:{port}"
        sent = False
        sock: socket.socket | None = None
        try:
            sock = _connect(host, port, deadline)
            sock.settimeout(deadline.require())
            sock.sendall(_request_bytes(host, port, path, data))
            sent = True
            reader = _ChunkedReader(sock, deadline)
            status, headers = reader.head()
            body = reader.body(headers)
        except (OSError, TimeoutError, ValueError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            raise _AttemptFailed(f"{endpoint}: {what}", maybe_applied=sent) from None
        finally:
            if sock is not None:
                sock.close()
        obj = _decode_json(body, endpoint)
        _check_error(status, obj, endpoint, maybe_applied=True)
        return obj

    def health(self, *, timeout: float) -> bool:
        """Whether the endpoint tried first reports ``{"health": "true"}`` (it has a leader). No failover."""
        host, port = self.endpoints[self._current]
        try:
            obj = self._post(host, port, "/health", None, _Deadline(time.monotonic() + timeout))
        except (_AttemptFailed, EtcdRequestError):
            return False
        return obj.get("health") == "true"

    # ------------------------------------------------------------------------------------------- KV

    def range(self, key: bytes, *, prefix: bool = False, timeout: float) -> tuple[tuple[KeyValue, ...], int]:
        """Linearizable read of ``key`` (or every key under it): ``(kvs, revision)``; ``kvs`` is empty if none."""
        body: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        obj = self.call("kv/range", body, timeout)
        return _kvs(obj), _header_revision(obj)

    def put(self, key: bytes, value: bytes, *, lease: int = 0, timeout: float) -> int:
        """Write ``key`` (attached to ``lease`` unless 0); returns the revision of the write."""
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return _header_revision(self.call("kv/put", body, timeout))

    def txn(
        self,
        compare: Iterable[dict[str, Any]],
        success: Iterable[dict[str, Any]],
        failure: Iterable[dict[str, Any]] = (),
        *,
        timeout: float,
    ) -> TxnResult:
        """An atomic transaction: if every ``compare`` holds, run ``success``, else ``failure``."""
        obj = self.call(
            "kv/txn", {"compare": list(compare), "success": list(success), "failure": list(failure)}, timeout
        )
        ranges = []
        responses = obj.get("responses", [])
        if not isinstance(responses, list):
            raise EtcdError("etcd answered a non-list for 'responses'")
        for response in responses:
            if isinstance(response, dict) and isinstance(response.get("response_range"), dict):
                ranges.append(_kvs(response["response_range"]))
        return TxnResult(succeeded=obj.get("succeeded") is True, revision=_header_revision(obj), ranges=tuple(ranges))

    # --------------------------------------------------------------------------------------- leases

    def lease_grant(self, ttl: int, *, timeout: float) -> tuple[int, int]:
        """Grant a lease of ``ttl`` seconds: ``(lease id, granted ttl)`` (etcd may raise a too-short TTL)."""
        obj = self.call("lease/grant", {"TTL": str(ttl)}, timeout)
        lease, granted = _int(obj, "ID"), _int(obj, "TTL")
        if lease == 0:
            raise EtcdError(f"etcd granted no lease: {obj.get('error') or obj}")
        return lease, granted

    def lease_keepalive(self, lease: int, *, timeout: float) -> int:
        """Refresh ``lease``; returns its new TTL, 0 when it has expired or was revoked (etcd omits TTL then)."""
        obj = self.call("lease/keepalive", {"ID": str(lease)}, timeout)
        result = obj.get("result", {})
        if not isinstance(result, dict):
            raise EtcdError("etcd answered a keep-alive without a result")
        return max(0, _int(result, "TTL"))

    def lease_revoke(self, lease: int, *, timeout: float) -> bool:
        """Revoke ``lease`` (its keys are deleted); False when it did not exist any more."""
        try:
            self.call("lease/revoke", {"ID": str(lease)}, timeout)
        except EtcdRequestError as exc:
            if exc.lease_not_found:
                return False
            raise
        return True

    def lease_ttl(self, lease: int, *, timeout: float) -> int:
        """The remaining TTL of ``lease``; 0 when it is (about to be) gone (etcd answers -1 or omits it)."""
        obj = self.call("lease/timetolive", {"ID": str(lease)}, timeout)
        return max(0, _int(obj, "TTL"))

    # -------------------------------------------------------------------------------------- cluster

    def member_names(self, *, timeout: float) -> list[str]:
        """The names of the cluster's members, as the endpoint that answers knows them."""
        obj = self.call("cluster/member/list", {}, timeout)
        members = obj.get("members", [])
        if not isinstance(members, list):
            raise EtcdError("etcd answered a non-list for 'members'")
        return [str(m.get("name", "")) for m in members if isinstance(m, dict)]

    # ----------------------------------------------------------------------------------------- watch

    def watch(
        self,
        key: bytes,
        *,
        prefix: bool = False,
        range_end: bytes = b"",
        start_revision: int = 0,
        timeout: float,
    ) -> list[WatchEvent]:
        """Wait up to ``timeout`` for changes of ``key`` (of the keys under it with ``prefix``, or of the keys
        from ``key`` up to but excluding ``range_end``) from ``start_revision`` on.

        Returns as soon as a batch of events arrived (possibly changes that happened before the call, when
        ``start_revision`` is in the past), or ``[]`` when nothing changed before the deadline. Tries the
        endpoints in turn until one accepts the watch. Raises :class:`EtcdUnavailableError` when no endpoint
        accepts it or when the member serving it dies or closes the stream before the deadline (a dead member
        is noticed, never waited on), and :class:`EtcdRequestError` when etcd cancels the watch (for example
        because ``start_revision`` was compacted). Timing: at most ``timeout``.
        """
        create: dict[str, Any] = {"key": _b64(key)}
        if prefix or range_end:
            create["range_end"] = _b64(range_end or prefix_end(key))
        if start_revision:
            create["start_revision"] = str(start_revision)
        data = json.dumps({"create_request": create}, separators=(",", ":")).encode()
        deadline = _Deadline(time.monotonic() + timeout)
        with self._lock:
            start = self._current
        count = len(self.endpoints)
        reasons: list[str] = []
        for n in range(count):
            index = (start + n) % count
            host, port = self.endpoints[index]
            try:
                return self._watch_on(host, port, data, deadline)
            except _AttemptFailed as exc:
                reasons.append(str(exc))
                if deadline.left() <= 0:
                    break
        raise EtcdUnavailableError(f"etcd watch failed: {'; '.join(reasons) or 'no time left'}")

    def _watch_on(self, host: str, port: int, data: bytes, deadline: _Deadline) -> list[WatchEvent]:
        endpoint = f"{host}:{port}"
        created = False
        sock: socket.socket | None = None
        try:
            sock = _connect(host, port, deadline)
            sock.settimeout(deadline.require())
            sock.sendall(_request_bytes(host, port, API_PREFIX + "watch", data))
            reader = _ChunkedReader(sock, deadline)
            status, headers = reader.head()
            chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            if status != 200 or not chunked:
                obj = _decode_json(reader.body(headers), endpoint)
                _check_error(status, obj, endpoint, maybe_applied=False)
                raise _AttemptFailed(f"{endpoint}: the watch answered without a stream", maybe_applied=False)
            pending = b""
            while True:
                try:
                    chunk = reader.chunk()
                except TimeoutError:
                    if created:
                        return []  # the deadline passed with nothing changed
                    raise
                if chunk is None:
                    raise ConnectionError("the member ended the watch stream")
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if not line.strip():
                        continue
                    events = self._watch_message(line, endpoint)
                    created = True
                    if events:
                        return events
        except (OSError, TimeoutError, ValueError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            raise _AttemptFailed(f"{endpoint}: watch {what}", maybe_applied=False) from None
        finally:
            if sock is not None:
                sock.close()

    @staticmethod
    def _watch_message(line: bytes, endpoint: str) -> list[WatchEvent]:
        obj = _decode_json(line, endpoint)
        if "error" in obj:
            raise _AttemptFailed(f"{endpoint}: watch error: {obj.get('error')}", maybe_applied=False)
        result = obj.get("result", {})
        if not isinstance(result, dict):
            raise EtcdError(f"{endpoint}: a watch message without a result")
        if result.get("canceled") is True:
            reason = str(result.get("cancel_reason") or "")
            compacted = _int(result, "compact_revision")
            if compacted:
                reason = f"revision compacted up to {compacted}" + (f": {reason}" if reason else "")
            raise EtcdRequestError(
                f"etcd canceled the watch: {reason or 'no reason given'}", code=11, status=200, endpoint=endpoint
            )
        raw_events = result.get("events", [])
        if not isinstance(raw_events, list):
            raise EtcdError(f"{endpoint}: a watch message with a non-list 'events'")
        return [
            WatchEvent(type=str(e.get("type") or "PUT"), kv=_kv(e.get("kv", {})))
            for e in raw_events
            if isinstance(e, dict)
        ]
