"""The analog fax modem driver (``driver = "modem"``) as a plugin.

``[[device]]`` keys for ``driver = "modem"``:

* ``port`` — the serial device (``/dev/ttyS0``, ``/dev/ttyUSB0``, a simulated modem's pty; required);
* ``class`` — ``"2.0"`` (default), ``"2"`` or ``"1"`` (Class 1: the host runs T.30, see ``class1``);
* ``speed`` — DTE speed in bit/s (default 19200; one of 9600 19200 38400 57600 115200);
* ``flow`` — ``xonxoff`` (default), ``rtscts`` or ``none``;
* ``init`` — extra AT commands sent after the class is selected (list of strings). Each must be one printable
  ``AT`` line; commands that dial, answer, go off-hook or turn on auto-answer are refused (the node alone
  decides when to answer a shared line);
* ``local_id`` — our fax id (TSI/CSI), at most 20 printable characters;
* ``rings`` — rings before answering (default 1);
* ``receive_bit_order`` — how received page data is read: ``"auto"`` (default: direct, and bit-reversed as well
  when direct does not decode cleanly), ``"direct"`` or ``"reversed"`` (many Class 2 modems deliver it reversed
  whatever ``+FBOR`` says);
* ``send_bit_order`` — ``"direct"`` (default) or ``"reversed"`` page data to a Class 2/2.0 modem (for modems that
  expect it reversed whatever ``+FBO`` says; Class 1 ignores it);
* ``command_timeout`` (5), ``dial_timeout`` (90), ``page_timeout`` (120), ``poll_interval`` (30) — seconds;
* ``log`` — JSON-lines device log, relative to the config file.

The device answers only while started and only when the node's line strategy allows it
(:func:`zetafailover.lines.may_answer`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from zetafailover.plugins import hookimpl, section_error

if TYPE_CHECKING:
    from zetafailover.config import NodeConfig, SectionConfig
    from zetafailover.interfaces import Clock, FaxDevice

DRIVER = "modem"
SPEEDS = (9600, 19200, 38400, 57600, 115200)
_TIMING = {"command_timeout": 5.0, "dial_timeout": 90.0, "page_timeout": 120.0, "poll_interval": 30.0}
_KEYS = {"port", "class", "speed", "flow", "init", "local_id", "rings", "log", "receive_bit_order", "send_bit_order",
         *_TIMING}  # fmt: skip


@hookimpl
def zetafailover_device_drivers() -> list[str]:
    return [DRIVER]


@hookimpl
def zetafailover_validate_config(config: NodeConfig) -> None:
    for section in config.devices:
        if section.kind == DRIVER:
            options(section)


@hookimpl
def zetafailover_make_device(section: SectionConfig, node: str, clock: Clock) -> FaxDevice | None:
    if section.kind != DRIVER:
        return None
    opts = options(section)
    from zetafailover import lines  # noqa: PLC0415
    from zetafailover.devices.modem.class2 import Timeouts  # noqa: PLC0415
    from zetafailover.devices.modem.driver import ModemDevice  # noqa: PLC0415

    timeouts = Timeouts(
        command=opts["command_timeout"],
        dial=opts["dial_timeout"],
        answer=opts["dial_timeout"],
        page=opts["page_timeout"],
        page_start=opts["page_timeout"],
    )
    return ModemDevice(
        section.name,
        node,
        opts["port"],
        modem_class=opts["class"],
        speed=opts["speed"],
        flow=opts["flow"],
        init=opts["init"],
        local_id=opts["local_id"],
        rings=opts["rings"],
        timeouts=timeouts,
        poll_interval=opts["poll_interval"],
        may_answer=lambda: lines.may_answer(node),
        clock=clock,
        log_path=opts["log"],
        receive_bit_order=opts["receive_bit_order"],
        send_bit_order=opts["send_bit_order"],
    )


def check_init_command(command: object) -> str:
    """One ``init`` entry: a safe AT line that neither dials, answers, goes off-hook nor enables auto-answer.

    Raises ValueError naming the command and the reason.
    """
    from zetafailover.devices.modem.at import AtError, check_command, split_commands  # noqa: PLC0415

    if not isinstance(command, str):
        raise ValueError(f"{command!r} is not text")
    try:
        check_command(command)
    except AtError as exc:
        raise ValueError(str(exc).replace("refusing to send", "refused")) from None
    for part in split_commands(command[2:]):
        up = part.upper().replace(" ", "")
        if up[:1] in ("D", "A") or up in ("H1", "O", "O0", "O1"):
            raise ValueError(f"{command!r}: {part!r} would dial, answer or go off-hook")
        if up.startswith("S0=") and up[3:].strip("0") != "":
            raise ValueError(f"{command!r}: {part!r} turns on auto-answer; the node decides when to answer")
        if up.startswith(("+FAA=", "+FAE=")) and up[5:].strip("0") != "":
            raise ValueError(f"{command!r}: {part!r} turns on adaptive answer")
        if up.startswith("&D") and up[2:] in ("0", ""):
            raise ValueError(f"{command!r}: {part!r} makes the modem ignore DTR (a dead host could block the line)")
    return command


def options(section: SectionConfig) -> dict[str, Any]:
    """The validated options of a ``modem`` device section (ConfigError naming file, key and reason)."""
    opts = section.options
    for key in opts:
        if key not in _KEYS:
            raise section_error(
                section, key, f"unknown key for the modem driver; known keys: {', '.join(sorted(_KEYS))}"
            )
    port = opts.get("port")
    if not isinstance(port, str) or not port.strip() or "\x00" in port:
        raise section_error(section, "port", f"missing or not a device path: {port!r}")
    out: dict[str, Any] = {"port": port}
    cls = opts.get("class", "2.0")
    if cls not in ("2.0", "2", "1"):
        raise section_error(section, "class", f'must be "2.0", "2" or "1" (a string), not {cls!r}')
    out["class"] = cls
    speed = opts.get("speed", 19200)
    if isinstance(speed, bool) or speed not in SPEEDS:
        raise section_error(section, "speed", f"must be one of {', '.join(map(str, SPEEDS))}, not {speed!r}")
    out["speed"] = int(speed)
    flow = opts.get("flow", "xonxoff")
    if flow not in ("xonxoff", "rtscts", "none"):
        raise section_error(section, "flow", f"must be xonxoff, rtscts or none, not {flow!r}")
    out["flow"] = flow
    init = opts.get("init", [])
    if isinstance(init, str):
        init = [init]
    if not isinstance(init, list) or len(init) > 20:
        raise section_error(section, "init", f"must be a list of AT commands (at most 20), not {init!r}")
    for i, command in enumerate(init):
        try:
            check_init_command(command)
        except ValueError as exc:
            raise section_error(section, f"init[{i}]", str(exc)) from None
    out["init"] = list(init)
    local_id = opts.get("local_id", "")
    if not isinstance(local_id, str) or len(local_id) > 20 or any(not (" " <= c <= "~") or c == '"' for c in local_id):
        raise section_error(
            section, "local_id", f"at most 20 printable ASCII characters without '\"', not {local_id!r}"
        )
    out["local_id"] = local_id
    rings = opts.get("rings", 1)
    if isinstance(rings, bool) or not isinstance(rings, int) or not 1 <= rings <= 20:
        raise section_error(section, "rings", f"must be a whole number 1..20, not {rings!r}")
    out["rings"] = rings
    from zetafailover.devices.modem.pages import BIT_ORDERS, SEND_BIT_ORDERS  # noqa: PLC0415

    for name, choices, fallback in (
        ("receive_bit_order", BIT_ORDERS, "auto"),
        ("send_bit_order", SEND_BIT_ORDERS, "direct"),
    ):
        order = opts.get(name, fallback)
        if not isinstance(order, str) or order not in choices:
            quoted = [f'"{c}"' for c in choices]
            allowed = f"{', '.join(quoted[:-1])} or {quoted[-1]}"
            raise section_error(section, name, f"must be {allowed} (default {fallback}), not {order!r}")
        out[name] = order
    for key, default in _TIMING.items():
        value = opts.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
            raise section_error(section, key, f"must be a number of seconds, not {value!r}")
        if value <= 0:
            raise section_error(section, key, f"must be above 0, not {value}")
        out[key] = float(value)
    log = opts.get("log")
    if log is not None and (not isinstance(log, str) or not log.strip() or "\x00" in log):
        raise section_error(section, "log", f"must be a file path, not {log!r}")
    out["log"] = section.path(log) if log is not None else None
    return out
