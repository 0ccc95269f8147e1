"""The analog fax modem driver (``driver = "modem"``): AT layer, Class 2.0 / Class 2 sessions, the FaxDevice.

* :mod:`.at` — :class:`AtChannel`: commands, result codes, DLE data, unsolicited RING;
* :mod:`.class2` — Class 2.0 and Class 2 send / receive;
* :mod:`.class1` + :mod:`.t30` — Class 1: the host runs T.30 (HDLC frames, training, timers);
* :mod:`.pages` — spool TIFF-F ↔ line data;
* :mod:`.driver` — :class:`ModemDevice`, the :class:`~zetafailover.interfaces.FaxDevice`.

See ``docs/modem.md``.
"""

from zetafailover.devices.modem.at import AtChannel, AtError, AtResponse, AtTimeout
from zetafailover.devices.modem.class1 import CLASS1, Class1Link
from zetafailover.devices.modem.class2 import CLASS2, CLASS20, Dialect, SessionResult, Timeouts
from zetafailover.devices.modem.driver import ModemDevice
from zetafailover.devices.modem.t30 import T30Timers

__all__ = [
    "CLASS1",
    "CLASS2",
    "CLASS20",
    "AtChannel",
    "AtError",
    "AtResponse",
    "AtTimeout",
    "Class1Link",
    "Dialect",
    "ModemDevice",
    "SessionResult",
    "T30Timers",
    "Timeouts",
]
