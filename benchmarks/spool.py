"""Benchmark: durable submit → claim → complete throughput of the DirectorySpool against a SQLite queue
(WAL, synchronous=FULL) doing the same transitions (term check, state change, history row) on the same
disk in the same run, with each transition's latency (p50/p99); the cost of the file-system primitives on that
folder (what the machine's state makes an inode or a sync cost); and the recovery time after a takeover with a
big queue and some jobs in flight.

    python benchmarks/spool.py --jobs 400 --json
    python benchmarks/spool.py --jobs 400 --recovery-queued 100000 --recovery-inflight 100 --json

The 100,000 queued jobs for the recovery measurement are made with ``DirectorySpool._bulk_create_queued``,
a benchmark-only helper that skips fsync and hard-links one document (documented there); the recovery
itself is the real, durable ``recover``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.tiff import write_tiff


def make_document(path: Path, pages: int = 2) -> Path:
    row = bytes(100) + b"\xff" * 16 + bytes(100)
    rows = [row if i % 7 else bytes(216) for i in range(1100)]
    write_tiff(path, [rows] * pages)
    return path


class SqliteQueue:
    """The same queue as a SQLite database: one transaction per transition, term-checked inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()
        con = self.con()
        con.execute("pragma journal_mode=wal")
        con.executescript(
            """
            create table if not exists meta(k text primary key, v integer);
            insert or ignore into meta values('term', 1);
            create table if not exists jobs(id integer primary key, state text, number text, document blob,
                pages integer, pages_confirmed integer, due real, term integer, device text);
            create index if not exists jobs_due on jobs(state, due);
            create table if not exists history(job integer, state text, term integer, node text, at real, why text);
            """
        )

    def con(self) -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(self.local, "con", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, timeout=60, check_same_thread=False)
            c.execute("pragma synchronous=full")
            self.local.con = c
        return c

    def _tx(self, term: int | None, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        c = self.con()
        c.execute("begin immediate")
        try:
            if term is not None:
                (current,) = c.execute("select v from meta where k='term'").fetchone()
                if term < current:
                    raise RuntimeError("stale term")
            out = fn(c)
            c.execute("commit")
            return out
        except BaseException:
            c.execute("rollback")
            raise

    def submit(self, document: Path, number: str) -> int:
        data = document.read_bytes()

        def fn(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "insert into jobs(state, number, document, pages, pages_confirmed, due, term, device) "
                "values('queued', ?, ?, 2, 0, ?, 0, '')",
                (number, data, time.time()),
            )
            job = int(cur.lastrowid or 0)
            c.execute("insert into history values(?, 'queued', 0, 'bench', ?, 'submitted')", (job, time.time()))
            return job

        return int(self._tx(None, fn))

    def claim(self, term: int, device: str) -> int | None:
        def fn(c: sqlite3.Connection) -> int | None:
            row = c.execute(
                "select id from jobs where state in ('queued','retry_wait') and due <= ? order by due limit 1",
                (time.time(),),
            ).fetchone()
            if row is None:
                return None
            c.execute("update jobs set state='dialing', term=?, device=? where id=?", (term, device, row[0]))
            c.execute("insert into history values(?, 'dialing', ?, 'bench', ?, 'claimed')", (row[0], term, time.time()))
            return int(row[0])

        out: int | None = self._tx(term, fn)
        return out

    def complete(self, job: int, term: int) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute("update jobs set state='sent', pages_confirmed=pages where id=?", (job,))
            c.execute("insert into history values(?, 'sent', ?, 'bench', ?, 'sent')", (job, term, time.time()))

        self._tx(term, fn)


def run_loop(submit: Callable[[], object], claim: Callable[[], object], complete: Callable[[Any], object],
             jobs: int, workers: int, *, latencies: dict[str, list[float]] | None = None) -> float:  # fmt: skip
    """jobs/s for ``jobs`` submit → claim → complete cycles run by ``workers`` threads.

    With ``latencies``, each call's duration (seconds) is appended to ``latencies["submit"|"claim"|"complete"]``
    (a claim that found nothing and was repeated counts as one call, from its first try)."""
    lat = latencies if latencies is not None else {}
    for key in ("submit", "claim", "complete"):
        lat.setdefault(key, [])

    def one(_: int) -> None:
        t0 = time.perf_counter()
        submit()
        t1 = time.perf_counter()
        got = claim()
        while got is None:  # another worker took the job this one submitted; its own is about to appear
            got = claim()
        t2 = time.perf_counter()
        complete(got)
        t3 = time.perf_counter()
        lat["submit"].append(t1 - t0)
        lat["claim"].append(t2 - t1)
        lat["complete"].append(t3 - t2)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, range(jobs)))
    return jobs / (time.perf_counter() - start)


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    """p50 and p99 of ``samples`` (seconds) in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99)}


def file_system_costs(base: Path, n: int = 200) -> dict[str, float]:
    """Microseconds per primitive on the benchmark's folder, measured before the queues run: what the two
    designs pay for. Creating an inode (``mkdir``, a new file) is the spool's cost that SQLite never pays;
    on ext4 it varies by an order of magnitude with how many inodes were freed in the last minutes (the
    allocator skips recently deleted ones), so the figure says which state the machine was in."""
    work = base / "fs-costs"
    work.mkdir()
    blob = bytes(4096)
    out: dict[str, float] = {}

    def timed(name: str, fn: Callable[[int], object]) -> None:
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        out[name] = round((time.perf_counter() - t0) / n * 1e6, 1)

    timed("mkdir_us", lambda i: os.mkdir(work / f"d{i}"))
    timed("create_file_us", lambda i: os.close(os.open(work / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644)))
    fd = os.open(work / "prealloc", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.pwrite(fd, bytes(16 * 4096), 0)
        os.fsync(fd)

        def overwrite(i: int) -> None:
            os.pwrite(fd, blob, (i % 16) * 4096)
            os.fdatasync(fd)

        timed("overwrite_fdatasync_us", overwrite)
    finally:
        os.close(fd)
    dir_fd = os.open(work, os.O_RDONLY)
    try:

        def link(i: int) -> None:
            os.link(work / "prealloc", work / f"l{i}")
            os.fsync(dir_fd)

        timed("link_dir_fsync_us", link)
    finally:
        os.close(dir_fd)
    return out


Cycle = tuple[Callable[[], object], Callable[[], object], Callable[[Any], object]]
"""submit, claim (None when nothing is due) and complete of one queue handle."""


def cycle(kind: str, root: Path, doc: Path) -> Cycle:
    """The three transitions of the benchmark on a new handle of the ``directory`` spool (its term already 1) or
    the ``sqlite`` queue at ``root``."""
    if kind == "directory":
        spool = DirectorySpool(root, node="bench")
        return (
            lambda: spool.submit(doc, "+1 555 0100"),
            lambda: spool.claim(1, "m0"),
            lambda job: spool.complete(job.id, 1, ok=True),
        )
    q = SqliteQueue(root)
    return lambda: q.submit(doc, "+15550100"), lambda: q.claim(1, "m0"), lambda job: q.complete(job, 1)


def bench_throughput(base: Path, jobs: int, workers: int) -> dict[str, Any]:
    doc = make_document(base / f"doc-{workers}.tif")
    roots = {"directory": base / f"spool-{workers}", "sqlite": base / f"queue-{workers}.db"}
    DirectorySpool(roots["directory"], node="bench").advance_term(1)
    rates: dict[str, float] = {}
    latencies: dict[str, dict[str, list[float]]] = {}
    for kind, root in roots.items():
        latencies[kind] = {}
        rates[kind] = run_loop(*cycle(kind, root, doc), jobs, workers, latencies=latencies[kind])
    latency = {kind: {step: percentiles_ms(v) for step, v in lat.items()} for kind, lat in latencies.items()}
    return {"directory_jobs_per_s": round(rates["directory"], 1), "sqlite_jobs_per_s": round(rates["sqlite"], 1),
            "ratio": round(rates["directory"] / rates["sqlite"], 3), "latency": latency}  # fmt: skip


def _process_worker(kind: str, root: Path, doc: Path, jobs: int) -> None:
    """One worker process: ``jobs`` submit → claim → complete cycles on its own handle of the queue."""
    submit, claim, complete = cycle(kind, root, doc)
    for _ in range(jobs):
        submit()
        while (got := claim()) is None:
            pass
        complete(got)


def bench_processes(base: Path, jobs: int, workers: int) -> dict[str, float]:
    """The same cycles run by ``workers`` processes instead of threads (how submissions really arrive: every
    client is its own process). In one process each of the spool's many system calls hands the GIL to another
    thread; SQLite does a transaction in C with few hand-overs, so threads favour it."""
    doc = make_document(base / "doc-processes.tif")
    roots = {"directory": base / "spool-processes", "sqlite": base / "queue-processes.db"}
    DirectorySpool(roots["directory"], node="bench").advance_term(1)
    SqliteQueue(roots["sqlite"])
    ctx = multiprocessing.get_context("spawn")
    rates: dict[str, float] = {}
    for kind, root in roots.items():
        share = [jobs // workers + (1 if i < jobs % workers else 0) for i in range(workers)]
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            list(ex.map(_process_worker, [kind] * workers, [root] * workers, [doc] * workers, [1] * workers))
            start = time.perf_counter()
            list(ex.map(_process_worker, [kind] * workers, [root] * workers, [doc] * workers, share))
            rates[kind] = sum(share) / (time.perf_counter() - start)
    return {"directory_jobs_per_s": round(rates["directory"], 1), "sqlite_jobs_per_s": round(rates["sqlite"], 1),
            "ratio": round(rates["directory"] / rates["sqlite"], 3)}  # fmt: skip


def bench_lock(base: Path, n: int = 2000) -> float:
    """Microseconds per term-lock round (turnstile + shared lock + term read), the cost fencing adds."""
    spool = DirectorySpool(base / "spool-lock", node="bench")
    spool.advance_term(1)
    start = time.perf_counter()
    for _ in range(n):
        with spool._fenced(1, "bench"):
            pass
    return (time.perf_counter() - start) / n * 1e6


def bench_recovery(base: Path, queued: int, inflight: int) -> dict[str, float]:
    doc = make_document(base / "doc-r.tif", pages=3)
    spool = DirectorySpool(base / "spool-recovery", node="old")
    spool.advance_term(1)
    t0 = time.perf_counter()
    spool._bulk_create_queued(doc, "+15550100", queued + inflight)
    build = time.perf_counter() - t0
    for _ in range(inflight):
        job = spool.claim(1, "m0")
        assert job is not None
        spool.page_confirmed(job.id, 0, 1)
    new = DirectorySpool(base / "spool-recovery", node="new")
    new.advance_term(2)
    t0 = time.perf_counter()
    requeued = new.recover(2)
    took = time.perf_counter() - t0
    assert len(requeued) == inflight
    return {"queued": queued, "inflight": inflight, "recovery_ms": round(took * 1000, 1),
            "build_s": round(build, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=400)
    ap.add_argument(
        "--workers", type=int, default=4, help="concurrent submitters/senders: threads, then processes (default 4)"
    )
    ap.add_argument("--recovery-queued", type=int, default=0)
    ap.add_argument("--recovery-inflight", type=int, default=100)
    ap.add_argument("--dir", type=Path, default=None, help="where to put the spool (default: a temp folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="zf-bench-") as tmp:
        base = Path(tmp)
        result: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "folder": str(base),
            "jobs": args.jobs,
            "workers": args.workers,
        }
        result["file_system_us"] = file_system_costs(base)
        result.update(bench_throughput(base, args.jobs, args.workers))
        if args.workers != 1:
            result["single_worker"] = bench_throughput(base, args.jobs, 1)
            result["processes"] = bench_processes(base, args.jobs, args.workers)
        result["term_lock_us"] = round(bench_lock(base), 1)
        if args.recovery_queued:
            result["recovery"] = bench_recovery(base, args.recovery_queued, args.recovery_inflight)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
