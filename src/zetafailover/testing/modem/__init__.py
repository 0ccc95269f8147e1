"""Simulated fax modems on pseudo-terminals, attached to the simulated exchange (see ``docs/modem.md``).

* :class:`SimulatedModem` — one modem: a pty whose slave path a fax program opens, an analog endpoint on a line;
* :class:`ModemProcess` — modems in a process of their own, so that they outlive (and notice the death of) the
  node process that drives them, as hardware does.
"""

from zetafailover.testing.modem.process import ModemProcess, ModemSpec
from zetafailover.testing.modem.sim import ModemProfile, SimulatedModem

__all__ = ["ModemProcess", "ModemProfile", "ModemSpec", "SimulatedModem"]
