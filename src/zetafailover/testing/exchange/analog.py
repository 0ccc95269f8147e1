"""A simulated analog fax device on an analog line of the exchange (``driver = "sim-analog"``).

It stands in for a fax modem without the AT command layer (the serial modem driver talks to simulated modems
on pseudo-terminals instead): one channel; off-hook when it answers or dials, on-hook when it hangs up; a
device that must not answer stays on-hook and lets the line ring. What matters for the Y-splitter tests is
exactly what a real modem does: a process that dies closes its connection and the exchange puts its port
on-hook (DTR dropped), while a paused process keeps its port — and the shared line — off-hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zetafailover.devices.isdn import ANALOG, IsdnCard, IsdnDevice
from zetafailover.interfaces import Clock

__all__ = ["SimAnalogDevice"]


class SimAnalogDevice(IsdnDevice):
    """A :class:`~zetafailover.interfaces.FaxDevice` with one analog port on ``line`` (same contract as
    :class:`~zetafailover.devices.isdn.IsdnDevice`)."""

    driver = "sim-analog"

    def __init__(
        self,
        name: str,
        node: str,
        line: str,
        address: str,
        *,
        clock: Clock | None = None,
        log_path: Path | None = None,
        **options: Any,
    ) -> None:
        card = IsdnCard(name, [(ANALOG, line)], address, label=node)
        super().__init__(name, node, card, clock=clock, log_path=log_path, **options)
