"""The analog fax modem driver (``driver = "modem"``): AT layer, Class 2.0 / Class 2 sessions, the FaxDevice.

* :mod:`.at` — :class:`AtChannel`: commands, result codes, DLE data, unsolicited RING;
* :mod:`.class2` — Class 2.0 and Class 2 send / receive;
* :mod:`.pages` — spool TIFF-F ↔ line data;
* :mod:`.driver` — :class:`ModemDevice`, the :class:`~zetafailover.interfaces.FaxDevice`.

See ``docs/modem.md``.
"""

from zetafailover.devices.modem.at import AtChannel, AtError, AtResponse, AtTimeout
from zetafailover.devices.modem.class2 import CLASS2, CLASS20, Dialect, SessionResult, Timeouts
from zetafailover.devices.modem.driver import ModemDevice

__all__ = [
    "CLASS2",
    "CLASS20",
    "AtChannel",
    "AtError",
    "AtResponse",
    "AtTimeout",
    "Dialect",
    "ModemDevice",
    "SessionResult",
    "Timeouts",
]
