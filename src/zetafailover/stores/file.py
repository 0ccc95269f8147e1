"""The default heartbeat store: a folder that every node of the cluster sees (local disk, NFS or SMB share).

Layout of the folder::

    terms/term-000000000007.json   one file per term ever won, named by the term (12 digits or more),
                                   holding the winner's first record; created exclusively, never rewritten;
                                   the newest 32 are kept
    heartbeat.json                 the holder's heartbeat (rewritten at every renew)
    members/<name>.json            every node's own member record
    switchover.json                the current manual switchover request
    .tmp-*, terms/.tmp-*           half-written temporary files of an interrupted write; ignored by readers

**No lock** (design note 0002). A term is won by *exclusive creation* of its term file: exactly one creator
succeeds, so exactly one contender wins each term, and nothing a paused or dead node holds can block the
others. ``heartbeat.json`` is then a plain atomic replace; a reader that finds a term file above the term of
``heartbeat.json`` returns the term file's record (the winner's first record), so a winner that has not
written its heartbeat yet — or died before it did — is visible, and fenced, as the holder, and a late write
by a paused old holder is ignored.

Every replace is :func:`~zetafailover._atomic.atomic_write` (temporary file, fsync, rename, fsync the folder),
so a reader sees the old or the new record and never a mix, even when the writer is killed mid-write. Files
are created ``0644`` and folders ``0755``: never world-writable (all nodes must therefore run under one
account). Readers open, read and close the file at every call (NFS close-to-open consistency), never look at
mtime or atime (invariant 1) and never follow a symbolic link.

**Caveat.** Exclusive creation is atomic on local file systems, on NFSv3 and later (``link(2)`` and the
exclusive ``CREATE``) and on SMB (``FILE_CREATE``). Directory listings, however, may be cached by NFS and SMB
clients (``acdirmin``/``acdirmax``, ``lookupcache``; the SMB directory cache): a node may see a new term file
only after that cache expires. The CAS stays exact (a stale listing only makes an ``acquire`` fail, never
win twice); what is delayed is a deposed holder noticing it lost. See ``docs/stores.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import math
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import unquote, urlsplit

from zetafailover._atomic import FILE_MODE, atomic_write, fsync_dir, read_regular_file
from zetafailover.clock import SystemClock
from zetafailover.errors import (
    CorruptRecordError,
    LostTermError,
    StoreUnavailableError,
    TermConflictError,
    ValidationError,
)
from zetafailover.interfaces import (
    Characteristic,
    Clock,
    HeartbeatRecord,
    MemberRecord,
    StoreRead,
    SwitchoverRequest,
)
from zetafailover.stores._codec import (
    MAX_RECORD_BYTES,
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

__all__ = ["FileHeartbeatStore", "ProblemLog", "term_file_name"]

log = logging.getLogger("zetafailover.store")

FOLDER_MODE = 0o755
HEARTBEAT_FILE = "heartbeat.json"
TERMS_DIR = "terms"
MEMBERS_DIR = "members"
SWITCHOVER_FILE = "switchover.json"
KEEP_TERM_FILES = 32
"""How many term files ``acquire`` keeps (the newest); older ones are pruned, best effort."""

_TERM_NAME = re.compile(r"term-(\d{12,19})\.json")
_TERM_AHEAD = "term file ahead"
_TERMS_LISTING = "terms/ listing"
_LINK_UNSUPPORTED = frozenset(
    code
    for code in (
        errno.EPERM,
        getattr(errno, "ENOTSUP", None),
        getattr(errno, "EOPNOTSUPP", None),
        errno.EMLINK,
        errno.ENOSYS,
    )
    if code is not None
)
"""``link(2)`` errors that mean "hard links are not supported here" (some SMB mounts, FAT): use O_EXCL."""

_T = TypeVar("_T")


def term_file_name(term: int) -> str:
    """``term-000000000007.json``: the name of the file that records who won ``term``."""
    return f"term-{term:012d}.json"


def _term_of(name: str) -> int | None:
    """The term a ``terms/`` entry name stands for, or None for anything that is not exactly a term file name."""
    match = _TERM_NAME.fullmatch(name)
    if match is None:
        return None
    term = int(match.group(1))
    return term if term_file_name(term) == name else None  # no extra leading zeros: one name per term


class ProblemLog:
    """Logs store problems without flooding: a repeat of the same problem on the same slot is logged at most
    once per ``interval`` seconds (monotonic clock), with the number of repeats it held back.

    Thread-safe; never blocks beyond the logging call itself.
    """

    def __init__(self, clock: Clock, logger: logging.Logger = log, interval: float = 60.0) -> None:
        self._clock = clock
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, float, int]] = {}

    def report(self, slot: str, problem: str, level: int = logging.WARNING) -> None:
        """Log ``problem`` for ``slot`` unless the same problem was logged less than ``interval`` ago."""
        now = self._clock.monotonic()
        with self._lock:
            prev = self._last.get(slot)
            if prev is not None and prev[0] == problem and now - prev[1] < self._interval:
                self._last[slot] = (prev[0], prev[1], prev[2] + 1)
                return
            held_back = prev[2] if prev is not None and prev[0] == problem else 0
            self._last[slot] = (problem, now, 0)
        suffix = f" (repeated {held_back} more times)" if held_back else ""
        self._logger.log(level, "%s%s", problem, suffix)

    def clear(self, slot: str, *, quiet: bool = False) -> None:
        """``slot`` is fine again: log the recovery once (unless ``quiet``) if a problem had been logged."""
        with self._lock:
            prev = self._last.pop(slot, None)
        if prev is not None and not quiet:
            self._logger.info("%s is readable again (after: %s)", slot, prev[0])


def describe_os_error(exc: OSError) -> str:
    """``"Read-only file system (EROFS)"``: the OS reason of ``exc`` in words and by name."""
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    return f"{reason} ({name})" if name else reason


@dataclass(frozen=True, slots=True)
class _Loaded(Generic[_T]):
    """The outcome of reading one record file.

    ``kind`` is ``ok``, ``missing``, ``corrupt`` (bad content), ``irregular`` (a symbolic link or something
    that is not a regular file: never followed, never overwritten by renew), ``foreign`` or ``ioerror``.
    """

    kind: str
    value: _T | None = None
    problem: str = ""

    @property
    def damaged(self) -> bool:
        """Exists but holds no usable record of this cluster for a reason other than I/O."""
        return self.kind in ("corrupt", "irregular", "foreign")


class FileHeartbeatStore:
    """The heartbeat, the terms, the members and the switchover request in a folder that all nodes share.

    Timing: every method does file I/O and may block as long as the file system does (on a hung share: until
    the caller's ``store_timeout`` gives up on it). Nothing waits for another node: there is no lock, so a
    paused, frozen or dead node can never block an ``acquire`` or a ``renew`` of another.

    Atomicity: ``acquire`` is a compare-and-swap won by exclusive creation of ``terms/term-<N>.json`` (exactly
    one of several contenders for a term succeeds); ``renew`` is a compare-and-swap on ``(term, holder)``
    checked against the term files, followed by an atomic, durable replace of ``heartbeat.json``. A renew
    that was already past its check when a newer term was won may still land once; readers ignore it (the
    higher term file wins) and that holder's next renew raises LostTermError. ``publish_member`` and
    ``put_switchover`` are idempotent; ``read*`` never change anything.

    Errors: a bad, torn, foreign or unreadable heartbeat is reported by :meth:`read` in ``StoreRead.problem``
    (no new evidence), never raised. A write that fails raises StoreUnavailableError naming the path and the OS
    reason (disk full, read-only file system, permission denied).

    ``lock_timeout`` is accepted (and checked) for compatibility with callers of the first version, which
    locked the folder; it is unused.
    """

    characteristics: frozenset[Characteristic] = frozenset(
        {Characteristic.ATOMIC_CAS, Characteristic.DURABLE, Characteristic.SHARED_FS, Characteristic.CROSS_HOST}
    )

    def __init__(
        self, folder: Path | str, cluster: str, *, lock_timeout: float = 2.0, clock: Clock | None = None
    ) -> None:
        self.folder = Path(folder)
        self.cluster = check_name(cluster, "cluster")
        if not isinstance(lock_timeout, int | float) or not math.isfinite(lock_timeout) or lock_timeout <= 0:
            raise ValidationError(f"lock_timeout must be a number of seconds greater than 0, not {lock_timeout!r}")
        self.lock_timeout = float(lock_timeout)  # unused: kept so that existing callers keep working
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._problems = ProblemLog(self._clock)
        self._closed = False
        self._verified: tuple[int, str] | None = None  # (term, holder) proven by a term file through this handle
        self._ensure_folder(self.folder)

    @classmethod
    def from_url(
        cls, url: str, cluster: str, *, lock_timeout: float = 2.0, clock: Clock | None = None
    ) -> FileHeartbeatStore:
        """Open the store named by ``file:///absolute/path`` (``file://localhost/…`` is accepted too)."""
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise ValidationError(f"store URL {url!r}: expected a file:///absolute/path URL")
        if parts.netloc not in ("", "localhost"):
            raise ValidationError(f"store URL {url!r}: a file URL must not name a host ({parts.netloc!r})")
        if parts.query or parts.fragment:
            raise ValidationError(f"store URL {url!r}: a file URL takes no query or fragment")
        path = unquote(parts.path)
        if not path.startswith("/") or "\x00" in path:
            raise ValidationError(f"store URL {url!r}: the path must be absolute (file:///srv/fax/ha)")
        return cls(Path(path), cluster, lock_timeout=lock_timeout, clock=clock)

    def __repr__(self) -> str:
        return f"FileHeartbeatStore({str(self.folder)!r}, cluster={self.cluster!r})"

    # ------------------------------------------------------------------------------------------- paths

    @property
    def heartbeat_path(self) -> Path:
        return self.folder / HEARTBEAT_FILE

    @property
    def terms_dir(self) -> Path:
        return self.folder / TERMS_DIR

    def term_path(self, term: int) -> Path:
        """``terms/term-<term>.json``: the file whose exclusive creation won ``term``."""
        return self.terms_dir / term_file_name(term)

    @property
    def members_dir(self) -> Path:
        return self.folder / MEMBERS_DIR

    @property
    def switchover_path(self) -> Path:
        return self.folder / SWITCHOVER_FILE

    # -------------------------------------------------------------------------------------- heartbeat

    def read(self) -> StoreRead:
        """The current heartbeat: ``StoreRead(record)``, ``StoreRead(None)`` for a new store, or
        ``StoreRead(None, problem=…)`` for a torn, corrupt, foreign or unreadable record (never raised).

        When the highest term file is above the term of ``heartbeat.json`` (or ``heartbeat.json`` is missing),
        the record of that term file is returned: its winner has not written its heartbeat yet, or died before
        it did, and must be seen (and fenced) as the holder; a late write of an old term by a paused former
        holder is thereby ignored. A term file that cannot be read (a half-written one on a share without hard
        links, a damaged one) is no new evidence. If ``terms/`` cannot be listed, ``heartbeat.json`` alone
        answers. Timing: one listing and one or two small reads; no lock, never waits for another node.
        """
        self._check_open()
        hb = self._load(self.heartbeat_path, decode_heartbeat)
        if hb.kind not in ("ok", "missing"):
            self._problems.report(HEARTBEAT_FILE, hb.problem)
            return StoreRead(None, problem=hb.problem)
        self._problems.clear(HEARTBEAT_FILE)
        try:
            terms = self._list_terms()
        except OSError as exc:
            self._problems.report(
                _TERMS_LISTING,
                f"cannot list {self.terms_dir}: {describe_os_error(exc)}; reading {HEARTBEAT_FILE} alone",
            )
            return StoreRead(hb.value)
        self._problems.clear(_TERMS_LISTING)
        highest = terms[-1] if terms else None
        if highest is None or (hb.value is not None and hb.value.term >= highest):
            self._problems.clear(_TERM_AHEAD, quiet=True)
            return StoreRead(hb.value)
        path = self.term_path(highest)
        won = self._load(path, decode_term)
        if won.value is None:
            problem = won.problem if won.kind != "missing" else f"{path}: removed while reading (a newer term won)"
            problem = f"term {highest} is won but its record is unreadable: {problem}"
            self._problems.report(_TERM_AHEAD, problem)
            return StoreRead(None, problem=problem)
        shown = f"term {hb.value.term}" if hb.value is not None else "nothing (it is missing)"
        self._problems.report(
            _TERM_AHEAD,
            f"{path}: term {highest} was won by {won.value.holder!r} but {self.heartbeat_path} shows {shown}",
            logging.INFO,
        )
        return StoreRead(won.value)

    def acquire(self, expected_term: int, record: HeartbeatRecord) -> HeartbeatRecord:
        """Win ``record.term`` (``== expected_term + 1``) by compare-and-swap: exclusive creation of its term file.

        The store's current term is the highest of the term files' numbers (by name) and the term of a readable
        ``heartbeat.json``; 0 for a new store. When there is no term file and ``heartbeat.json`` exists but
        cannot be read (damage, or a store of an older layout), the caller's ``expected_term`` is accepted — it
        has watched a full timeout without evidence — and a warning is logged. A record of another cluster is
        never taken over (:class:`~zetafailover.errors.CorruptRecordError`), and a file that could not be read
        for an I/O reason fails the acquire (StoreUnavailableError). If the current term is ``expected_term``,
        ``terms/term-<record.term>.json`` is created exclusively with ``record`` as content (written and
        fsynced first, then hard-linked into place; with ``O_EXCL`` where hard links are not supported); then
        ``heartbeat.json`` is replaced with ``record`` (``seq`` as given); then old term files and abandoned
        temporaries are cleaned up (best effort). Returns the stored record.

        Raises ValueError (:class:`~zetafailover.errors.ValidationError`) for a bad argument,
        :class:`~zetafailover.errors.TermConflictError` when the current term is not ``expected_term`` or
        another node created the term file first. If the term was won but ``heartbeat.json`` could not be
        written, StoreUnavailableError says so (the term file already shows the caller as the holder).
        Timing: one listing, two or three small reads, two durable writes; no lock, never waits for another node.
        """
        self._check_open()
        check_acquire_args(expected_term, record, self.cluster)
        term_bytes = encode_term(record)
        heartbeat_bytes = encode_heartbeat(record)
        what = f"acquire of term {record.term} by {record.holder!r}"
        try:
            terms = self._list_terms()
        except OSError as exc:
            raise StoreUnavailableError(
                f"{what} failed: cannot list {self.terms_dir}: {describe_os_error(exc)}"
            ) from exc
        hb = self._load(self.heartbeat_path, decode_heartbeat)
        self._refuse_foreign_or_unreadable(hb, what)
        current, holder = 0, ""
        if terms:
            current = terms[-1]
            won = self._load(self.term_path(current), decode_term)
            self._refuse_foreign_or_unreadable(won, what)
            holder = won.value.holder if won.value is not None else "?"
        if hb.value is not None and hb.value.term > current:
            current, holder = hb.value.term, hb.value.holder
        elif not terms and hb.damaged:
            current, holder = expected_term, "?"
            log.warning(
                "%s: there is no term file and %s; accepting the caller's expected term %d",
                what,
                hb.problem,
                expected_term,
            )
        if current != expected_term:
            raise TermConflictError(
                f"{what} refused: the current term is {current} (held by {holder!r}), not {expected_term}"
            )
        self._ensure_folder(self.terms_dir)
        path = self.term_path(record.term)
        try:
            self._create_exclusively(path, term_bytes)
        except FileExistsError:
            won = self._load(path, decode_term)
            by = f" ({won.value.holder!r})" if won.value is not None else ""
            raise TermConflictError(
                f"{what} refused: term {record.term} was won by another node{by} just now"
            ) from None
        except OSError as exc:
            raise StoreUnavailableError(f"{what} failed: cannot create {path}: {describe_os_error(exc)}") from exc
        self._verified = (record.term, record.holder)
        try:
            atomic_write(self.heartbeat_path, heartbeat_bytes)
        except OSError as exc:
            raise StoreUnavailableError(
                f"{what}: the term was won ({path}) but {self.heartbeat_path} could not be written: "
                f"{describe_os_error(exc)}; readers see the term file's record"
            ) from exc
        self._prune_term_files(record.term)
        self._sweep_abandoned_temporaries(record.term)
        return record

    def renew(self, record: HeartbeatRecord) -> HeartbeatRecord:
        """Rewrite the heartbeat with ``seq + 1``, only if ``record.holder`` still holds ``record.term``.

        Compare-and-swap on ``(term, holder)`` against the term files, without a lock:

        * a term file above ``record.term`` (or a ``heartbeat.json`` of a higher term) means the term was lost:
          :class:`~zetafailover.errors.LostTermError`; so does a term never won (no term file for it, none
          higher) unless this handle won it, in which case its term file vanished:
          :class:`~zetafailover.errors.CorruptRecordError` (tampering; never papered over);
        * the term file of ``record.term`` must name ``record.holder`` (checked once per handle, then
          remembered), else LostTermError; an unreadable one raises CorruptRecordError;
        * the new ``seq`` is the stored ``seq + 1`` when ``heartbeat.json`` holds this term and holder, else
          ``record.seq + 1``: a damaged or missing ``heartbeat.json`` is repaired, which hides nothing because
          the term lives in the term files. A ``heartbeat.json`` of another cluster, a symbolic link or
          anything but a regular file is never overwritten (CorruptRecordError).

        Every other field is taken from ``record``. Returns the stored record. A renew already past its check
        when another node wins a newer term may still land once (see the class docstring). Timing: one
        listing, one or two small reads, one durable write; no lock, never waits for another node.
        """
        self._check_open()
        check_cluster(record.cluster, self.cluster, "renew")
        what = f"renew of term {record.term} by {record.holder!r}"
        try:
            terms = self._list_terms()
        except OSError as exc:
            raise StoreUnavailableError(
                f"{what} failed: cannot list {self.terms_dir}: {describe_os_error(exc)}"
            ) from exc
        highest = terms[-1] if terms else None
        if highest is not None and highest > record.term:
            won = self._load(self.term_path(highest), decode_term)
            by = repr(won.value.holder) if won.value is not None else "another node"
            raise LostTermError(f"{what} refused: term {highest} was won by {by}")
        hb = self._load(self.heartbeat_path, decode_heartbeat)
        if hb.kind == "ioerror":
            raise StoreUnavailableError(f"{what} failed: {hb.problem}")
        if hb.kind in ("foreign", "irregular"):
            raise CorruptRecordError(f"{what} refused: {hb.problem}; such a file is never overwritten")
        if hb.value is not None and hb.value.term > record.term:
            raise LostTermError(f"{what} refused: the store holds term {hb.value.term} (held by {hb.value.holder!r})")
        mine = (record.term, record.holder)
        if highest != record.term:
            if self._verified == mine:
                raise CorruptRecordError(
                    f"{what} refused: {self.term_path(record.term)}, won through this handle, is gone and no "
                    "higher term exists (the folder was tampered with); the term cannot be verified"
                )
            shown = f"the highest is {highest}" if highest is not None else "there is none"
            raise LostTermError(f"{what} refused: term {record.term} was never won ({shown} in {self.terms_dir})")
        if self._verified != mine:
            self._verify_term_file(record, what)
        stored = hb.value
        base = stored.seq if stored is not None and (stored.term, stored.holder) == mine else record.seq
        new = dataclasses.replace(record, seq=base + 1)
        data = encode_heartbeat(new)
        if stored is None and hb.kind == "corrupt":
            log.warning("%s: repairing %s", what, hb.problem)
        self._write(self.heartbeat_path, data)
        return new

    # ---------------------------------------------------------------------------------------- members

    def publish_member(self, member: MemberRecord) -> None:
        """Replace ``members/<name>.json`` atomically. Idempotent; each node writes only its own file.

        Timing: one durable write (plus creating ``members/`` the first time).
        """
        self._check_open()
        check_cluster(member.cluster, self.cluster, "publish_member")
        check_name(member.name, "member name")
        data = encode_member(member)
        self._ensure_folder(self.members_dir)
        self._write(self.members_dir / f"{member.name}.json", data)

    def read_members(self) -> Sequence[MemberRecord]:
        """Every readable member record of this cluster, sorted by name.

        Unreadable, foreign, symlinked and badly named entries are skipped (and logged); temporary ``.tmp-*``
        files are ignored. Raises StoreUnavailableError only when ``members/`` itself cannot be listed.
        Timing: one listing and one small read per member.
        """
        self._check_open()
        try:
            with os.scandir(self.members_dir) as it:
                names = sorted(entry.name for entry in it)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailableError(f"cannot list {self.members_dir}: {describe_os_error(exc)}") from exc
        members: list[MemberRecord] = []
        for file_name in names:
            if file_name.startswith(".tmp-"):
                continue
            path = self.members_dir / file_name
            stem = file_name.removesuffix(".json")
            if stem == file_name or not is_valid_name(stem):
                self._problems.report(f"members/{file_name}", f"{path}: skipped: not a member file (<name>.json)")
                continue
            loaded = self._load(path, decode_member)
            if loaded.value is None:
                if loaded.kind != "missing":  # removed between listing and reading: not a problem
                    self._problems.report(f"members/{file_name}", f"{loaded.problem}; skipped")
                continue
            if loaded.value.name != stem:
                self._problems.report(
                    f"members/{file_name}", f"{path}: skipped: holds the record of member {loaded.value.name!r}"
                )
                continue
            members.append(loaded.value)
        return members

    # ------------------------------------------------------------------------------------- switchover

    def put_switchover(self, request: SwitchoverRequest) -> None:
        """Replace ``switchover.json`` atomically (last writer wins; safety rests on the term CAS). Idempotent.

        Timing: one durable write.
        """
        self._check_open()
        self._write(self.switchover_path, encode_switchover(request, self.cluster))

    def read_switchover(self) -> SwitchoverRequest | None:
        """The current switchover request, or None (also for an unreadable one, which is logged).

        Timing: one small read.
        """
        self._check_open()
        loaded = self._load(self.switchover_path, decode_switchover)
        if loaded.kind not in ("ok", "missing"):
            self._problems.report(SWITCHOVER_FILE, f"{loaded.problem}; ignoring the switchover request")
        return loaded.value

    def close(self) -> None:
        """Forget the handle; later calls raise StoreUnavailableError. Idempotent; never blocks."""
        self._closed = True

    # ---------------------------------------------------------------------------------------- helpers

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailableError(f"{self!r} is closed")

    def _load(self, path: Path, decode: Callable[[bytes, str], _T]) -> _Loaded[_T]:
        try:
            raw = read_regular_file(path, limit=MAX_RECORD_BYTES)
        except FileNotFoundError:
            return _Loaded("missing")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return _Loaded("irregular", problem=f"{path}: is a symbolic link (not followed)")
            if exc.errno == errno.EISDIR:
                return _Loaded("irregular", problem=f"{path}: is not a regular file")
            return _Loaded("ioerror", problem=f"{path}: cannot read: {describe_os_error(exc)}")
        except ValueError as exc:  # not a regular file, or too large
            kind = "irregular" if "not a regular file" in str(exc) else "corrupt"
            return _Loaded(kind, problem=f"{path}: {_strip_path(str(exc), path)}")
        try:
            return _Loaded("ok", decode(raw, self.cluster))
        except ForeignRecordError as exc:
            return _Loaded("foreign", problem=f"{path}: {exc}")
        except CorruptRecordError as exc:
            return _Loaded("corrupt", problem=f"{path}: {exc}")

    def _list_terms(self) -> list[int]:
        """The terms that have a term file, ascending; ``[]`` when ``terms/`` does not exist yet.

        Only names that are exactly ``term-<12 or more digits>.json`` count (by name: a term file whose content
        is damaged still burns its term); anything else in ``terms/`` is ignored. A symbolic link in place of
        ``terms/`` is not followed (OSError ELOOP or ENOTDIR). Raises OSError.
        """
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.terms_dir, flags)
        except FileNotFoundError:
            return []
        try:
            with os.scandir(fd) as it:
                found = [_term_of(entry.name) for entry in it]
        finally:
            os.close(fd)
        return sorted(term for term in found if term is not None)

    def _refuse_foreign_or_unreadable(self, loaded: _Loaded[HeartbeatRecord], what: str) -> None:
        if loaded.kind == "ioerror":
            raise StoreUnavailableError(f"{what} refused: {loaded.problem}")
        if loaded.kind == "foreign":
            raise CorruptRecordError(f"{what} refused: {loaded.problem}; another cluster's store is never taken over")

    def _verify_term_file(self, record: HeartbeatRecord, what: str) -> None:
        """Check that the term file of ``record.term`` names ``record.holder``; remember it for this handle."""
        path = self.term_path(record.term)
        won = self._load(path, decode_term)
        if won.kind == "ioerror":
            raise StoreUnavailableError(f"{what} failed: {won.problem}")
        if won.kind == "missing":  # pruned between the listing and the read: a newer term exists
            raise LostTermError(f"{what} refused: {path} is gone (a newer term was won)")
        if won.value is None:
            raise CorruptRecordError(f"{what} refused: {won.problem}; a term that cannot be verified is never renewed")
        if won.value.holder != record.holder:
            raise LostTermError(f"{what} refused: term {record.term} was won by {won.value.holder!r}")
        self._verified = (record.term, record.holder)

    def _create_exclusively(self, path: Path, data: bytes) -> None:
        """Create ``path`` with ``data`` only if it does not exist (FileExistsError otherwise), durably.

        Preferred: write and fsync a temporary file, then ``link(2)`` it to ``path`` — the name appears with its
        whole content at once. ``link`` is atomic and exclusive on local file systems and NFS; on NFS a lost
        reply to a ``link`` that did happen makes a retransmission fail with EEXIST, so an EEXIST is checked
        against the temporary's link count (2 = it was our link; open(2) and link(2) manual pages). Where hard
        links are not supported (some SMB mounts, FAT), ``O_CREAT | O_EXCL`` creates ``path`` and the content
        follows: a reader may briefly see a partial file (corrupt = no new evidence). Raises OSError.
        """
        folder = path.parent
        tmp = folder / f".tmp-{path.name}-{secrets.token_hex(4)}"
        try:
            _write_new_file(tmp, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                if os.lstat(tmp).st_nlink < 2:
                    raise
                log.info("%s: link(2) reported EEXIST but the link is ours (a retransmitted request)", path)
            except OSError as exc:
                if exc.errno not in _LINK_UNSUPPORTED:
                    raise
                log.debug("%s: hard links not supported (%s); creating with O_EXCL", folder, describe_os_error(exc))
                _write_new_file(path, data)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        fsync_dir(folder)

    def _prune_term_files(self, won: int) -> None:
        """Remove term files older than the newest :data:`KEEP_TERM_FILES`. Best effort (logged at debug level)."""
        try:
            terms = [term for term in self._list_terms() if term <= won]
            for term in terms[:-KEEP_TERM_FILES]:
                self.term_path(term).unlink(missing_ok=True)
        except OSError as exc:
            log.debug("cannot prune old term files in %s: %s", self.terms_dir, describe_os_error(exc))

    def _sweep_abandoned_temporaries(self, won: int) -> None:
        """Remove temporaries of ``heartbeat.json`` and of term files below ``won`` left by killed writers.

        Called by the winner of term ``won`` right after it wrote ``heartbeat.json``: a heartbeat temporary
        present now belongs to a writer that was killed, or to a deposed holder whose late renew is then
        refused (its rename fails) — both fine. Best effort (a failure is only logged at debug level).
        """
        try:
            with os.scandir(self.folder) as it:
                stale = [self.folder / e.name for e in it if e.name.startswith(f".tmp-{HEARTBEAT_FILE}-")]
            with os.scandir(self.terms_dir) as it:
                for entry in it:
                    name = entry.name.removeprefix(".tmp-").rpartition("-")[0]
                    term = _term_of(name) if entry.name.startswith(".tmp-") else None
                    if term is not None and term < won:
                        stale.append(self.terms_dir / entry.name)
            for path in stale:
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("cannot sweep temporaries in %s: %s", self.folder, describe_os_error(exc))

    def _write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot write {path}: {describe_os_error(exc)}") from exc

    @staticmethod
    def _ensure_folder(folder: Path) -> None:
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            try:
                folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
                os.chmod(folder, FOLDER_MODE)  # mkdir's mode is masked by the umask
            except OSError as exc:
                raise StoreUnavailableError(f"cannot create store folder {folder}: {describe_os_error(exc)}") from exc
            with contextlib.suppress(OSError):
                fsync_dir(folder.parent)  # make the new folder's name durable
            return
        except OSError as exc:
            raise StoreUnavailableError(f"cannot reach store folder {folder}: {describe_os_error(exc)}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise StoreUnavailableError(f"store folder {folder} exists but is not a folder")


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0644), write ``data``, fsync, close.

    Raises FileExistsError when ``path`` exists, OSError otherwise. If the file was created but could not be
    filled, it is removed again: nobody can have acted on a file that never held a whole record, and a term
    file left half-written would burn its term unreadably.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def _strip_path(message: str, path: Path) -> str:
    return message.removeprefix(f"{path} ").removeprefix(str(path)).strip() or message
