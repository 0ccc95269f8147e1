"""The in-memory heartbeat store: the reference implementation of the CAS rules, for tests and simulations.

Several :class:`MemoryHeartbeatStore` handles (one per simulated node) share one :class:`MemoryBackend`.
The backend keeps every record as the bytes of the real on-store format (:mod:`zetafailover.stores._codec`),
so the codec is exercised and a test can plant a torn or foreign record with :meth:`MemoryBackend.set_raw` /
:meth:`MemoryBackend.corrupt`. A :class:`threading.Lock` makes each compare-and-swap atomic. Its rules are
the contract's; it differs from the file store in one deliberate way: the file store keeps the term in its
term files and may therefore repair a damaged heartbeat on renew, while this store, which keeps the term only
in the heartbeat and term slots, never overwrites a record it cannot read.

* ``acquire(expected, record)``: the current term is the highest term readable from the heartbeat and the
  term slot (0 when both are empty; the caller's ``expected`` when both are unreadable but one is set); a
  foreign record is never taken over.
* ``renew(record)``: the heartbeat must be readable and hold ``record``'s term and holder; ``seq`` becomes
  the stored ``seq + 1``; an unreadable record is never overwritten.

``memory_backend(name)`` gives process-global named backends for ``memory://name`` store URLs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from zetafailover.errors import (
    CorruptRecordError,
    LostTermError,
    StoreUnavailableError,
    TermConflictError,
    ValidationError,
)
from zetafailover.interfaces import Characteristic, HeartbeatRecord, MemberRecord, StoreRead, SwitchoverRequest
from zetafailover.stores._codec import (
    ForeignRecordError,
    check_acquire_args,
    check_cluster,
    check_name,
    decode_heartbeat,
    decode_member,
    decode_switchover,
    decode_term,
    encode_heartbeat,
    encode_member,
    encode_switchover,
    encode_term,
    is_valid_name,
)

__all__ = ["MemoryBackend", "MemoryHeartbeatStore", "memory_backend"]

log = logging.getLogger("zetafailover.store")

_T = TypeVar("_T")
_SLOTS = ("heartbeat", "term", "switchover")


class MemoryBackend:
    """What several in-memory handles share: the raw bytes of every record, behind one lock.

    Slots are ``"heartbeat"``, ``"term"``, ``"switchover"`` and ``"members/<name>"``. Thread-safe; every method
    holds the lock only for a dictionary operation (never blocks otherwise).
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.lock = threading.RLock()
        """Held by a handle for a whole compare-and-swap; tests may hold it to stall the store."""
        self._raw: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"MemoryBackend({self.name!r})"

    def get_raw(self, slot: str) -> bytes | None:
        """The stored bytes of ``slot`` (None when empty)."""
        _check_slot(slot)
        with self.lock:
            return self._raw.get(slot)

    def set_raw(self, slot: str, raw: bytes | None) -> None:
        """Plant ``raw`` in ``slot`` as is (None empties it): how tests stage torn, foreign or forged records."""
        _check_slot(slot)
        with self.lock:
            if raw is None:
                self._raw.pop(slot, None)
            else:
                self._raw[slot] = bytes(raw)

    def corrupt(self, raw: bytes = b'{"format": "zetafailover-heartbeat/1", "clus', slot: str = "heartbeat") -> None:
        """Replace ``slot`` with bad bytes (by default a heartbeat cut in the middle)."""
        self.set_raw(slot, raw)

    def member_names(self) -> list[str]:
        """The names of the member slots, sorted."""
        with self.lock:
            return sorted(k.removeprefix("members/") for k in self._raw if k.startswith("members/"))

    def clear(self) -> None:
        """Empty every slot."""
        with self.lock:
            self._raw.clear()


def _check_slot(slot: str) -> None:
    if slot in _SLOTS:
        return
    if slot.startswith("members/") and slot.removeprefix("members/"):
        return
    raise ValidationError(f"unknown memory store slot {slot!r}: use heartbeat, term, switchover or members/<name>")


_BACKENDS: dict[str, MemoryBackend] = {}
_BACKENDS_LOCK = threading.Lock()


def memory_backend(name: str) -> MemoryBackend:
    """The process-global backend called ``name`` (created on first use); what ``memory://name`` opens."""
    check_name(name, "memory store name")
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(name)
        if backend is None:
            backend = _BACKENDS[name] = MemoryBackend(name)
        return backend


class MemoryHeartbeatStore:
    """One node's handle on a :class:`MemoryBackend`.

    Timing: never blocks except to wait for another handle's operation on the same backend (microseconds).
    Atomicity: ``acquire`` and ``renew`` are compare-and-swap operations under the backend's lock and are
    linearizable; every other write replaces one slot atomically. ``publish_member``, ``put_switchover`` and
    ``close`` are idempotent. A bad record is reported by :meth:`read`, never raised.
    """

    characteristics: frozenset[Characteristic] = frozenset({Characteristic.ATOMIC_CAS, Characteristic.LINEARIZABLE})

    def __init__(self, cluster: str, backend: MemoryBackend | None = None) -> None:
        self.cluster = check_name(cluster, "cluster")
        self.backend = backend if backend is not None else MemoryBackend()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, cluster: str) -> MemoryHeartbeatStore:
        """Open ``memory://name``: a handle on the process-global backend ``name``."""
        parts = urlsplit(url)
        if parts.scheme != "memory" or not parts.netloc or parts.path not in ("", "/") or parts.query:
            raise ValidationError(f"store URL {url!r}: expected memory://name")
        return cls(cluster, memory_backend(parts.netloc))

    def __repr__(self) -> str:
        return f"MemoryHeartbeatStore(cluster={self.cluster!r}, backend={self.backend!r})"

    def read(self) -> StoreRead:
        """The current heartbeat, or ``StoreRead(None)``, or ``StoreRead(None, problem=…)`` for a bad record.

        Like the file store, a term slot ahead of the heartbeat (only possible when a test plants it) is
        reported as the won term's record.
        """
        self._check_open()
        with self.backend.lock:
            hb_raw = self.backend.get_raw("heartbeat")
            tm_raw = self.backend.get_raw("term")
        hb, hb_problem = self._decode(hb_raw, decode_heartbeat, "heartbeat")
        if hb_problem:
            return StoreRead(None, problem=hb_problem)
        tm, tm_problem = self._decode(tm_raw, decode_term, "term")
        if tm_problem and hb is None:
            return StoreRead(None, problem=f"heartbeat: missing and {tm_problem}")
        if tm is not None and (hb is None or tm.term > hb.term):
            return StoreRead(tm)
        return StoreRead(hb)

    def acquire(self, expected_term: int, record: HeartbeatRecord) -> HeartbeatRecord:
        """Win ``record.term`` (``== expected_term + 1``) by compare-and-swap. See the module docstring.

        Raises ValueError for bad arguments, TermConflictError when the current term is not ``expected_term``,
        CorruptRecordError over another cluster's record.
        """
        self._check_open()
        check_acquire_args(expected_term, record, self.cluster)
        term_bytes = encode_term(record)
        heartbeat_bytes = encode_heartbeat(record)
        with self.backend.lock:
            hb_raw = self.backend.get_raw("heartbeat")
            tm_raw = self.backend.get_raw("term")
            hb = self._decode_strict(hb_raw, decode_heartbeat, f"acquire of term {record.term}")
            tm = self._decode_strict(tm_raw, decode_term, f"acquire of term {record.term}")
            readable = [r for r in (hb, tm) if r is not None]
            if readable:
                best = max(readable, key=lambda r: r.term)
                current, holder = best.term, best.holder
            elif hb_raw is None and tm_raw is None:
                current, holder = 0, ""
            else:
                current, holder = expected_term, "?"
                log.warning(
                    "acquire of term %d by %r: no readable heartbeat or term record; accepting the caller's "
                    "expected term %d",
                    record.term,
                    record.holder,
                    expected_term,
                )
            if current != expected_term:
                raise TermConflictError(
                    f"acquire of term {record.term} by {record.holder!r} refused: the current term is {current}"
                    f" (held by {holder!r}), not {expected_term}"
                )
            self.backend.set_raw("term", term_bytes)
            self.backend.set_raw("heartbeat", heartbeat_bytes)
        return record

    def renew(self, record: HeartbeatRecord) -> HeartbeatRecord:
        """Rewrite the heartbeat with the stored ``seq + 1`` if ``record.holder`` still holds ``record.term``.

        Raises LostTermError (another holder or a higher term), CorruptRecordError (a record that cannot be
        verified is never overwritten).
        """
        self._check_open()
        check_cluster(record.cluster, self.cluster, "renew")
        what = f"renew of term {record.term} by {record.holder!r}"
        with self.backend.lock:
            hb_raw = self.backend.get_raw("heartbeat")
            if hb_raw is None:
                raise LostTermError(f"{what} refused: there is no heartbeat record")
            stored, problem = self._decode(hb_raw, decode_heartbeat, "heartbeat")
            if stored is None:
                raise CorruptRecordError(
                    f"{what} refused: {problem}; a record that cannot be verified is never overwritten"
                )
            won, tm_problem = self._decode(self.backend.get_raw("term"), decode_term, "term")
            if tm_problem:
                raise CorruptRecordError(
                    f"{what} refused: {tm_problem}; a term that cannot be verified is never renewed"
                )
            if won is not None and (
                won.term > record.term or (won.term == record.term and won.holder != record.holder)
            ):
                raise LostTermError(f"{what} refused: term {won.term} was won by {won.holder!r}")
            if stored.term != record.term or stored.holder != record.holder:
                raise LostTermError(f"{what} refused: the store holds term {stored.term} (held by {stored.holder!r})")
            new = dataclasses.replace(record, seq=stored.seq + 1)
            self.backend.set_raw("heartbeat", encode_heartbeat(new))
        return new

    def publish_member(self, member: MemberRecord) -> None:
        """Replace this node's member record. Idempotent."""
        self._check_open()
        check_cluster(member.cluster, self.cluster, "publish_member")
        check_name(member.name, "member name")
        self.backend.set_raw(f"members/{member.name}", encode_member(member))

    def read_members(self) -> Sequence[MemberRecord]:
        """Every readable member record of this cluster, sorted by name; bad ones are skipped."""
        self._check_open()
        out: list[MemberRecord] = []
        for name in self.backend.member_names():
            member, problem = self._decode(self.backend.get_raw(f"members/{name}"), decode_member, f"members/{name}")
            if member is None:
                if problem:
                    log.debug("%s; skipped", problem)
                continue
            if not is_valid_name(name) or member.name != name:
                log.debug("members/%s holds member %r; skipped", name, member.name)
                continue
            out.append(member)
        return out

    def put_switchover(self, request: SwitchoverRequest) -> None:
        """Replace the switchover request (last writer wins). Idempotent."""
        self._check_open()
        self.backend.set_raw("switchover", encode_switchover(request, self.cluster))

    def read_switchover(self) -> SwitchoverRequest | None:
        """The current switchover request, or None (also for an unreadable one)."""
        self._check_open()
        request, problem = self._decode(self.backend.get_raw("switchover"), decode_switchover, "switchover")
        if problem:
            log.debug("%s; ignoring the switchover request", problem)
        return request

    def close(self) -> None:
        """Forget the handle; later calls raise StoreUnavailableError. Idempotent."""
        self._closed = True

    # ---------------------------------------------------------------------------------------- helpers

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailableError(f"{self!r} is closed")

    def _decode(self, raw: bytes | None, decode: Callable[[bytes, str], _T], slot: str) -> tuple[_T | None, str]:
        if raw is None:
            return None, ""
        try:
            return decode(raw, self.cluster), ""
        except CorruptRecordError as exc:
            return None, f"{slot}: {exc}"

    def _decode_strict(self, raw: bytes | None, decode: Callable[[bytes, str], _T], what: str) -> _T | None:
        """Decode for a CAS: None for empty or corrupt; a foreign record raises (never taken over)."""
        if raw is None:
            return None
        try:
            return decode(raw, self.cluster)
        except ForeignRecordError as exc:
            raise CorruptRecordError(f"{what} refused: {exc}; another cluster's store is never taken over") from None
        except CorruptRecordError:
            return None
