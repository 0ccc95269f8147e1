"""Audits: pure functions over a finished run's evidence, each returning its violations (empty: it held).

The evidence is what a run leaves behind: each node's event log (``term_won``, ``transition``, ``fence``…
with ``mono`` times), each device's log (``start``, ``dial``, ``page``, ``answered``… with the ``term`` they
happened under), the exchange's call and page logs, the spool's jobs, histories and received faxes, and the
nemesis's history. On Linux every one of these carries the same monotonic clock, so times compare directly.

=========================  ==========================================================================
audit                      holds when
=========================  ==========================================================================
:func:`audit_single_actor`  no dial, answer, page, device start (or takeover step) happened under a term
                           after a higher term was won; no term was won twice; nothing acted under a
                           term its node never won; every exchange page was carried by the newest holder
:func:`audit_jobs_terminal`  every accepted job exists and reached exactly one terminal state, and
                           nothing happened to it after that
:func:`audit_duplicates`   a page was sent twice only when the first copy was in flight on a node that
                           died (SIGKILL, or killed by the fence) — never in a planned switchover
:func:`audit_inbound`      every inbound page the caller saw confirmed is stored in the spool
:func:`audit_inbound_closed`  every reception ended: no inbound fax left ``receiving`` once the calls are over
:func:`audit_takeover_time`  after every kill of the active, another node became active within the bound
=========================  ==========================================================================

Each audit is a pure function (it reads its arguments, nothing else) and never raises for bad evidence: what
it cannot make sense of is a violation. :func:`collect_events` / :func:`collect_device_logs` gather the logs
of a :class:`~zetafailover.testing.processes.NodeProcesses` run; :func:`deaths_from` turns nemesis kills and
confirmed fences into the deaths :func:`audit_duplicates` accepts as excuses.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from zetafailover.errors import ValidationError
from zetafailover.spool import t4
from zetafailover.spool.jobs import TERMINAL, HistoryEntry, Inbound, InboundState, Job, UnknownJobError
from zetafailover.spool.tiff import validate_tiff_bytes
from zetafailover.testing.exchange.remote import SendResult
from zetafailover.testing.processes import NodeProcesses

__all__ = [
    "ACTION_EVENTS",
    "TAKEOVER_STEPS",
    "JobEvidence",
    "audit_duplicates",
    "audit_inbound",
    "audit_inbound_closed",
    "audit_jobs_terminal",
    "audit_single_actor",
    "audit_takeover_time",
    "collect_device_logs",
    "collect_events",
    "deaths_from",
]

Entry = Mapping[str, Any]
"""One line of an event log or a device log."""

ACTION_EVENTS = frozenset({"start", "dial", "connected", "page", "answered", "received_page"})
"""Device-log events that are side effects of an active node (``stop``, ``hangup``, ``open`` are not)."""

TAKEOVER_STEPS = frozenset({"devices_online", "lines_switched", "spool_recovered"})
"""Event-log events in which a node acts under its term (after winning it and fencing)."""

_SAME_INSTANT = 1e-6
"""Times closer than this are the same instant (a simulated clock's float steps)."""

_FENCE_EXCUSES = frozenset({"vacant", "released", "self"})
"""Fence methods that killed nobody."""


class JobEvidence(Protocol):
    """What :func:`audit_jobs_terminal` reads: a :class:`~zetafailover.spool.directory.DirectorySpool` has it."""

    def jobs(self) -> list[Job]: ...

    def history(self, job_id: str) -> list[HistoryEntry]: ...


# ---------------------------------------------------------------------------------------------- helpers


def _num(entry: Entry, key: str) -> float | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _wins(events_by_node: Mapping[str, Sequence[Entry]], violations: list[str]) -> list[tuple[int, float, str]]:
    """Every ``term_won`` as ``(term, mono, node)``, sorted by time; reports a term won twice."""
    wins: list[tuple[int, float, str]] = []
    for node, events in events_by_node.items():
        for e in events:
            if e.get("kind") != "term_won":
                continue
            term, mono = _num(e, "term"), _num(e, "mono")
            if term is None or mono is None:
                violations.append(f"{node}: unreadable term_won event {dict(e)!r}")
                continue
            wins.append((int(term), mono, node))
    by_term: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for term, mono, node in wins:
        by_term[term].append((mono, node))
    for term, winners in sorted(by_term.items()):
        if len(winners) > 1:
            who = ", ".join(f"{n} at {m:.3f}" for m, n in sorted(winners))
            violations.append(f"term {term} was won {len(winners)} times ({who}): the compare-and-swap failed")
    return sorted(wins, key=lambda w: (w[1], w[0]))


def _first_higher_win(wins: Sequence[tuple[int, float, str]], term: int) -> tuple[int, float, str] | None:
    later = [w for w in wins if w[0] > term]
    return min(later, key=lambda w: w[1]) if later else None


def _holder_at(wins: Sequence[tuple[int, float, str]], at: float) -> tuple[int, float, str] | None:
    """The win of the highest term won at or before ``at``."""
    before = [w for w in wins if w[1] <= at]
    return max(before, key=lambda w: w[0]) if before else None


def collect_events(nodes: NodeProcesses, names: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each node's event log (``folder/state/NAME/events.jsonl``), by node name (all started nodes by default)."""
    return {name: nodes.events(name) for name in (names if names is not None else sorted(nodes.procs))}


def collect_device_logs(nodes: NodeProcesses, names: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each node's device log (``folder/NAME-device.jsonl``), by node name (all started nodes by default)."""
    return {name: nodes.device_log(name) for name in (names if names is not None else sorted(nodes.procs))}


def deaths_from(
    events_by_node: Mapping[str, Sequence[Entry]], kills: Iterable[tuple[str, float]] = ()
) -> list[tuple[str, float]]:
    """Every ``(node, mono)`` at which a node process — or one of its fax workers — died: the given ``kills``
    (e.g. ``Nemesis.kills()``), every confirmed fence that killed the previous holder (at the fence event's time,
    by which it had died), and every ``worker_died`` event (a dispatcher worker that died mid-call: the page it
    was recording when it died had been confirmed by the receiver but not recorded, so it is sent again).
    """
    deaths = list(kills)
    for node, events in events_by_node.items():
        deaths += [(node, mono) for e in events if e.get("kind") == "worker_died" and (mono := _num(e, "mono"))]
    previous: dict[int, str] = {}
    for events in events_by_node.values():
        for e in events:
            if e.get("kind") == "term_won" and _num(e, "term") is not None:
                previous[int(e["term"])] = str(e.get("previous", ""))
    for events in events_by_node.values():
        for e in events:
            if e.get("kind") != "fence" or e.get("confirmed") is not True or e.get("method") in _FENCE_EXCUSES:
                continue
            term, mono = _num(e, "term"), _num(e, "mono")
            victim = previous.get(int(term)) if term is not None else None
            if victim and mono is not None:
                deaths.append((victim, mono))
    return sorted(deaths, key=lambda d: d[1])


# ------------------------------------------------------------------------------------------ single actor


def audit_single_actor(
    events_by_node: Mapping[str, Sequence[Entry]],
    device_logs_by_node: Mapping[str, Sequence[Entry]],
    *,
    exchange_pages: Sequence[Entry] = (),
    slack: float = 0.0,
) -> list[str]:
    """Never two nodes acting in the same period (invariants 2 and 3).

    Violations: a term won twice; a device action (:data:`ACTION_EVENTS`) or a takeover step
    (:data:`TAKEOVER_STEPS`) under term T later than ``slack`` seconds after a term above T was won; an action
    under a term its node never won (or under no term); an exchange page (``Exchange.pages()``) to or from a
    node's endpoint (labelled with the node's name) at a time when another node held the newest term won.
    """
    violations: list[str] = []
    wins = _wins(events_by_node, violations)
    won_by = {(node, term) for term, _mono, node in wins}

    def check(node: str, what: str, entry: Entry) -> None:
        term, mono = _num(entry, "term"), _num(entry, "mono")
        if term is None or mono is None:
            violations.append(f"{node}: {what} without a readable term and time: {dict(entry)!r}")
            return
        if term <= 0 or (node, int(term)) not in won_by:
            violations.append(f"{node}: {what} at {mono:.3f} under term {int(term)}, which {node} never won")
            return
        higher = _first_higher_win(wins, int(term))
        if higher is not None and mono > higher[1] + slack:
            violations.append(
                f"{node}: {what} at {mono:.3f} under term {int(term)}, {mono - higher[1]:.3f} s after "
                f"{higher[2]} won term {higher[0]} at {higher[1]:.3f}"
            )

    for node, entries in device_logs_by_node.items():
        for e in entries:
            if e.get("event") in ACTION_EVENTS:
                check(node, f"device {e.get('device', '?')} {e['event']}", e)
    for node, events in events_by_node.items():
        for e in events:
            if e.get("kind") in TAKEOVER_STEPS:
                check(node, str(e["kind"]), e)

    nodes = set(events_by_node)
    for page in exchange_pages:
        at = _num(page, "at")
        actors = [str(page.get(k)) for k in ("from_label", "to_label") if page.get(k) in nodes]
        if not actors:
            continue
        if at is None:
            violations.append(f"exchange page without a time: {dict(page)!r}")
            continue
        for actor in actors:
            holders = {_holder_at(wins, at - slack), _holder_at(wins, at)}
            if actor not in {h[2] for h in holders if h is not None}:
                latest = _holder_at(wins, at)
                who = f"{latest[2]} held term {latest[0]}" if latest else "no term had been won"
                violations.append(
                    f"exchange: page {page.get('index')} of call {page.get('call')} by {actor} at {at:.3f} while {who}"
                )
    return violations


# ------------------------------------------------------------------------------------------------- jobs


def audit_jobs_terminal(spool: JobEvidence, accepted: Iterable[str] = ()) -> list[str]:
    """Every accepted job in exactly one terminal state (run it after the queue has drained).

    Violations: a job in ``accepted`` (ids the submitters were given) missing from the spool; a job not in a
    terminal state; a job whose history reaches a terminal state more than once or changes after it.
    """
    violations: list[str] = []
    jobs = {job.id: job for job in spool.jobs()}
    for job_id in accepted:
        if job_id not in jobs:
            violations.append(f"job {job_id} was accepted but is not in the spool")
    for job_id, job in sorted(jobs.items()):
        if not job.terminal:
            violations.append(f"job {job_id} is {job.state} (attempt {job.attempts}, term {job.term}), not terminal")
        try:
            history = spool.history(job_id)
        except UnknownJobError as exc:
            violations.append(f"job {job_id}: no history: {exc}")
            continue
        ends = [i for i, h in enumerate(history) if h.state in TERMINAL]
        if len(ends) > 1:
            states = ", ".join(f"{history[i].state} (term {history[i].term})" for i in ends)
            violations.append(f"job {job_id} reached {len(ends)} terminal states: {states}")
        if ends and ends[0] != len(history) - 1:
            after = ", ".join(h.state for h in history[ends[0] + 1 :])
            violations.append(f"job {job_id} changed after it was {history[ends[0]].state}: {after}")
        if ends and history[-1].state != str(job.state):
            violations.append(f"job {job_id}: its snapshot says {job.state}, its history ends {history[-1].state}")
    return violations


# ------------------------------------------------------------------------------------------- duplicates


def audit_duplicates(
    device_logs_by_node: Mapping[str, Sequence[Entry]],
    *,
    planned: bool,
    deaths: Iterable[tuple[str, float]] = (),
) -> list[str]:
    """Duplicate pages only for pages in flight on a node that died; none at all for planned switchovers.

    A page is a device-log ``page`` entry (``job``, ``page``, ``mono``). For each page sent more than once,
    every copy after the first must follow a copy that was the last page of that job its node sent before
    it died, the death (from ``deaths``: ``(node, mono)``, see :func:`deaths_from`) falling between the two
    copies. With ``planned=True`` (a run with switchovers but no deaths) any duplicate is a violation.
    """
    violations: list[str] = []
    died: dict[str, list[float]] = defaultdict(list)
    for victim, died_at in deaths:
        died[victim].append(died_at)
    copies: dict[tuple[str, int], list[tuple[float, str]]] = defaultdict(list)
    sent_by: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for node, entries in device_logs_by_node.items():
        for e in entries:
            if e.get("event") != "page":
                continue
            mono, page = _num(e, "mono"), _num(e, "page")
            if mono is None or page is None or not e.get("job"):
                violations.append(f"{node}: unreadable page entry {dict(e)!r}")
                continue
            copies[(str(e["job"]), int(page))].append((mono, node))
            sent_by[(node, str(e["job"]))].append((mono, int(page)))
    for (job, page), sent in sorted(copies.items()):
        if len(sent) < 2:
            continue
        sent.sort()
        where = ", ".join(f"{n} at {m:.3f}" for m, n in sent)
        if planned:
            violations.append(f"job {job} page {page} sent {len(sent)} times in a planned run ({where})")
            continue
        for (m0, n0), (m1, _n1) in itertools.pairwise(sent):
            death = next((d for d in sorted(died.get(n0, ())) if m0 <= d <= m1), None)
            if death is None:
                violations.append(f"job {job} page {page} sent again ({where}) though {n0} did not die after its copy")
                continue
            last = max((p for m, p in sent_by[(n0, job)] if m <= death), default=None)
            if last != page:
                violations.append(
                    f"job {job} page {page} sent again ({where}): not the page in flight on {n0} when it died "
                    f"(that was page {last})"
                )
    return violations


# ---------------------------------------------------------------------------------------------- inbound


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _image_key(data: bytes, source: str) -> str | None:
    """A digest of the decoded image of a one-page MH TIFF-F (the same picture gives the same key however the
    file around it was written), or None when ``data`` is not such a page."""
    try:
        info = validate_tiff_bytes(data, source, widths=(1728, 2048, 2432))
        if info.page_count != 1 or info.pages[0].coding != "MH":
            return None
        page = info.pages[0]
        rows: list[bytes] = []
        for offset, count in page.strips:
            rows.extend(t4.decode_page(data[offset : offset + count], page.width, fill_order=page.fill_order))
    except (ValidationError, ValueError):
        return None
    rows = rows[: page.length]
    if page.photometric == 1:
        rows = [bytes(b ^ 0xFF for b in r) for r in rows]
    digest = hashlib.sha256(f"{page.width}x{len(rows)}:".encode())
    for row in rows:
        digest.update(row)
    return "image:" + digest.hexdigest()


def audit_inbound(
    confirmed: Iterable[SendResult | Entry],
    received: Iterable[Inbound],
    *,
    nodes: Iterable[str] | None = None,
) -> list[str]:
    """Every inbound fax page the caller saw confirmed is in the spool (invariant 6, inbound side).

    ``confirmed`` holds the callers' :class:`~zetafailover.testing.exchange.SendResult` objects (their
    ``confirmed`` page indexes), or the exchange's page log entries (``sha256``; only those to a node's endpoint
    when ``nodes`` names the nodes' labels). ``received`` is ``spool.received()``. Pages are counted: a page
    confirmed twice must be stored twice. A caller's page is compared by its decoded image when it is a one-page
    MH TIFF-F (a modem re-encodes what it receives: the same picture in other bytes), else by its SHA-256; an
    exchange page log entry by the SHA-256 of the bytes carried (exact for ISDN cards; a modem's stored page
    never matches it, so audit a modem's inbound faxes with the callers' results).
    """
    violations: list[str] = []
    labels = set(nodes) if nodes is not None else None
    want: Counter[str] = Counter()
    where: dict[str, str] = {}
    for item in confirmed:
        if isinstance(item, SendResult):
            for index in item.confirmed:
                if not 0 <= index < len(item.pages):
                    violations.append(f"call {item.call}: confirmed page {index} of {len(item.pages)} pages")
                    continue
                page = item.pages[index]
                digest = _image_key(page, f"call {item.call} page {index}") or _sha(page)
                want[digest] += 1
                where.setdefault(digest, f"page {index} of call {item.call} to {item.number}")
        else:
            if labels is not None and item.get("to_label") not in labels:
                continue
            digest = str(item.get("sha256", ""))
            if not digest:
                violations.append(f"exchange page without sha256: {dict(item)!r}")
                continue
            want[digest] += 1
            where.setdefault(digest, f"page {item.get('index')} of call {item.get('call')} to {item.get('to_label')}")
    have: Counter[str] = Counter()
    for fax in received:
        for path in fax.page_files:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                violations.append(f"inbound fax {fax.id}: page file {path} unreadable: {exc}")
                continue
            have[_sha(data)] += 1
            image = _image_key(data, str(path))
            if image is not None:
                have[image] += 1
    for digest, count in sorted(want.items(), key=lambda kv: where[kv[0]]):
        if have[digest] < count:
            violations.append(
                f"{where[digest]} was confirmed to the caller {count}× but is stored {have[digest]}× in the spool"
            )
    return violations


def audit_inbound_closed(received: Iterable[Inbound]) -> list[str]:
    """No reception left open (invariant 6: a reception ends ``received`` or ``partial``, never in between).

    Run it after every call has ended and the cluster is steady: a node that stopped mid-call closes its
    receptions itself, and a takeover closes those of a node that died or hung (spool recovery marks them
    ``partial``). Violations: an inbound fax still ``receiving``, or one ``received`` without a page.
    """
    violations: list[str] = []
    for fax in received:
        if fax.state == InboundState.RECEIVING:
            violations.append(
                f"inbound fax {fax.id} from {fax.caller!r} on {fax.node}/{fax.device} (term {fax.term}) is still "
                f"receiving with {fax.pages} page(s): no node closed it"
            )
        elif fax.state == InboundState.RECEIVED and fax.pages == 0:
            violations.append(f"inbound fax {fax.id} is received with no page")
    return violations


# --------------------------------------------------------------------------------------------- takeover


def audit_takeover_time(
    events_by_node: Mapping[str, Sequence[Entry]],
    kills: Iterable[tuple[str, float]],
    bound: float,
) -> list[str]:
    """After every kill of the active node, another node became ACTIVE within ``bound`` seconds.

    ``kills`` are ``(node, mono)`` (``Nemesis.kills()``; add pauses longer than the timeout if you want them
    timed too). A kill of a node that was not ACTIVE or ACTIVATING at that moment (by its last ``transition``
    event before it) needs no takeover and is skipped.
    """
    violations: list[str] = []
    for victim, at in kills:
        before = [
            e
            for e in events_by_node.get(victim, ())
            if e.get("kind") == "transition" and (m := _num(e, "mono")) is not None and m <= at + _SAME_INSTANT
        ]
        if not before or before[-1].get("to_state") not in ("active", "activating"):
            continue
        takeovers = sorted(
            (m, node)
            for node, events in events_by_node.items()
            if node != victim
            for e in events
            if e.get("kind") == "transition"
            and e.get("to_state") == "active"
            and (m := _num(e, "mono")) is not None
            and m > at + _SAME_INSTANT
        )
        if not takeovers:
            violations.append(f"{victim} was killed at {at:.3f} while active and no other node became active")
            continue
        took, node = takeovers[0][0] - at, takeovers[0][1]
        if took > bound:
            violations.append(
                f"{node} took over {took:.3f} s after {victim} was killed at {at:.3f} (bound {bound:g} s)"
            )
    return violations
