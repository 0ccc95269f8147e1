"""The ``zetafailover`` command.

Exit codes: 0 success; 1 a runtime failure (the store could not be read…); 2 a usage or configuration error
(the message names the file, the key and the reason; no traceback); 3 refused (a switchover without a healthy
standby, a node whose timing differs from the cluster's); 4 timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from zetafailover.errors import (
    ConfigError,
    PluginError,
    SwitchoverRefusedError,
    TimingMismatchError,
    ValidationError,
    ZetafailoverError,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_TIMEOUT = 0, 1, 2, 3, 4

Handler = Callable[[argparse.Namespace], int]


def _err(message: str) -> None:
    print(f"zetafailover: error: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    """Run a node until SIGTERM or SIGINT, then stand down cleanly."""
    from zetafailover.assemble import build_node
    from zetafailover.config import load_config

    config = load_config(args.config)
    assembly = build_node(config)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        assembly.node.run(stop)
    finally:
        assembly.close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Show every node of the cluster as this observer sees it."""
    from zetafailover.admin import observe_cluster
    from zetafailover.assemble import open_store
    from zetafailover.clock import SystemClock
    from zetafailover.config import load_config

    config = load_config(args.config)
    clock = SystemClock()
    store = open_store(config, clock)
    try:
        window = args.watch if args.watch is not None else max(2.5 * config.timing.heartbeat_interval, 0.3)
        view = observe_cluster(store, config.cluster, config.timing, clock, window)
    finally:
        store.close()
    if args.json:
        print(json.dumps(view.as_dict(), indent=2, sort_keys=True))
        return EXIT_OK
    print(f"cluster {view.cluster}: term {view.term}, holder {view.holder or '-'} ({view.holder_state or 'none'})")
    if view.holder:
        age = (
            f"changed {view.holder_age_s:.1f} s ago"
            if view.holder_age_s is not None
            else (f"NO CHANGE seen in {view.window_s:.1f} s")
        )
        print(f"heartbeat: {age} (as this observer sees it)")
    print(f"{'NODE':<16} {'ROLE':<8} {'STATE':<24} {'TERM':>5} {'PRIO':>5} {'HEARTBEAT':<18} DEVICES")
    for n in view.nodes:
        beat = f"{n.heartbeat_age_s:.1f} s ago" if n.heartbeat_age_s is not None else "stale"
        devices = ", ".join(f"{d['name']}({d['driver']},{d['channels']}ch,{d['health']})" for d in n.devices) or "-"
        # A node whose record did not change during the window is down; its last state is only history.
        state = n.state if n.alive else f"down (last: {n.state})"
        state += "" if n.healthy else " UNHEALTHY"
        role = n.role if n.alive else "-"
        print(f"{n.name:<16} {role:<8} {state:<24} {n.term:>5} {n.priority:>5} {beat:<18} {devices}")
    for problem in view.problems:
        print(f"problem: {problem}")
    return EXIT_OK


def cmd_switchover(args: argparse.Namespace) -> int:
    """Hand the active role to another node (maintenance) and wait until it is done."""
    from zetafailover.admin import request_switchover
    from zetafailover.assemble import open_store
    from zetafailover.clock import SystemClock
    from zetafailover.config import load_config

    config = load_config(args.config)
    clock = SystemClock()
    store = open_store(config, clock)
    try:
        done = request_switchover(store, config.cluster, config.timing, clock, target=args.to or "", wait=args.wait)
    except TimeoutError as exc:
        _err(str(exc))
        return EXIT_TIMEOUT
    finally:
        store.close()
    print(f"switchover {done.id} done: {done.reason}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo: a failover story on the simulated telephone world, narrated, reported and audited."""
    from zetafailover.demo import run_demo, scenario_list

    if args.list:
        print(f"scenarios (zetafailover demo --scenario NAME):\n{scenario_list()}")
        return EXIT_OK
    return run_demo(keep=args.keep, profile=args.profile, scenario=args.scenario, quick=args.quick)


# --------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zetafailover", description="Automatic failover for fax servers.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="run a node until SIGTERM, then stand down cleanly")
    p.add_argument("--config", required=True, help="the node's TOML config file")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="show every node: role, term, heartbeat age, devices")
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--watch", type=float, default=None, metavar="S", help="observe for S seconds (default 2.5 heartbeat intervals)"
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("switchover", help="hand the active role to a standby (planned maintenance)")
    p.add_argument("--config", required=True)
    p.add_argument("--to", metavar="NODE", help="the standby to hand over to (default: the best one)")
    p.add_argument("--wait", type=float, default=None, metavar="S", help="give up after S seconds")
    p.set_defaults(func=cmd_switchover)

    p = sub.add_parser(
        "demo",
        help="run the failover demo on a simulated telephone world (see --list)",
        description="Two real nodes with modems and PRI cards, fax traffic both ways, a failure, the takeover, "
        "a switchover back and an audited report. Exit 0 when every audit held, 1 when one failed.",
        epilog=f"scenarios:\n{_demo_scenarios()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", default="kill", metavar="NAME", help="the story to run (default: kill)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--quick", action="store_true", help="shorter traffic phases (about half the time)")
    p.add_argument("--keep", action="store_true", help="keep the demo folder afterwards")
    p.add_argument("--profile", default=None, help="a timing profile instead of the demo's own 0.25 s / 2.5 s timing")
    p.set_defaults(func=cmd_demo)

    for register in _extensions():
        register(sub)
    return parser


def _demo_scenarios() -> str:
    from zetafailover.demo.catalog import scenario_list

    return scenario_list()


def _extensions() -> list[Callable[[Any], None]]:
    """Subcommands contributed by the spool and the plugin manager."""
    found: list[Callable[[Any], None]] = []
    with contextlib.suppress(ImportError):
        from zetafailover.spool.commands import register as spool_register

        found.append(spool_register)
    with contextlib.suppress(ImportError):
        from zetafailover.plugins import register_cli

        found.append(register_cli)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Handler = args.func
    try:
        return func(args)
    except (ConfigError, PluginError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except (SwitchoverRefusedError, TimingMismatchError) as exc:
        _err(str(exc))
        return EXIT_REFUSED
    except ValidationError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except ZetafailoverError as exc:
        _err(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
