"""The etcd heartbeat store: the heartbeat and the term on an etcd cluster (``etcd://h1:2379,h2:2379/prefix``).

For sites without one trustworthy shared folder (several sites, more than two nodes). etcd is a tested
consensus engine: every write below is committed by a quorum of its members before it is acknowledged, so a
compare-and-swap on it is exact across hosts, and a member or a site that loses its quorum can write nothing.

Keys (all under ``/<prefix>/<cluster>/``; ``prefix`` defaults to ``zetafailover``), values in the same
self-checking JSON formats as the file store (:mod:`zetafailover.stores._codec`)::

    term                 the term counter: the record of the winner of the current term (never leased,
                         never deleted); the fencing token is its ``term``
    heartbeat            the holder's heartbeat record (no lease: a dead holder's last record stays, so the
                         standbys see its (term, seq) stop changing, exactly as with a file)
    leader/<term:012d>   "the holder of this term is alive": created with the term, attached to the holder's
                         lease, kept alive by every renew; gone when the lease expires or is revoked
    members/<name>       every node's member record
    switchover           the manual switchover request

**Winning a term** is one transaction: *if* ``term`` is unchanged since it was read as ``expected_term``
(``mod_revision`` equal, or ``create_revision == 0`` for a new cluster) *and* ``leader/<expected+1>`` does not
exist (``create_revision == 0``), *then* put ``term`` and ``heartbeat`` = the new record and create
``leader/<expected+1>`` on a freshly granted lease. etcd runs transactions one at a time, so of several
contenders that read the same ``term`` exactly one succeeds; the others see a changed ``mod_revision``. The term
rises by exactly one per takeover and can never repeat (the counter key is only ever replaced through this
transaction). The acquire does **not** wait for the previous holder's lease: the failover core declares a
holder dead by its heartbeat's ``(term, seq)`` on the standby's own clock, and the contract (and a
switchover) need the term to be winnable while the old lease still runs — which it can for up to an etcd
election + TTL after an etcd leader change, as measured. Safety does not rest on the lease: the old holder
self-fences ``timeout − margin`` after its last successful renew, and every later renew of it fails the
comparison on ``term``.

**Renewing** is one transaction too: *if* ``term`` and ``heartbeat`` are unchanged since read (and the read
showed this holder's term), *then* write the heartbeat with ``seq + 1`` (and re-attach ``leader/<term>`` to
the lease if it had expired). Before it, the lease is kept alive (a new one is granted if it expired). A
RELEASED renew deletes ``leader/<term>`` and revokes the lease, so a watcher sees the release at once.

Every call is bounded: each method has ``timeout`` seconds in all (taken from the cluster's
``store_timeout``), shared by its HTTP requests; a frozen member costs a share and the next endpoint is
tried. A read that fails is ``StoreRead(None, problem=…)``, never "no holder"; a write that cannot reach a
quorum raises :class:`~zetafailover.errors.StoreUnavailableError` (the node then self-fences on time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from zetafailover.errors import (
    CorruptRecordError,
    LostTermError,
    StoreUnavailableError,
    TermConflictError,
    ValidationError,
)
from zetafailover.interfaces import (
    Characteristic,
    HeartbeatRecord,
    MemberRecord,
    NodeState,
    StoreRead,
    SwitchoverRequest,
)
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
from zetafailover.stores._etcd_client import (
    EtcdClient,
    EtcdError,
    EtcdRequestError,
    EtcdUnavailableError,
    KeyValue,
    cmp_create,
    cmp_mod,
    op_delete,
    op_put,
    op_range,
    parse_endpoints,
)

if TYPE_CHECKING:
    from zetafailover.core.timing import Timing

__all__ = ["DEFAULT_PREFIX", "EtcdHeartbeatStore", "lease_ttl_for", "parse_etcd_url"]

log = logging.getLogger("zetafailover.store")

DEFAULT_PREFIX = "zetafailover"
DEFAULT_TIMEOUT = 2.0
DEFAULT_LEASE_TTL = 5
_PREFIX = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_RENEW_ATTEMPTS = 3
_T = TypeVar("_T")


def lease_ttl_for(timing: Timing) -> int:
    """The lease TTL for ``timing``: ``timeout − margin`` rounded up to whole seconds (etcd's unit), at least 1.

    The holder's right to act ends ``timeout − margin`` after its last successful renew began; etcd starts
    the TTL only when the keep-alive arrives and never expires a lease early, so while ``leader/<term>``
    exists the holder may still be acting, and once it expired the holder has self-fenced.
    """
    return max(1, math.ceil(timing.self_fence_after - 1e-9))


@dataclass(frozen=True, slots=True)
class EtcdUrl:
    """A parsed ``etcd://`` store URL."""

    endpoints: tuple[tuple[str, int], ...]
    prefix: str
    timeout: float | None
    lease_ttl: int | None


def parse_etcd_url(url: str) -> EtcdUrl:
    """Parse ``etcd://HOST:PORT[,HOST:PORT…][/PREFIX][?timeout=SECONDS&ttl=SECONDS]``.

    Raises :class:`~zetafailover.errors.ValidationError` naming the URL and what is wrong with it.
    """
    parts = urlsplit(url)
    if parts.scheme != "etcd":
        raise ValidationError(f"store URL {url!r}: expected etcd://HOST:PORT[,HOST:PORT…][/PREFIX]")
    if not parts.netloc:
        raise ValidationError(f"store URL {url!r}: names no etcd endpoint (etcd://127.0.0.1:2379/PREFIX)")
    if "@" in parts.netloc:
        raise ValidationError(f"store URL {url!r}: user names and passwords are not supported")
    try:
        endpoints = tuple(parse_endpoints(parts.netloc))
    except ValueError as exc:
        raise ValidationError(f"store URL {url!r}: {exc}") from None
    prefix = unquote(parts.path).strip("/") or DEFAULT_PREFIX
    if not _PREFIX.fullmatch(prefix):
        raise ValidationError(
            f"store URL {url!r}: the key prefix {prefix!r} must be words of letters, digits, '.', '_' or '-' "
            "separated by '/'"
        )
    if parts.fragment:
        raise ValidationError(f"store URL {url!r}: takes no fragment")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - {"timeout", "ttl"})
    if unknown:
        raise ValidationError(f"store URL {url!r}: unknown option {unknown[0]!r}; known options: timeout, ttl")
    timeout = _query_number(url, query, "timeout")
    ttl = _query_number(url, query, "ttl")
    if ttl is not None and ttl != int(ttl):
        raise ValidationError(f"store URL {url!r}: ttl must be a whole number of seconds, not {ttl:g}")
    return EtcdUrl(endpoints, prefix, timeout, int(ttl) if ttl is not None else None)


def _query_number(url: str, query: dict[str, list[str]], name: str) -> float | None:
    values = query.get(name)
    if not values:
        return None
    try:
        value = float(values[-1])
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(
            f"store URL {url!r}: {name} must be a number of seconds greater than 0, not {values[-1]!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class _Snapshot:
    term: KeyValue | None
    heartbeat: KeyValue | None
    leader: KeyValue | None
    revision: int


class EtcdHeartbeatStore:
    """The heartbeat, the term, the members and the switchover request on an etcd cluster.

    Timing: every method returns or raises within ``timeout`` seconds (plus scheduling noise), however the
    cluster behaves (members dead, frozen, without quorum): its HTTP requests share that budget and fail over
    between ``endpoints``. Nothing blocks on another node. Construction does no I/O.

    Atomicity: ``acquire`` and ``renew`` are single etcd transactions comparing the ``term`` key (see the
    module docstring): exactly one of several contenders wins a term, and after a takeover no renew of the old
    holder can succeed. A renew already applied when the takeover was applied is simply older. Every other
    write replaces one key (atomic, linearizable); ``publish_member``, ``put_switchover`` and ``close`` are
    idempotent; reads are linearizable (they go through the raft leader and fail without a quorum).

    Errors: a failed or bad read is reported in ``StoreRead.problem`` (no new evidence), never raised; a write
    that gets no answer from a quorum raises StoreUnavailableError. A write whose answer was lost is checked by
    a read before it is reported as failed.
    """

    characteristics: frozenset[Characteristic] = frozenset(
        {Characteristic.ATOMIC_CAS, Characteristic.LINEARIZABLE, Characteristic.CROSS_HOST, Characteristic.DURABLE}
    )

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int] | str] | str | EtcdClient,
        cluster: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        lease_ttl: int = DEFAULT_LEASE_TTL,
    ) -> None:
        self.cluster = check_name(cluster, "cluster")
        if not _PREFIX.fullmatch(prefix):
            raise ValidationError(f"etcd key prefix {prefix!r} must be words of letters, digits, '.', '_' or '-'")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            raise ValidationError(f"etcd store timeout must be a number of seconds greater than 0, not {timeout!r}")
        if isinstance(lease_ttl, bool) or not isinstance(lease_ttl, int) or lease_ttl < 1:
            raise ValidationError(f"etcd lease TTL must be a whole number of seconds ≥ 1, not {lease_ttl!r}")
        try:
            self.client = endpoints if isinstance(endpoints, EtcdClient) else EtcdClient(endpoints)
        except ValueError as exc:
            raise ValidationError(f"etcd endpoints {endpoints!r}: {exc}") from None
        self.prefix = prefix
        self.timeout = float(timeout)
        self.lease_ttl = lease_ttl
        root = f"/{prefix}/{self.cluster}/".encode()
        self.root = root
        self._term_key = root + b"term"
        self._heartbeat_key = root + b"heartbeat"
        self._leader_dir = root + b"leader/"
        self._members_dir = root + b"members/"
        self._switchover_key = root + b"switchover"
        self._lock = threading.Lock()
        self._lease: tuple[int, int] | None = None  # (lease id, term) held through this handle
        self._seen_revision = 0
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, cluster: str, *, timing: Timing | None = None, first_endpoint: int = 0
    ) -> EtcdHeartbeatStore:
        """Open ``etcd://HOST:PORT[,HOST:PORT…][/PREFIX][?timeout=S&ttl=S]`` for ``cluster``.

        Without ``timeout`` in the URL each call gets 90 % of ``timing.store_timeout`` (2 s without timing);
        without ``ttl`` the lease TTL is :func:`lease_ttl_for` ``(timing)`` (5 s without timing). No I/O.
        """
        parsed = parse_etcd_url(url)
        timeout = parsed.timeout or (0.9 * timing.store_timeout if timing is not None else DEFAULT_TIMEOUT)
        ttl = parsed.lease_ttl or (lease_ttl_for(timing) if timing is not None else DEFAULT_LEASE_TTL)
        client = EtcdClient(parsed.endpoints, first=first_endpoint)
        return cls(client, cluster, prefix=parsed.prefix, timeout=timeout, lease_ttl=ttl)

    def __repr__(self) -> str:
        return f"EtcdHeartbeatStore({self.client!r}, prefix={self.prefix!r}, cluster={self.cluster!r})"

    def leader_key(self, term: int) -> bytes:
        """``/<prefix>/<cluster>/leader/<term:012d>``: exists while the holder of ``term`` keeps its lease."""
        return self._leader_dir + f"{term:012d}".encode()

    # -------------------------------------------------------------------------------------- heartbeat

    def read(self) -> StoreRead:
        """The current heartbeat (one linearizable read of ``term`` and ``heartbeat`` at one revision).

        ``StoreRead(None)`` for a new cluster; ``StoreRead(None, problem=…)`` when etcd did not answer (no
        quorum, every member dead or frozen) or a record is damaged or foreign — never raised. A ``term`` above
        the heartbeat's (only if someone wrote the keys by hand) is reported as the won term's record.
        Timing: at most ``timeout``.
        """
        self._check_open()
        try:
            snap = self._snapshot(time.monotonic() + self.timeout)
        except EtcdError as exc:
            return StoreRead(None, problem=f"etcd read failed: {exc}")
        hb, hb_problem = self._decode(snap.heartbeat, decode_heartbeat, "heartbeat")
        if hb_problem:
            return StoreRead(None, problem=hb_problem)
        tm, tm_problem = self._decode(snap.term, decode_term, "term")
        if tm_problem:
            if hb is None:
                return StoreRead(None, problem=f"heartbeat: missing and {tm_problem}")
            log.warning("%s; reading the heartbeat alone", tm_problem)
        if tm is not None and (hb is None or tm.term > hb.term):
            return StoreRead(tm)
        return StoreRead(hb)

    def acquire(self, expected_term: int, record: HeartbeatRecord) -> HeartbeatRecord:
        """Win ``record.term`` (``== expected_term + 1``) by one etcd transaction (see the module docstring).

        The current term is that of the ``term`` key (0 for a new cluster). When ``term`` is damaged the
        heartbeat's term counts; when both are damaged the caller's ``expected_term`` is accepted (it has
        watched a full timeout without evidence) and a warning is logged. A record of another cluster is never
        taken over (CorruptRecordError). Raises ValidationError for bad arguments, TermConflictError when the
        current term is not ``expected_term`` or another node won the same term first, StoreUnavailableError
        when etcd did not answer (if the transaction may have been applied, the lease is checked first; a
        lease this call granted but did not use is revoked, so a late application is impossible).
        Timing: four requests at most (read, grant, transaction, check or revoke), within ``timeout``.
        """
        self._check_open()
        check_acquire_args(expected_term, record, self.cluster)
        what = f"acquire of term {record.term} by {record.holder!r}"
        term_bytes = encode_term(record)
        heartbeat_bytes = encode_heartbeat(record)
        deadline = time.monotonic() + self.timeout
        try:
            snap = self._snapshot(deadline)
        except EtcdError as exc:
            raise StoreUnavailableError(f"{what} failed: {exc}") from None
        current, holder = self._current_term(snap, expected_term, what)
        if current != expected_term:
            raise TermConflictError(
                f"{what} refused: the current term is {current} (held by {holder!r}), not {expected_term}"
            )
        leader = self.leader_key(record.term)
        try:
            lease, _ = self.client.lease_grant(self.lease_ttl, timeout=self._left(deadline, what))
        except EtcdError as exc:
            raise StoreUnavailableError(f"{what} failed: cannot grant a lease: {exc}") from None
        compare = [
            cmp_mod(self._term_key, snap.term.mod_revision) if snap.term else cmp_create(self._term_key, 0),
            cmp_create(leader, 0),
        ]
        success = [
            op_put(self._term_key, term_bytes),
            op_put(self._heartbeat_key, heartbeat_bytes),
            op_put(leader, self._leader_value(record), lease),
        ]
        try:
            result = self.client.txn(compare, success, [op_range(self._term_key)], timeout=self._left(deadline, what))
        except EtcdError as exc:
            if (
                isinstance(exc, EtcdUnavailableError)
                and exc.maybe_applied
                and self._lease_holds(leader, lease, deadline)
            ):
                log.info("%s: the answer was lost but the term was won (leader key on our lease)", what)
                self._adopt_lease(lease, record.term, deadline)
                return record
            self._revoke_quietly(lease, deadline)
            raise StoreUnavailableError(f"{what} failed: {exc}") from None
        if not result.succeeded:
            self._revoke_quietly(lease, deadline)
            now_term, now_holder = self._term_of(result.ranges[0][0] if result.ranges and result.ranges[0] else None)
            raise TermConflictError(
                f"{what} refused: term {now_term} was won by {now_holder!r} just now (the current term moved "
                f"from {expected_term})"
            )
        self._adopt_lease(lease, record.term, deadline)
        return record

    def renew(self, record: HeartbeatRecord) -> HeartbeatRecord:
        """Rewrite the heartbeat with the stored ``seq + 1`` if ``record.holder`` still holds ``record.term``.

        Reads ``term``, ``heartbeat`` and ``leader/<term>``; raises LostTermError when ``term`` names a higher
        term, another holder, or a term never won; CorruptRecordError when ``term`` is damaged or foreign (a
        term that cannot be verified is never renewed). Keeps the lease alive (grants a new one if it expired,
        logging it), then writes by a transaction that compares ``term`` and ``heartbeat`` with what was read;
        if another write came between, it starts over (at most three times). A damaged heartbeat under a
        verified term is repaired (``seq`` from ``record``). A RELEASED record deletes ``leader/<term>`` and
        revokes the lease. Raises StoreUnavailableError when etcd does not answer in time.
        Timing: three requests per attempt, all within ``timeout``.
        """
        self._check_open()
        check_cluster(record.cluster, self.cluster, "renew")
        what = f"renew of term {record.term} by {record.holder!r}"
        deadline = time.monotonic() + self.timeout
        released = record.state == NodeState.RELEASED
        for _ in range(_RENEW_ATTEMPTS):
            try:
                snap = self._snapshot(deadline, leader=self.leader_key(record.term))
            except EtcdError as exc:
                raise StoreUnavailableError(f"{what} failed: {exc}") from None
            base = self._check_renew(snap, record, what, deadline)
            new = dataclasses.replace(record, seq=base + 1)
            data = encode_heartbeat(new)
            lease = 0 if released else self._live_lease(record.term, what, deadline)
            compare = [
                cmp_mod(self._term_key, snap.term.mod_revision if snap.term else 0),
                cmp_mod(self._heartbeat_key, snap.heartbeat.mod_revision)
                if snap.heartbeat
                else cmp_create(self._heartbeat_key, 0),
            ]
            ops = [op_put(self._heartbeat_key, data)]
            if released:
                ops.append(op_delete(self.leader_key(record.term)))
            elif snap.leader is None or snap.leader.lease != lease:
                ops.append(op_put(self.leader_key(record.term), self._leader_value(record), lease))
            try:
                result = self.client.txn(compare, ops, timeout=self._left(deadline, what))
            except EtcdRequestError as exc:
                if exc.lease_not_found:  # expired between the keep-alive and the write: get a new one
                    self._forget_lease(record.term)
                    continue
                raise StoreUnavailableError(f"{what} failed: {exc}") from None
            except EtcdError as exc:
                if isinstance(exc, EtcdUnavailableError) and exc.maybe_applied and self._landed(data, deadline):
                    return self._renewed(new, released, deadline)
                raise StoreUnavailableError(f"{what} failed: {exc}") from None
            if result.succeeded:
                return self._renewed(new, released, deadline)
            # term or heartbeat changed since the read: read again (a new term makes the check raise)
        raise StoreUnavailableError(f"{what} failed: the heartbeat changed under it {_RENEW_ATTEMPTS} times")

    # ---------------------------------------------------------------------------------------- members

    def publish_member(self, member: MemberRecord) -> None:
        """Replace ``members/<name>`` (one put). Idempotent. Raises StoreUnavailableError without a quorum."""
        self._check_open()
        check_cluster(member.cluster, self.cluster, "publish_member")
        check_name(member.name, "member name")
        data = encode_member(member)
        try:
            self.client.put(self._members_dir + member.name.encode(), data, timeout=self.timeout)
        except EtcdError as exc:
            raise StoreUnavailableError(f"publishing member {member.name!r} failed: {exc}") from None

    def read_members(self) -> Sequence[MemberRecord]:
        """Every readable member record of this cluster, sorted by name (one range read); bad ones are skipped.

        Raises StoreUnavailableError when etcd did not answer.
        """
        self._check_open()
        try:
            kvs, _ = self.client.range(self._members_dir, prefix=True, timeout=self.timeout)
        except EtcdError as exc:
            raise StoreUnavailableError(f"reading the member records failed: {exc}") from None
        out: list[MemberRecord] = []
        for kv in sorted(kvs, key=lambda kv: kv.key):
            name = kv.key[len(self._members_dir) :].decode("utf-8", "replace")
            member, problem = self._decode(kv, decode_member, f"members/{name}")
            if member is None:
                log.debug("%s; skipped", problem)
                continue
            if not is_valid_name(name) or member.name != name:
                log.debug("members/%s holds member %r; skipped", name, member.name)
                continue
            out.append(member)
        return out

    # ------------------------------------------------------------------------------------- switchover

    def put_switchover(self, request: SwitchoverRequest) -> None:
        """Replace ``switchover`` (last writer wins; safety rests on the term CAS). Idempotent."""
        self._check_open()
        data = encode_switchover(request, self.cluster)
        try:
            self.client.put(self._switchover_key, data, timeout=self.timeout)
        except EtcdError as exc:
            raise StoreUnavailableError(f"writing the switchover request failed: {exc}") from None

    def read_switchover(self) -> SwitchoverRequest | None:
        """The current switchover request, or None (also for an unreadable one, which is logged).

        Raises StoreUnavailableError when etcd did not answer.
        """
        self._check_open()
        try:
            kvs, _ = self.client.range(self._switchover_key, timeout=self.timeout)
        except EtcdError as exc:
            raise StoreUnavailableError(f"reading the switchover request failed: {exc}") from None
        request, problem = self._decode(kvs[0] if kvs else None, decode_switchover, "switchover")
        if problem:
            log.debug("%s; ignoring the switchover request", problem)
        return request

    # ------------------------------------------------------------------------------------------ extras

    def wait_for_change(self, timeout: float) -> list[tuple[str, str]]:
        """Block up to ``timeout`` for a change of ``heartbeat`` or a ``leader/<term>`` key (an etcd watch).

        Returns the changes as ``(type, key)`` pairs (``("PUT", "heartbeat")``, ``("DELETE",
        "leader/000000000003")`` — the holder's lease expired or was released), starting after the revision of
        this handle's last :meth:`read`, so nothing between that read and this call is missed; ``[]`` when
        nothing changed in time. A hint only: confirm by :meth:`read`. Raises StoreUnavailableError when no
        member accepts the watch or the member serving it dies (noticed at once, never waited on).
        """
        self._check_open()
        start = self._seen_revision + 1 if self._seen_revision else 0
        try:
            events = self.client.watch(
                self._heartbeat_key, range_end=self._members_dir, start_revision=start, timeout=timeout
            )
        except EtcdError as exc:
            raise StoreUnavailableError(f"etcd watch failed: {exc}") from None
        return [(e.type, e.kv.key[len(self.root) :].decode("utf-8", "replace")) for e in events]

    def holder_lease_alive(self, term: int) -> bool:
        """Whether ``leader/<term>`` exists, i.e. the holder of ``term`` still keeps its lease alive.

        Raises StoreUnavailableError when etcd did not answer in ``timeout``.
        """
        self._check_open()
        try:
            kvs, _ = self.client.range(self.leader_key(term), timeout=self.timeout)
        except EtcdError as exc:
            raise StoreUnavailableError(f"reading {self.leader_key(term).decode()} failed: {exc}") from None
        return bool(kvs)

    def close(self) -> None:
        """Forget the handle; later calls raise StoreUnavailableError. Idempotent; never blocks.

        The lease is not revoked: a holder that stops without releasing keeps ``leader/<term>`` until the TTL
        runs out, as a crashed one would (a clean stand-down releases through :meth:`renew`).
        """
        self._closed = True

    # ---------------------------------------------------------------------------------------- helpers

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailableError(f"{self!r} is closed")

    def _left(self, deadline: float, what: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise StoreUnavailableError(f"{what} failed: no time left of its {self.timeout:.3g} s")
        return left

    def _snapshot(self, deadline: float, leader: bytes | None = None) -> _Snapshot:
        """``term``, ``heartbeat`` (and a leader key) read at one revision. Raises EtcdError."""
        ops = [op_range(self._term_key), op_range(self._heartbeat_key)]
        if leader is not None:
            ops.append(op_range(leader))
        left = deadline - time.monotonic()
        if left <= 0:
            raise EtcdUnavailableError("no time left for the read")
        result = self.client.txn([], ops, timeout=left)
        if len(result.ranges) != len(ops):
            raise EtcdError(f"etcd answered {len(result.ranges)} ranges for {len(ops)} reads")
        firsts = [r[0] if r else None for r in result.ranges]
        self._seen_revision = max(self._seen_revision, result.revision)
        return _Snapshot(firsts[0], firsts[1], firsts[2] if leader is not None else None, result.revision)

    def _decode(self, kv: KeyValue | None, decode: Callable[[bytes, str], _T], slot: str) -> tuple[_T | None, str]:
        if kv is None:
            return None, ""
        try:
            return decode(kv.value, self.cluster), ""
        except CorruptRecordError as exc:
            return None, f"etcd key {kv.key.decode('utf-8', 'replace')}: {exc}"

    def _current_term(self, snap: _Snapshot, expected: int, what: str) -> tuple[int, str]:
        """The current term and holder for an acquire; raises for a foreign record."""
        for kv in (snap.term, snap.heartbeat):
            if kv is None:
                continue
            try:
                decode_heartbeat(kv.value, self.cluster) if kv is snap.heartbeat else decode_term(
                    kv.value, self.cluster
                )
            except ForeignRecordError as exc:
                raise CorruptRecordError(
                    f"{what} refused: etcd key {kv.key.decode()}: {exc}; another cluster's record is never taken over"
                ) from None
            except CorruptRecordError:
                pass
        tm, _ = self._decode(snap.term, decode_term, "term")
        hb, _ = self._decode(snap.heartbeat, decode_heartbeat, "heartbeat")
        readable = [r for r in (tm, hb) if r is not None]
        if readable:
            best = max(readable, key=lambda r: r.term)
            return best.term, best.holder
        if snap.term is None and snap.heartbeat is None:
            return 0, ""
        log.warning(
            "%s: neither the term nor the heartbeat key is readable; accepting the expected term %d", what, expected
        )
        return expected, "?"

    def _term_of(self, kv: KeyValue | None) -> tuple[int, str]:
        tm, _ = self._decode(kv, decode_term, "term")
        return (tm.term, tm.holder) if tm is not None else (0 if kv is None else -1, "?")

    def _check_renew(self, snap: _Snapshot, record: HeartbeatRecord, what: str, deadline: float) -> int:
        """Raise unless ``record.holder`` holds ``record.term``; return the seq to add one to."""
        if snap.term is None:
            if snap.heartbeat is None:
                raise LostTermError(f"{what} refused: there is no heartbeat record")
            raise LostTermError(f"{what} refused: no term was ever won (the term key is missing)")
        try:
            won = decode_term(snap.term.value, self.cluster)
        except ForeignRecordError as exc:
            raise CorruptRecordError(f"{what} refused: the term key: {exc}; it is never overwritten") from None
        except CorruptRecordError as exc:
            raise CorruptRecordError(
                f"{what} refused: the term key: {exc}; a term that cannot be verified is never renewed"
            ) from None
        if won.term > record.term:
            self._drop_lease(record.term, deadline)
            raise LostTermError(f"{what} refused: term {won.term} was won by {won.holder!r}")
        if won.term < record.term:
            raise LostTermError(f"{what} refused: term {record.term} was never won (the current term is {won.term})")
        if won.holder != record.holder:
            raise LostTermError(f"{what} refused: term {won.term} was won by {won.holder!r}")
        hb, problem = self._decode(snap.heartbeat, decode_heartbeat, "heartbeat")
        if hb is None:
            if problem:
                if "record of cluster" in problem:
                    raise CorruptRecordError(f"{what} refused: {problem}; it is never overwritten")
                log.warning("%s: repairing %s", what, problem)
            return record.seq
        if (hb.term, hb.holder) == (record.term, record.holder):
            return hb.seq
        if hb.term > record.term:
            raise LostTermError(f"{what} refused: the heartbeat holds term {hb.term} (held by {hb.holder!r})")
        return record.seq

    def _leader_value(self, record: HeartbeatRecord) -> bytes:
        return json.dumps(
            {"cluster": self.cluster, "holder": record.holder, "term": record.term}, separators=(",", ":")
        ).encode()

    def _live_lease(self, term: int, what: str, deadline: float) -> int:
        """A live lease for ``term``: this handle's, kept alive, or a new one. Raises StoreUnavailableError."""
        with self._lock:
            held = self._lease
        try:
            if held is not None and held[1] == term:
                if self.client.lease_keepalive(held[0], timeout=self._left(deadline, what)) > 0:
                    return held[0]
                log.warning(
                    "%s: the lease of term %d had expired (no keep-alive for its TTL); granting a new one", what, term
                )
            lease, _ = self.client.lease_grant(self.lease_ttl, timeout=self._left(deadline, what))
        except EtcdError as exc:
            raise StoreUnavailableError(f"{what} failed: lease keep-alive: {exc}") from None
        self._adopt_lease(lease, term, deadline)
        return lease

    def _adopt_lease(self, lease: int, term: int, deadline: float) -> None:
        with self._lock:
            old, self._lease = self._lease, (lease, term)
        if old is not None and old[0] != lease:
            self._revoke_quietly(old[0], deadline)

    def _forget_lease(self, term: int) -> None:
        with self._lock:
            if self._lease is not None and self._lease[1] == term:
                self._lease = None

    def _drop_lease(self, term: int, deadline: float) -> None:
        """The term is lost: revoke this handle's lease of it (best effort)."""
        with self._lock:
            held = self._lease
            if held is None or held[1] > term:
                return
            self._lease = None
        self._revoke_quietly(held[0], deadline)

    def _revoke_quietly(self, lease: int, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        with contextlib.suppress(EtcdError):
            self.client.lease_revoke(lease, timeout=left)

    def _lease_holds(self, key: bytes, lease: int, deadline: float) -> bool:
        """Whether ``key`` exists on ``lease`` (a write whose answer was lost did land). False when unknown."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            kvs, _ = self.client.range(key, timeout=left)
        except EtcdError:
            return False
        return bool(kvs) and kvs[0].lease == lease

    def _landed(self, data: bytes, deadline: float) -> bool:
        """Whether the heartbeat now holds exactly ``data`` (a renew whose answer was lost did land)."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            kvs, _ = self.client.range(self._heartbeat_key, timeout=left)
        except EtcdError:
            return False
        return bool(kvs) and kvs[0].value == data

    def _renewed(self, new: HeartbeatRecord, released: bool, deadline: float) -> HeartbeatRecord:
        if released:
            self._drop_lease(new.term, deadline)
        return new
