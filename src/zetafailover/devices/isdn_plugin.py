"""The ``isdn`` driver (and the ``sim-analog`` test device) as a plugin.

``[[device]]`` keys for ``driver = "isdn"``:

* ``exchange`` — ``host:port`` of the simulated exchange's endpoint port (required);
* ``card`` — ``bri``, ``t1`` or ``e1`` (default ``e1``): the span type;
* ``lines`` — the exchange line of each span, one entry a span (required; 4 entries = a 4-span card);
* ``page_seconds`` (simulated transmission time a page, default 0), ``answer_timeout`` (30), ``page_timeout``
  (30), ``timeout`` (exchange round trips, 5), ``log`` (JSON-lines device log, relative to the config file).

``driver = "sim-analog"`` takes ``exchange``, ``line`` (one analog line) and the same timing keys and ``log``.
Both drivers answer only while started and only when the node's line strategy allows it
(:func:`zetafailover.lines.may_answer`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from zetafailover.plugins import hookimpl, section_error

if TYPE_CHECKING:
    from zetafailover.config import NodeConfig, SectionConfig
    from zetafailover.interfaces import Clock, FaxDevice

DRIVERS = ("isdn", "sim-analog")
_TIMING = {"page_seconds": 0.0, "answer_timeout": 30.0, "page_timeout": 30.0, "timeout": 5.0}
_KEYS = {"isdn": {"exchange", "card", "lines", "log", *_TIMING}, "sim-analog": {"exchange", "line", "log", *_TIMING}}


@hookimpl
def zetafailover_device_drivers() -> list[str]:
    return list(DRIVERS)


@hookimpl
def zetafailover_validate_config(config: NodeConfig) -> None:
    for section in config.devices:
        if section.kind in DRIVERS:
            _options(section)


@hookimpl
def zetafailover_make_device(section: SectionConfig, node: str, clock: Clock) -> FaxDevice | None:
    if section.kind not in DRIVERS:
        return None
    opts = _options(section)
    from zetafailover import lines  # noqa: PLC0415

    common: dict[str, Any] = {
        "clock": clock,
        "log_path": opts["log"],
        "page_seconds": opts["page_seconds"],
        "answer_timeout": opts["answer_timeout"],
        "page_timeout": opts["page_timeout"],
        "may_answer": lambda: lines.may_answer(node),
    }
    device: FaxDevice
    if section.kind == "isdn":
        from zetafailover.devices.isdn import IsdnCard, IsdnDevice  # noqa: PLC0415

        card = IsdnCard(
            section.name,
            [(opts["card"], line) for line in opts["lines"]],
            opts["exchange"],
            label=node,
            timeout=opts["timeout"],
        )
        device = IsdnDevice(section.name, node, card, **common)
    else:
        from zetafailover.testing.exchange.analog import SimAnalogDevice  # noqa: PLC0415

        device = SimAnalogDevice(section.name, node, opts["line"], opts["exchange"], **common)
    return device


def _options(section: SectionConfig) -> dict[str, Any]:
    opts = section.options
    known = _KEYS[section.kind]
    for key in opts:
        if key not in known:
            raise section_error(
                section, key, f"unknown key for the {section.kind!r} driver; known keys: {', '.join(sorted(known))}"
            )
    from zetafailover.testing.exchange.client import parse_address  # noqa: PLC0415

    exchange = opts.get("exchange")
    if not isinstance(exchange, str):
        raise section_error(
            section, "exchange", f"missing or not text: give the exchange as host:port, not {exchange!r}"
        )
    try:
        parse_address(exchange)
    except ValueError as exc:
        raise section_error(section, "exchange", str(exc)) from None
    out: dict[str, Any] = {"exchange": exchange}
    if section.kind == "isdn":
        card = opts.get("card", "e1")
        if card not in ("bri", "t1", "e1"):
            raise section_error(section, "card", f"must be bri, t1 or e1, not {card!r}")
        lines = opts.get("lines")
        if not isinstance(lines, list) or not 1 <= len(lines) <= 8 or not all(_line_name(x) for x in lines):
            raise section_error(
                section, "lines", f"must list the exchange line of each span (1 to 8 line names), not {lines!r}"
            )
        if len(set(lines)) != len(lines):
            raise section_error(section, "lines", f"names a line twice: {lines!r}")
        out.update(card=card, lines=list(lines))
    else:
        line = opts.get("line")
        if not _line_name(line):
            raise section_error(section, "line", f"must name the analog line on the exchange, not {line!r}")
        out["line"] = line
    for key, default in _TIMING.items():
        value = opts.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
            raise section_error(section, key, f"must be a number of seconds, not {value!r}")
        if value < 0 or (key != "page_seconds" and value == 0):
            raise section_error(
                section, key, f"must be {'zero or more' if key == 'page_seconds' else 'above 0'}, not {value}"
            )
        out[key] = float(value)
    log = opts.get("log")
    if log is not None and (not isinstance(log, str) or not log.strip() or "\x00" in log):
        raise section_error(section, "log", f"must be a file path, not {log!r}")
    out["log"] = section.path(log) if log is not None else None
    return out


def _line_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and not any(c.isspace() or c in "/,;" for c in value)
