"""``zetafailover demo``: the failover story on a simulated telephone world, told while it runs, then audited.

Two real ``zetafailover run`` processes with different hardware — each a simulated Class 2.0 modem on one
Y-split analog line and an E1 PRI card behind a PBX that the ``pbx`` line strategy re-routes — share a
temporary folder. Fax traffic flows both ways (outbound jobs submitted to the shared spool at a steady rate,
inbound faxes from the exchange's simulated callers). A scenario (:data:`SCENARIOS`) breaks something, the
back-up takes over, the old primary comes back as a standby, a planned switchover hands the work back, and a
report computed from the spool, the exchange's logs and the nodes' event logs ends the run, with the audits of
:mod:`zetafailover.testing.audits`. Needs nothing but the package: no system package, no root.

Modules: :mod:`.world` (exchange, modems, nodes, traffic), :mod:`.story` (narrated steps), :mod:`.scenarios`
(the stories), :mod:`.report` (figures and audits).
"""

from __future__ import annotations

from typing import TextIO

from zetafailover.demo.catalog import SCENARIOS, ScenarioInfo, scenario_list

__all__ = ["SCENARIOS", "ScenarioInfo", "run_demo", "scenario_list"]


def run_demo(
    keep: bool = False,
    profile: str | None = None,
    scenario: str = "kill",
    quick: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run one scenario; returns the exit code: 0 every audit and check held, 1 one failed, 2 bad arguments.

    See :func:`zetafailover.demo.runner.run_demo` (imported here on first use, so that ``zetafailover --help``
    does not load the test harness).
    """
    from zetafailover.demo.runner import run_demo as run  # noqa: PLC0415 - the harness only when a demo runs

    return run(keep=keep, profile=profile, scenario=scenario, quick=quick, out=out)
