"""The demo's final report: every figure computed from what the run left behind, then the audits.

Nothing here is assumed. Outbound faxes are counted from the spool (each accepted job's state) and found page
by page in the exchange's page log (what the remote machine confirmed); inbound faxes from the callers' own
results (which pages the server confirmed) and the spool's received faxes; takeover times from the nodes'
event logs (the same monotonic clock as this process on Linux); duplicated pages from the exchange's page log,
each with the reason it was sent twice. Then :mod:`zetafailover.testing.audits` runs over the same evidence.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zetafailover.devices.isdn import split_document
from zetafailover.errors import ValidationError
from zetafailover.spool import t4
from zetafailover.spool.tiff import page_strip, validate_tiff_bytes
from zetafailover.testing import audits
from zetafailover.testing.exchange import cause_text

__all__ = ["AUDITS", "Check", "DemoReport", "Fault", "build_report", "page_key"]

AUDITS = ("single_actor", "jobs_terminal", "duplicates", "inbound", "inbound_closed", "takeover_time")
"""The audits of :mod:`zetafailover.testing.audits` the report runs, in the order it prints them."""

IN_FLIGHT = 2.0
"""Seconds before a fault within which a page confirmed by the remote counts as "in flight" at that fault."""


@dataclass(frozen=True, slots=True)
class Fault:
    """Something the story did that moved the active role: a SIGKILL, a pause, a share outage, a switchover.

    ``victim`` is the node that was active when it happened, ``mono`` its monotonic time; ``planned`` is True
    for a switchover (no page may be sent twice then).
    """

    what: str
    victim: str
    mono: float
    planned: bool = False
    target: str = ""
    """For a switchover: the node that should become active."""


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation of the story (e.g. "no failback"), with what was observed."""

    what: str
    held: bool
    observed: str


@dataclass(slots=True)
class DemoReport:
    """The figures of one demo run and the audits' verdicts (``violations[name]`` empty: it held)."""

    scenario: str
    outbound: dict[str, Any] = field(default_factory=dict)
    inbound: dict[str, Any] = field(default_factory=dict)
    takeovers: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    """One line per outbound page the remote got twice, with the reason."""
    unexplained_duplicates: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    violations: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in AUDITS})
    bound: float = 0.0

    @property
    def ok(self) -> bool:
        """Every audit held, every check of the story held, nothing lost, no unexplained duplicate."""
        return (
            not any(self.violations.values())
            and all(c.held for c in self.checks)
            and self.outbound.get("lost", 1) == 0
            and self.inbound.get("lost_pages", 1) == 0
            and not self.unexplained_duplicates
        )

    def lines(self) -> list[str]:
        """The report as text lines (see docs/quick-start.md for a sample)."""
        o, i = self.outbound, self.inbound
        out = [f"report: scenario {self.scenario}"]
        out.append(
            f"  outbound   {o['accepted']} faxes accepted ({o['pages']} pages): {o['sent']} sent, "
            f"{o['failed']} failed, {o['open']} not finished, lost {o['lost']}"
        )
        out.append(
            f"             {o['delivered']} of {o['sent']} sent faxes found page by page in the exchange's page log"
        )
        if o["by_device"]:
            out.append(
                "             pages by device: " + ", ".join(f"{k} {v}" for k, v in sorted(o["by_device"].items()))
            )
        if o["resumed"]:
            out.append(
                f"             {o['resumed']} fax(es) re-queued by a takeover, resumed at their first unconfirmed page"
            )
        out.append(f"             duplicated pages: {len(self.duplicates) + len(self.unexplained_duplicates)}")
        out += [f"               - {line}" for line in self.duplicates]
        out += [f"               - UNEXPLAINED: {line}" for line in self.unexplained_duplicates]
        out.append(
            f"  inbound    {i['faxes']} faxes from the callers: {i['delivered']} delivered, {i['undelivered']} not "
            f"delivered; {i['calls']} calls, {i['failed_calls']} failed and redialled"
        )
        if i["causes"]:
            out.append("             failed calls: " + ", ".join(f"{n} × {c}" for c, n in i["causes"].most_common()))
        if i["answered"]:
            out.append("             answered by: " + ", ".join(f"{k} {v}" for k, v in sorted(i["answered"].items())))
        out.append(
            f"             {i['confirmed_pages']} pages confirmed to the callers, lost {i['lost_pages']} "
            f"(confirmed but not in the spool)"
        )
        if i["partial"]:
            out.append(
                f"             {i['partial']} call(s) cut mid-fax are kept in the spool as partial faxes; their "
                "callers redialled and sent the whole fax again"
            )
        for t in self.takeovers:
            out.append(f"  {'switchover' if t['planned'] else 'takeover':<10} {t['text']}")
        out.append(
            "  audits     " + " · ".join(f"{n} {'held' if not v else 'FAILED'}" for n, v in self.violations.items())
        )
        out.append(f"             (takeover_time bound {self.bound:g} s)")
        for name, found in self.violations.items():
            for line in found[:8]:
                out.append(f"    {name}: {line}")
            if len(found) > 8:
                out.append(f"    {name}: … {len(found) - 8} more")
        for check in self.checks:
            out.append(f"  {'check':<10} {check.what}: {'held' if check.held else 'FAILED'} ({check.observed})")
        out.append(f"  result     {'OK: every audit and check held' if self.ok else 'FAILED'}")
        return out


# -------------------------------------------------------------------------------------------- page keys


def _rows_key(data: bytes) -> str | None:
    try:
        info = validate_tiff_bytes(data, "<page>", widths=(1728, 2048, 2432))
        page = info.pages[0]
        rows = t4.decode_page(page_strip(data, page), page.width, rows=page.length, fill_order=page.fill_order)
    except (ValidationError, IndexError, ValueError):
        return None
    if page.photometric == 1:
        rows = [bytes(b ^ 0xFF for b in r) for r in rows]
    return "rows:" + hashlib.sha256(b"\n".join(rows)).hexdigest()


def page_key(data: bytes) -> str:
    """The SHA-256 of a single-page TIFF-F as it crossed the exchange (what the page log records)."""
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------- build


def _takeover_text(
    fault: Fault, events: Mapping[str, Sequence[Mapping[str, Any]]], t0: float
) -> tuple[dict[str, Any], float | None]:
    """Who became active after ``fault``, when, and how the old active was fenced."""
    later = sorted(
        (float(e["mono"]), node, e)
        for node, log in events.items()
        if node != fault.victim and (not fault.target or node == fault.target)
        for e in log
        if e.get("kind") == "transition" and e.get("to_state") == "active" and float(e.get("mono", 0)) > fault.mono
    )
    if not later:
        return {
            "planned": fault.planned,
            "text": f"{fault.what} at +{fault.mono - t0:.1f} s → no node became active",
        }, None
    at, node, entry = later[0]
    term = int(entry.get("term", 0))
    fence = next((e for e in events.get(node, ()) if e.get("kind") == "fence" and int(e.get("term", -1)) == term), None)
    how = ""
    if fence is not None and not fault.planned:
        how = f"; fence: {fence.get('method')}, {'confirmed' if fence.get('confirmed') else 'not confirmed'}"
        evidence = str(fence.get("evidence", ""))
        if evidence:
            how += f" ({evidence[:110]})"
    text = f"{fault.what} at +{fault.mono - t0:.1f} s → {node} active in term {term} after {at - fault.mono:.2f} s{how}"
    return {"planned": fault.planned, "text": text, "seconds": at - fault.mono, "node": node, "term": term}, at


def build_report(
    scenario: str,
    *,
    events: Mapping[str, Sequence[Mapping[str, Any]]],
    device_logs: Mapping[str, Sequence[Mapping[str, Any]]],
    exchange_pages: Sequence[Mapping[str, Any]],
    exchange_calls: Sequence[Mapping[str, Any]],
    remote_received: Sequence[Any],
    spool: Any,
    outbound: Mapping[str, Sequence[str]],
    inbound: Sequence[Any],
    faults: Sequence[Fault],
    kills: Sequence[tuple[str, float]],
    checks: Sequence[Check],
    bound: float,
    remote_number: str,
    pri_number: str,
    t0: float,
) -> DemoReport:
    """Compute every figure and run every audit.

    ``outbound`` maps each accepted job id to the SHA-256 of each of its pages (as split for sending);
    ``inbound`` holds the callers' faxes (``.pages``, ``.calls`` of ``SendResult``, ``.delivered``);
    ``remote_received`` is the remote machine's ``received`` list (to decode pages a modem re-framed).
    Pure apart from reading the spool; never raises for odd evidence (it shows up as a violation or a figure).
    """
    report = DemoReport(scenario, checks=list(checks), bound=bound)

    # ---- takeovers and switchovers
    ends: dict[int, float] = {}
    for k, fault in enumerate(faults):
        entry, at = _takeover_text(fault, events, t0)
        report.takeovers.append(entry)
        if at is not None:
            ends[k] = at

    # ---- outbound: the spool's states, then every page in the exchange's page log
    jobs = {}
    for job_id in outbound:
        try:
            jobs[job_id] = spool.get(job_id)
        except Exception:  # missing from the spool: lost, and jobs_terminal says so too
            jobs[job_id] = None
    states = Counter(str(j.state) if j is not None else "missing" for j in jobs.values())
    to_remote = [p for p in exchange_pages if p.get("called") == remote_number]
    received_bytes: dict[tuple[str, int], bytes] = {}
    for fax in remote_received:
        for index, data in enumerate(fax.pages):
            received_bytes[(fax.call, index)] = data
    wanted = {d for digests in outbound.values() for d in digests}
    copies: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for p in to_remote:
        key = str(p.get("sha256", ""))
        if key not in wanted:  # re-framed by a modem: compare the decoded image instead
            data = received_bytes.get((str(p.get("call")), int(p.get("index", -1))))
            key = (_rows_key(data) if data is not None else None) or key
        copies[key].append(p)
    delivered = 0
    page_of: dict[str, tuple[str, int]] = {}
    for job_id, digests in outbound.items():
        keys: list[str | None] = []
        for n, digest in enumerate(digests):
            found_key: str | None = digest if digest in copies else None
            if found_key is None and jobs.get(job_id) is not None:
                # the page may have been re-framed (a modem sent it): look for its decoded image
                found_key = _document_rows_key(spool, job_id, n)
            keys.append(found_key)
            if found_key is not None:
                page_of[found_key] = (job_id, n)
        job = jobs.get(job_id)
        if job is not None and str(job.state) == "sent" and all(k is not None and k in copies for k in keys):
            delivered += 1
    sent = states.get("sent", 0)
    failed = states.get("failed", 0) + states.get("cancelled", 0)
    open_jobs = sum(n for s, n in states.items() if s not in ("sent", "failed", "cancelled"))
    by_device: Counter[str] = Counter()
    for node, log in device_logs.items():
        for e in log:
            if e.get("event") == "page" and e.get("job"):
                by_device[f"{node} {e.get('device', '?')}"] += 1
    resumed = {
        job
        for log in events.values()
        for e in log
        if e.get("kind") == "spool_recovered"
        for job in e.get("requeued", [])
    }
    report.outbound = {
        "accepted": len(outbound),
        "pages": sum(len(d) for d in outbound.values()),
        "sent": sent,
        "failed": failed,
        "open": open_jobs,
        "delivered": delivered,
        "lost": len(outbound) - delivered - failed,
        "by_device": dict(by_device),
        "resumed": len(resumed & set(outbound)),
    }

    # ---- duplicated outbound pages, each with its reason
    for key, found in copies.items():
        if len(found) < 2 or key not in page_of:
            continue
        job_id, n = page_of[key]
        ordered = sorted(found, key=lambda p: float(p.get("at", 0.0)))
        for first, again in itertools.pairwise(ordered):
            f_at, a_at = float(first.get("at", 0.0)), float(again.get("at", 0.0))
            who = str(first.get("from_label", "?"))
            reason = None
            for k, fault in enumerate(faults):
                if fault.victim != who or fault.planned:
                    continue
                if fault.mono - IN_FLIGHT <= f_at <= ends.get(k, a_at) and fault.mono <= a_at:
                    reason = (
                        f"job {job_id} page {n + 1}: the remote confirmed it at +{f_at - t0:.2f} s, "
                        f"{'just before' if f_at <= fault.mono else 'during'} the {fault.what}; {who} never recorded "
                        f"that confirmation, so {again.get('from_label', '?')} resumed the fax at that page"
                    )
                    break
            line = reason or (
                f"job {job_id} page {n + 1}: sent by {who} at +{f_at - t0:.2f} s and again by "
                f"{again.get('from_label', '?')} at +{a_at - t0:.2f} s"
            )
            (report.duplicates if reason else report.unexplained_duplicates).append(line)

    # ---- inbound
    calls = [r for fax in inbound for r in fax.calls]
    causes: Counter[str] = Counter(cause_text(r.cause) for r in calls if not r.ok)
    received = spool.received()
    confirmed_pages = [r.pages[i] for r in calls for i in r.confirmed if 0 <= i < len(r.pages)]
    missing = _unstored(confirmed_pages, [Path(p) for fax in received for p in fax.page_files])
    answered: Counter[str] = Counter()
    for c in exchange_calls:
        if c.get("answered_label") in events and c.get("caller_line") == "callers":
            kind = "modem" if str(c.get("callee_line", "")).startswith("analog") else "pri"
            answered[f"{c['answered_label']} {kind}"] += 1
    report.inbound = {
        "faxes": len(inbound),
        "delivered": sum(1 for fax in inbound if fax.delivered),
        "undelivered": sum(1 for fax in inbound if not fax.delivered),
        "calls": len(calls),
        "failed_calls": sum(1 for r in calls if not r.ok),
        "causes": causes,
        "answered": dict(answered),
        "confirmed_pages": len(confirmed_pages),
        "lost_pages": missing,
        "partial": sum(1 for fax in received if str(fax.state) == "partial"),
    }

    # ---- the audits
    v = report.violations
    v["single_actor"] += audits.audit_single_actor(events, device_logs, exchange_pages=exchange_pages)
    v["jobs_terminal"] += audits.audit_jobs_terminal(spool, accepted=list(outbound))
    v["duplicates"] += audits.audit_duplicates(device_logs, planned=False, deaths=audits.deaths_from(events, kills))
    # byte for byte where the pages crossed unchanged (the PRI cards); the modem driver re-encodes what it
    # receives, so its pages were compared above as decoded images (``lost_pages``)
    v["inbound"] += audits.audit_inbound([r for r in calls if r.number == pri_number], received)
    v["inbound_closed"] += audits.audit_inbound_closed(received)
    v["takeover_time"] += audits.audit_takeover_time(
        events, [(f.victim, f.mono) for f in faults if not f.planned], bound
    )
    return report


def _unstored(confirmed: Sequence[bytes], stored: Sequence[Path]) -> int:
    """How many of the ``confirmed`` pages have no copy among the ``stored`` page files (each copy counts once).

    Pages are matched byte for byte first, then — for what is left, such as pages a modem re-encoded — by
    their decoded image.
    """
    have: Counter[str] = Counter()
    leftover: list[bytes] = []
    stored_bytes = []
    for path in stored:
        try:
            stored_bytes.append(path.read_bytes())
        except OSError:
            continue
    have.update(page_key(b) for b in stored_bytes)
    for page in confirmed:
        key = page_key(page)
        if have[key] > 0:
            have[key] -= 1
        else:
            leftover.append(page)
    if not leftover:
        return 0
    spare = {page_key(b): b for b in stored_bytes if have[page_key(b)] > 0}
    rows: Counter[str] = Counter()
    for key, data in spare.items():
        rk = _rows_key(data)
        if rk is not None:
            rows[rk] += have[key]
    lost = 0
    for page in leftover:
        rk = _rows_key(page)
        if rk is not None and rows[rk] > 0:
            rows[rk] -= 1
        else:
            lost += 1
    return lost


def _document_rows_key(spool: Any, job_id: str, index: int) -> str | None:
    try:
        data = spool.document_path(job_id).read_bytes()
        return _rows_key(split_document(data)[index])
    except (OSError, ValidationError, IndexError):
        return None
