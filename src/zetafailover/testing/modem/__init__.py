"""Simulated fax modems on pseudo-terminals, attached to the simulated exchange (see ``docs/modem.md``).

* :class:`SimulatedModem` — one modem: a pty whose slave path a fax program opens, an analog endpoint on a line;
* :class:`ModemProcess` — modems in a process of their own, so that they outlive (and notice the death of) the
  node process that drives them, as hardware does;
* :class:`Class1Faults` — the Class 1 far-end faults a simulated modem can play (FTT, RTN, unanswered
  commands, a line dropped mid-page), for error-path tests.
"""

from zetafailover.testing.modem.process import ModemProcess, ModemSpec
from zetafailover.testing.modem.sim import Class1Faults, ModemProfile, SimulatedModem

__all__ = ["Class1Faults", "ModemProcess", "ModemProfile", "ModemSpec", "SimulatedModem"]
