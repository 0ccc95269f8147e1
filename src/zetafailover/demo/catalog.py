"""The names of the demo's stories and what each shows; importable without the test harness (for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCENARIOS", "ScenarioInfo", "scenario_list"]


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    """One story: its name, a one-line summary and the terminator its nodes use."""

    name: str
    summary: str
    terminator: str


SCENARIOS: dict[str, ScenarioInfo] = {
    s.name: s
    for s in (
        ScenarioInfo("kill", "SIGKILL of the primary, takeover, restart as standby, switchover back", "pid"),
        ScenarioInfo(
            "pause",
            "SIGSTOP of the primary past the timeout, then SIGCONT: it finds itself fenced and stands down",
            "none",
        ),
        ScenarioInfo(
            "share-outage", "the shared folder fails for the primary: it fences itself, the back-up takes over", "pid"
        ),
        ScenarioInfo(
            "pbx-failure",
            "the PBX refuses the re-route: takeover anyway, an alarm, inbound fails until the PBX is fixed",
            "pid",
        ),
    )
}
"""Every story by name, in the order ``--list`` shows them (the stories themselves: :mod:`.scenarios`)."""


def scenario_list() -> str:
    """One line per scenario: its name and what it shows (for ``--list`` and ``--help``)."""
    return "\n".join(f"  {s.name:<13} {s.summary}" for s in SCENARIOS.values())
