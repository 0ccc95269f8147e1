"""Records ↔ bytes: the on-store format of heartbeats, terms, members and switchover requests.

Every record is one JSON object, written human-readable (a person can ``cat`` it), with a header:

``format``
    ``zetafailover-heartbeat/1``, ``zetafailover-term/1``, ``zetafailover-member/1`` or
    ``zetafailover-switchover/1``;
``cluster``
    the cluster name (a record of another cluster is refused: :class:`ForeignRecordError`);
``written_at_iso``
    an ISO-8601 copy of the writer's wall-clock time, for people and the classic design only (no decision reads
    it, nor ``written_at``);
``crc32``
    eight hex digits: CRC-32 of the *canonical body*, i.e. every other key of the object serialised with sorted
    keys, no blanks and ASCII escapes. The checksum is over the parsed values, so re-indenting a file keeps it
    valid while a changed value does not.

Decoding is strict: size cap (:data:`MAX_RECORD_BYTES`), UTF-8, one JSON object without duplicate keys or
NaN, the right format and cluster, every field present with the right type and range and no unknown field.
Anything else raises :class:`~zetafailover.errors.CorruptRecordError` whose message is the precise reason
("truncated JSON", "crc mismatch", "field 'term' must be an integer ≥ 0, not -1", …). Encoding runs the same
validation, so whatever is written can be read back; a bad record to encode raises
:class:`~zetafailover.errors.ValidationError` naming the field.

Timing: pure computation on at most 64 KiB, never blocks.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

from zetafailover.errors import CorruptRecordError, ValidationError
from zetafailover.interfaces import (
    DeviceStatus,
    HeartbeatRecord,
    MemberRecord,
    NodeState,
    ProcessIdentity,
    SwitchoverRequest,
)

__all__ = [
    "HEARTBEAT_FORMAT",
    "MAX_RECORD_BYTES",
    "MEMBER_FORMAT",
    "SWITCHOVER_FORMAT",
    "TERM_FORMAT",
    "ForeignRecordError",
    "check_acquire_args",
    "check_cluster",
    "check_name",
    "decode_heartbeat",
    "decode_member",
    "decode_switchover",
    "decode_term",
    "encode_heartbeat",
    "encode_member",
    "encode_switchover",
    "encode_term",
    "is_valid_name",
]

HEARTBEAT_FORMAT = "zetafailover-heartbeat/1"
TERM_FORMAT = "zetafailover-term/1"
MEMBER_FORMAT = "zetafailover-member/1"
SWITCHOVER_FORMAT = "zetafailover-switchover/1"

MAX_RECORD_BYTES = 64 * 1024
"""No record may be larger; a bigger input is refused before it is parsed."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
"""Node and cluster names: the same rule as the config (letters, digits, '.', '_', '-'; 1–63; no leading dot)."""
_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,31}")
_HEX8 = re.compile(r"[0-9a-f]{8}")
_INT_MAX = 2**63 - 1
_WALL_MAX = 253_402_300_799.0  # 9999-12-31T23:59:59Z
_MAX_ITEMS = 256


class ForeignRecordError(CorruptRecordError):
    """A well-formed record of another cluster: a misconfiguration, never overwritten by a takeover."""

    def __init__(self, found: str, expected: str) -> None:
        self.found = found
        self.expected = expected
        super().__init__(f"record of cluster {found!r}, expected {expected!r}")


class _Invalid(Exception):
    """Internal: why a document was refused (turned into CorruptRecordError or ValidationError)."""


def is_valid_name(value: object) -> bool:
    """Whether ``value`` is a valid node or cluster name (letters, digits, '.', '_', '-'; 1–63; no leading dot)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a valid name, else raise :class:`ValidationError` naming ``what`` and the rule."""
    if not is_valid_name(value):
        raise ValidationError(
            f"{what} {value!r} is not a valid name: use 1–63 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    assert isinstance(value, str)
    return value


# ------------------------------------------------------------------------- argument checks of the stores


def check_cluster(found: str, expected: str, what: str) -> None:
    if found != expected:
        raise ValidationError(f"{what}: the record is of cluster {found!r}, this store serves cluster {expected!r}")


def check_acquire_args(expected_term: int, record: HeartbeatRecord, cluster: str) -> None:
    """Argument checks shared by the built-in stores (a ValueError: a caller's mistake, not a conflict)."""
    if not isinstance(expected_term, int) or isinstance(expected_term, bool) or expected_term < 0:
        raise ValidationError(f"acquire: expected_term must be an integer ≥ 0, not {expected_term!r}")
    if record.term != expected_term + 1:
        raise ValidationError(
            f"acquire: record.term must be expected_term + 1 = {expected_term + 1}, not {record.term!r}"
        )
    check_cluster(record.cluster, cluster, "acquire")
    check_name(record.holder, "holder")


# ------------------------------------------------------------------------------------------ field reading


class _Fields:
    """Typed, range-checked access to one JSON object; ``done()`` refuses unknown keys."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise _Invalid(f"{where or 'record'} must be a JSON object, not {_kind(obj)}")
        self._obj: dict[str, Any] = obj
        self._where = where
        self._seen: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        if key not in self._obj:
            raise _Invalid(f"field {self._name(key)!r} is missing")
        return self._obj[key]

    def _fail(self, key: str, rule: str, value: object) -> NoReturn:
        raise _Invalid(f"field {self._name(key)!r} must be {rule}, not {_show(value)}")

    def int_(self, key: str, lo: int = 0, hi: int = _INT_MAX) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            rule = f"an integer ≥ {lo}" if hi == _INT_MAX else f"an integer from {lo} to {hi}"
            self._fail(key, rule, value)
        return value

    def number(self, key: str, lo: float, hi: float) -> float:
        value = self._get(key)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or not lo <= value <= hi
        ):
            self._fail(key, f"a number from {lo:g} to {hi:g}", value)
        return float(value)

    def bool_(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            self._fail(key, "true or false", value)
        return value

    def text(self, key: str, max_len: int, *, empty: bool = True, printable: bool = True) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            self._fail(key, "a string", value)
        if len(value) > max_len:
            raise _Invalid(f"field {self._name(key)!r} is longer than {max_len} characters")
        if not empty and not value:
            raise _Invalid(f"field {self._name(key)!r} must not be empty")
        if printable and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise _Invalid(f"field {self._name(key)!r} contains a control character")
        if "\x00" in value:
            raise _Invalid(f"field {self._name(key)!r} contains NUL")
        return value

    def name(self, key: str, *, empty: bool = False) -> str:
        value = self._get(key)
        if empty and value == "":
            return ""
        if not is_valid_name(value):
            self._fail(key, "a name (1–63 letters, digits, '.', '_', '-', not starting with '.')", value)
        assert isinstance(value, str)
        return value

    def token(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or _TOKEN.fullmatch(value) is None:
            self._fail(key, "a lower-case word (a-z, 0-9, '_'; at most 32)", value)
        return value

    def state(self, key: str) -> NodeState:
        value = self._get(key)
        try:
            return NodeState(value)
        except (ValueError, TypeError):
            known = ", ".join(s.value for s in NodeState)
            raise _Invalid(
                f"field {self._name(key)!r} must be a known node state ({known}), not {_show(value)}"
            ) from None

    def items(self, key: str, parse: Callable[[object, str], _T]) -> tuple[_T, ...]:
        value = self._get(key)
        if not isinstance(value, list):
            self._fail(key, "a list", value)
        if len(value) > _MAX_ITEMS:
            raise _Invalid(f"field {self._name(key)!r} has more than {_MAX_ITEMS} entries")
        return tuple(parse(item, f"{self._name(key)}[{i}]") for i, item in enumerate(value))

    def timing(self, key: str) -> dict[str, float]:
        value = self._get(key)
        if not isinstance(value, dict):
            self._fail(key, "an object of numbers", value)
        if len(value) > 64:
            raise _Invalid(f"field {self._name(key)!r} has more than 64 entries")
        out: dict[str, float] = {}
        for k, v in value.items():
            if _TOKEN.fullmatch(k) is None:
                raise _Invalid(f"field {self._name(key)!r} has a bad key {_show(k)}")
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise _Invalid(f"field {self._name(key)}.{k!s} must be a finite number, not {_show(v)}")
            out[k] = float(v)
        return out

    def done(self) -> None:
        unknown = sorted(set(self._obj) - self._seen)
        if unknown:
            raise _Invalid(f"unknown field {self._name(unknown[0])!r}")


_T = TypeVar("_T")


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _process(obj: object, where: str) -> ProcessIdentity:
    f = _Fields(obj, where)
    p = ProcessIdentity(
        host=f.text("host", 255, empty=False),
        boot_id=f.text("boot_id", 128),
        pid=f.int_("pid", 1, 2**31 - 1),
        start_time=f.int_("start_time"),
        role=f.text("role", 63, empty=False),
    )
    f.done()
    return p


def _device(obj: object, where: str) -> DeviceStatus:
    f = _Fields(obj, where)
    d = DeviceStatus(
        name=f.name("name"),
        driver=f.text("driver", 63, empty=False),
        channels=f.int_("channels", 0, 4096),
        health=f.text("health", 32, empty=False),
    )
    f.done()
    return d


def _process_doc(p: ProcessIdentity) -> dict[str, Any]:
    return {"host": p.host, "boot_id": p.boot_id, "pid": p.pid, "start_time": p.start_time, "role": p.role}


def _device_doc(d: DeviceStatus) -> dict[str, Any]:
    return {"name": d.name, "driver": d.driver, "channels": d.channels, "health": d.health}


# ---------------------------------------------------------------------------------------- bytes ↔ document


def _canonical(doc: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "crc32"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _crc(doc: Mapping[str, Any]) -> str:
    return f"{zlib.crc32(_canonical(doc)):08x}"


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_bytes(doc: dict[str, Any]) -> bytes:
    doc["crc32"] = _crc(doc)
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    raise _Invalid(f"{name} is not a valid value")


def _parse(raw: bytes, fmt: str, cluster: str) -> _Fields:
    """Bytes → checked header; returns the field reader for the body. Raises _Invalid / ForeignRecordError."""
    if len(raw) > MAX_RECORD_BYTES:
        raise _Invalid(f"record larger than {MAX_RECORD_BYTES} bytes ({len(raw)})")
    if not raw.strip():
        raise _Invalid("empty file" if not raw else "empty file (only blanks)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            raise _Invalid(f"truncated JSON ({len(raw)} bytes; cut inside a UTF-8 character)") from None
        raise _Invalid(f"not UTF-8 text (garbage or binary data at byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        # The parser stopped in the last few characters (mid-number, mid-escape) or inside a string that never
        # ends: the text was cut off. An error earlier on is garbage in the middle.
        near_end = exc.pos >= len(text.rstrip()) - 16
        cut = near_end or exc.msg.startswith("Unterminated string")
        if text.lstrip().startswith("{") and cut and exc.msg != "Extra data":
            raise _Invalid(f"truncated JSON ({len(raw)} bytes; {exc.msg})") from None
        raise _Invalid(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise _Invalid("invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise _Invalid(f"record must be a JSON object, not {_kind(doc)}")
    found = doc.get("format")
    if found != fmt:
        raise _Invalid(f"format {_show(found)}, expected {fmt!r}" if found is not None else "field 'format' is missing")
    crc = doc.get("crc32")
    if not isinstance(crc, str) or _HEX8.fullmatch(crc) is None:
        raise _Invalid(f"field 'crc32' must be 8 lower-case hex digits, not {_show(crc)}")
    try:
        expected_crc = _crc(doc)
    except ValueError:
        raise _Invalid("record holds a value that cannot be checksummed") from None
    if crc != expected_crc:
        raise _Invalid(f"crc mismatch (stored {crc}, computed {expected_crc})")
    f = _Fields(doc, "")
    f.text("format", 64)
    f.text("crc32", 8)
    f.text("written_at_iso", 64)
    found_cluster = f.name("cluster")
    if found_cluster != cluster:
        raise ForeignRecordError(found_cluster, cluster)
    return f


def _decode(raw: bytes, fmt: str, cluster: str, build: Callable[[_Fields], _T]) -> _T:
    try:
        f = _parse(raw, fmt, cluster)
        value = build(f)
        f.done()
    except _Invalid as exc:
        raise CorruptRecordError(str(exc)) from None
    return value


def _encode(doc: dict[str, Any], fmt: str, cluster: str, build: Callable[[_Fields], object], what: str) -> bytes:
    """Serialise ``doc`` and prove it decodes (the same validation), so nothing unreadable is ever written."""
    try:
        raw = _to_bytes(doc)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"cannot encode {what}: {exc}") from None
    try:
        f = _parse(raw, fmt, cluster)
        build(f)
        f.done()
    except _Invalid as exc:
        raise ValidationError(f"cannot encode {what}: {exc}") from None
    return raw


def _wall_field(value: float, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= _WALL_MAX:
        raise ValidationError(
            f"cannot encode {what}: written time must be a number from 0 to {_WALL_MAX:g}, not {value!r}"
        )
    return float(value)


# ------------------------------------------------------------------------------------------- heartbeat


def _heartbeat_doc(record: HeartbeatRecord, fmt: str) -> dict[str, Any]:
    check_name(record.cluster, "cluster")
    wall = _wall_field(record.written_at, "heartbeat record")
    return {
        "format": fmt,
        "cluster": record.cluster,
        "holder": record.holder,
        "term": record.term,
        "seq": record.seq,
        "state": record.state.value if isinstance(record.state, NodeState) else record.state,
        "written_at": wall,
        "written_at_iso": _iso(wall),
        "activity": record.activity,
        "pending": record.pending,
        "timing_hash": record.timing_hash,
        "processes": [_process_doc(p) for p in record.processes],
        "handover_to": record.handover_to,
    }


def _heartbeat_from(f: _Fields) -> HeartbeatRecord:
    return HeartbeatRecord(
        cluster=f.name("cluster"),
        holder=f.name("holder"),
        term=f.int_("term"),
        seq=f.int_("seq"),
        written_at=f.number("written_at", 0, _WALL_MAX),
        state=f.state("state"),
        activity=f.int_("activity"),
        pending=f.int_("pending"),
        timing_hash=f.text("timing_hash", 128),
        processes=f.items("processes", _process),
        handover_to=f.name("handover_to", empty=True),
    )


def encode_heartbeat(record: HeartbeatRecord) -> bytes:
    """The bytes of ``heartbeat.json``. Raises ValidationError for a record that could not be read back."""
    return _encode(
        _heartbeat_doc(record, HEARTBEAT_FORMAT), HEARTBEAT_FORMAT, record.cluster, _heartbeat_from, "heartbeat record"
    )


def decode_heartbeat(raw: bytes, cluster: str) -> HeartbeatRecord:
    """Parse and validate a heartbeat of ``cluster``. Raises CorruptRecordError (ForeignRecordError) with the reason."""
    return _decode(raw, HEARTBEAT_FORMAT, cluster, _heartbeat_from)


def encode_term(record: HeartbeatRecord) -> bytes:
    """The bytes of a term record (the file store's ``terms/term-<N>.json``): the record as acquired by the winner."""
    return _encode(_heartbeat_doc(record, TERM_FORMAT), TERM_FORMAT, record.cluster, _heartbeat_from, "term record")


def decode_term(raw: bytes, cluster: str) -> HeartbeatRecord:
    """Parse and validate a term record of ``cluster``. Raises CorruptRecordError with the reason."""
    return _decode(raw, TERM_FORMAT, cluster, _heartbeat_from)


# ---------------------------------------------------------------------------------------------- member


def _member_from(f: _Fields) -> MemberRecord:
    return MemberRecord(
        cluster=f.name("cluster"),
        name=f.name("name"),
        seq=f.int_("seq"),
        written_at=f.number("written_at", 0, _WALL_MAX),
        state=f.state("state"),
        priority=f.int_("priority", -(2**31), 2**31 - 1),
        term=f.int_("term"),
        timing_hash=f.text("timing_hash", 128),
        timing=f.timing("timing"),
        healthy=f.bool_("healthy"),
        devices=f.items("devices", _device),
        processes=f.items("processes", _process),
    )


def encode_member(member: MemberRecord) -> bytes:
    """The bytes of ``members/<name>.json``. Raises ValidationError naming the bad field."""
    check_name(member.cluster, "cluster")
    wall = _wall_field(member.written_at, "member record")
    for key, value in member.timing.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise ValidationError(f"cannot encode member record: field 'timing.{key}' must be a finite number")
    doc: dict[str, Any] = {
        "format": MEMBER_FORMAT,
        "cluster": member.cluster,
        "name": member.name,
        "seq": member.seq,
        "state": member.state.value if isinstance(member.state, NodeState) else member.state,
        "priority": member.priority,
        "term": member.term,
        "healthy": member.healthy,
        "written_at": wall,
        "written_at_iso": _iso(wall),
        "timing_hash": member.timing_hash,
        "timing": dict(member.timing),
        "devices": [_device_doc(d) for d in member.devices],
        "processes": [_process_doc(p) for p in member.processes],
    }
    return _encode(doc, MEMBER_FORMAT, member.cluster, _member_from, "member record")


def decode_member(raw: bytes, cluster: str) -> MemberRecord:
    """Parse and validate a member record of ``cluster``. Raises CorruptRecordError with the reason."""
    return _decode(raw, MEMBER_FORMAT, cluster, _member_from)


# ------------------------------------------------------------------------------------------ switchover


def _switchover_from(f: _Fields) -> SwitchoverRequest:
    return SwitchoverRequest(
        id=f.text("id", 128, empty=False),
        from_term=f.int_("from_term"),
        target=f.name("target", empty=True),
        requested_at=f.number("requested_at", 0, _WALL_MAX),
        status=f.token("status"),
        reason=f.text("reason", 1024, printable=False),
    )


def encode_switchover(request: SwitchoverRequest, cluster: str) -> bytes:
    """The bytes of ``switchover.json`` for ``cluster``. Raises ValidationError naming the bad field."""
    check_name(cluster, "cluster")
    wall = _wall_field(request.requested_at, "switchover request")
    doc: dict[str, Any] = {
        "format": SWITCHOVER_FORMAT,
        "cluster": cluster,
        "id": request.id,
        "from_term": request.from_term,
        "target": request.target,
        "status": request.status,
        "reason": request.reason,
        "requested_at": wall,
        "written_at_iso": _iso(wall),
    }
    return _encode(doc, SWITCHOVER_FORMAT, cluster, _switchover_from, "switchover request")


def decode_switchover(raw: bytes, cluster: str) -> SwitchoverRequest:
    """Parse and validate a switchover request of ``cluster``. Raises CorruptRecordError with the reason."""
    return _decode(raw, SWITCHOVER_FORMAT, cluster, _switchover_from)
