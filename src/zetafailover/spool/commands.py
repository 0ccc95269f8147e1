"""Command-line subcommands for the spool: ``send``, ``jobs``, ``job``, ``cancel``, ``received``.

Each handler returns an exit code: 0 on success, 2 for a user error (printed as one line
``zetafailover: error: …`` on stderr, no traceback), 1 when the spool itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from zetafailover.config import load_config
from zetafailover.errors import ValidationError, ZetafailoverError
from zetafailover.spool.directory import DirectorySpool
from zetafailover.spool.jobs import JobState, JobStateError, SubmitOptions
from zetafailover.spool.workload import spool_dir_of

__all__ = ["register", "spool_dir_for"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the spool subcommands to the ``zetafailover`` command's subparsers."""

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", required=True, metavar="FILE", help="the node's TOML config file")
        return p

    p = add("send", "queue a TIFF-F document for sending; prints the job id")
    p.add_argument("file", metavar="FILE", help="the TIFF Class F document")
    p.add_argument("--to", required=True, metavar="NUMBER", help="destination number")
    p.add_argument("--max-attempts", type=int, default=3, help="tries before the job fails (default 3)")
    p.set_defaults(func=cmd_send)

    p = add("jobs", "list outbound jobs")
    p.add_argument("--state", choices=[s.value for s in JobState], help="only jobs in this state")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_jobs)

    p = add("job", "show one job and its history")
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_job)

    p = add("cancel", "cancel a job that has not ended")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=cmd_cancel)

    p = add("received", "list received faxes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_received)


def spool_dir_for(config_file: str) -> Path:
    """The spool folder a config names: ``[spool] path``, else ``<file store folder>/spool``."""
    config = load_config(config_file)
    folder = spool_dir_of(config)
    if folder is not None:
        return folder
    raise ValidationError(f"{config.source}: spool.path: required when the store is not a folder ({config.store_url})")


def _open(args: argparse.Namespace) -> DirectorySpool:
    config = load_config(args.config)
    return DirectorySpool(spool_dir_for(args.config), node=config.node)


def _fail(message: str, code: int = 2) -> int:
    print(f"zetafailover: error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        return int(body(args))
    except (ValidationError, JobStateError) as exc:
        return _fail(str(exc))
    except (ZetafailoverError, OSError) as exc:
        return _fail(str(exc), 1)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def cmd_send(args: argparse.Namespace) -> int:
    """``zetafailover send FILE --to NUMBER``: prints the job id once the job is durable."""

    def body(a: argparse.Namespace) -> int:
        job_id = _open(a).submit(Path(a.file), a.to, SubmitOptions(max_attempts=a.max_attempts))
        print(job_id)
        return 0

    return _run(args, body)


def cmd_jobs(args: argparse.Namespace) -> int:
    """``zetafailover jobs [--state S] [--json]``."""

    def body(a: argparse.Namespace) -> int:
        jobs = _open(a).jobs(a.state)
        if a.json:
            print(json.dumps([j.to_json() for j in jobs], indent=2))
            return 0
        for j in jobs:
            progress = f"{j.pages_confirmed}/{j.pages}"
            print(f"{j.id}  {j.state:<10} {j.number:<20} pages {progress:<7} tries {j.attempts}  {j.reason}".rstrip())
        return 0

    return _run(args, body)


def cmd_job(args: argparse.Namespace) -> int:
    """``zetafailover job ID``: the job and every transition (who, term, when, why)."""

    def body(a: argparse.Namespace) -> int:
        spool = _open(a)
        job = spool.get(a.id)
        history = spool.history(a.id)
        if a.json:
            out = job.to_json()
            out["history"] = [
                {"seq": h.seq, "state": h.state, "term": h.term, "node": h.node, "at": h.at, "why": h.why}
                for h in history
            ]
            print(json.dumps(out, indent=2))
            return 0
        print(f"{job.id}  {job.state}  to {job.number}  pages {job.pages_confirmed}/{job.pages}")
        for h in history:
            print(f"  {_when(h.at)}  {h.state:<10} term {h.term:<4} {h.node:<12} {h.why}")
        return 0

    return _run(args, body)


def cmd_cancel(args: argparse.Namespace) -> int:
    """``zetafailover cancel ID``."""

    def body(a: argparse.Namespace) -> int:
        job = _open(a).cancel(a.id)
        print(f"{job.id} {job.state}")
        return 0

    return _run(args, body)


def cmd_received(args: argparse.Namespace) -> int:
    """``zetafailover received [--json]``."""

    def body(a: argparse.Namespace) -> int:
        faxes = _open(a).received()
        if a.json:
            print(json.dumps([f.to_json() for f in faxes], indent=2))
            return 0
        for f in faxes:
            print(f"{f.id}  {f.state:<9} from {f.caller or '?':<16} on {f.device:<10} pages {f.pages}  {f.folder}")
        return 0

    return _run(args, body)
