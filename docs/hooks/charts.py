"""MkDocs hook: draw the takeover-time chart from ``docs/benchmarks/report.json`` while the site is built.

Registered in ``mkdocs.yml`` (``hooks: [docs/hooks/charts.py]``). At ``on_files`` it reads the report that
``benchmarks/run_all.py`` wrote and adds ``benchmarks/takeover-times.svg`` to the site as a *generated* file, so
the page that shows it (``benchmarks/results.md``, and ``benchmarks.md``) links to a file MkDocs knows: the strict
link check passes, and nothing is written into ``docs/``. The SVG is plain hand-written markup (no plotting
library): one panel per profile and store, each on its own time axis in seconds, with every sample as a dot, a
box from the 25th to the 75th percentile, the median, whiskers to min and max, the ``timeout`` (the floor every
heartbeat design pays) and the p99 target of the benchmark.

A missing report, or one without takeover samples, gives a chart that says so (the build stays clean before the
first benchmark run); a report that cannot be read is logged as a warning, which ``mkdocs build --strict``
turns into a failed build naming the file. Everything here is pure and fast (milliseconds for a few hundred
samples); ``takeover_svg`` is deterministic: the same report always gives the same bytes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

REPORT = "benchmarks/report.json"
CHART = "benchmarks/takeover-times.svg"

log = logging.getLogger("mkdocs.hooks.charts")

WIDTH = 760
PANEL_HEIGHT = 118
TOP = 46
LEFT = 40
RIGHT = 40
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the chart, drawn from the report in ``docs_dir``, to the site's files (replacing a stale copy)."""
    path = Path(config.docs_dir) / REPORT
    try:
        series = load_series(path)
    except ValueError as exc:
        log.warning("%s", exc)
        series = []
    existing = files.get_file_from_path(CHART)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, CHART, content=takeover_svg(series)))
    return files


def load_series(path: Path) -> list[dict[str, Any]]:
    """The ``takeover_samples`` of the report at ``path`` ([] when the file does not exist).

    Raises ``ValueError`` naming the file and what is wrong with it.
    """
    if not path.exists():
        return []
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the benchmark report: {exc}") from exc
    series = report.get("takeover_samples", []) if isinstance(report, dict) else None
    if not isinstance(series, list):
        raise ValueError(f"{path}: takeover_samples must be a list, not {type(series).__name__}")
    for i, item in enumerate(series):
        problem = _series_problem(item)
        if problem:
            raise ValueError(f"{path}: takeover_samples[{i}]: {problem}")
    return series


def _series_problem(item: Any) -> str:
    if not isinstance(item, dict):
        return f"must be an object, not {type(item).__name__}"
    for key in ("timeout", "target_p99_s", "heartbeat_interval"):
        value = item.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            return f"{key} must be a positive number, not {value!r}"
    samples = item.get("samples_s")
    if not isinstance(samples, list) or not all(
        isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) for s in samples
    ):
        return "samples_s must be a list of numbers"
    return ""


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks (as ``benchmarks/takeover.py``)."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("percentile of no samples")
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 × 10^k apart) covering ``[low, high]`` with about ``count`` ticks."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise ValueError(f"nice_ticks needs low < high, got {low!r}, {high!r}")
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.1f}"


def _text(x: float, y: float, text: str, *, size: int = 11, anchor: str = "start", fill: str = "#222") -> str:
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' fill='{fill}' {FONT}>"
        f"{escape(text)}</text>"
    )


def _panel(item: Mapping[str, Any], top: float) -> list[str]:
    samples = [float(s) for s in item["samples_s"]]
    timeout, target = float(item["timeout"]), float(item["target_p99_s"])
    title = (
        f"{item.get('store', 'file')} store · {item.get('profile', '?')} "
        f"(heartbeat {_fmt(float(item['heartbeat_interval']))} s, timeout {_fmt(timeout)} s) · {len(samples)} takeovers"
    )
    parts = [_text(LEFT, top + 12, title, size=12, fill="#111")]
    if not samples:
        return [*parts, _text(LEFT, top + 50, "no samples in this run", fill="#a00")]
    ticks = nice_ticks(min([*samples, timeout]), max([*samples, target]))
    lo, hi = ticks[0], ticks[-1]
    plot_w = WIDTH - LEFT - RIGHT

    def x(value: float) -> float:
        return LEFT + (value - lo) / (hi - lo) * plot_w

    axis_y, mid = top + 86, top + 52
    parts.append(f"<line x1='{LEFT}' y1='{axis_y}' x2='{WIDTH - RIGHT}' y2='{axis_y}' stroke='#444'/>")
    for tick in ticks:
        parts.append(f"<line x1='{x(tick):.1f}' y1='{axis_y}' x2='{x(tick):.1f}' y2='{axis_y + 4}' stroke='#444'/>")
        parts.append(f"<line x1='{x(tick):.1f}' y1='{top + 22}' x2='{x(tick):.1f}' y2='{axis_y}' stroke='#eee'/>")
        parts.append(_text(x(tick), axis_y + 15, f"{_fmt(tick)} s", size=10, anchor="middle", fill="#444"))
    q1, med, q3 = (percentile(samples, q) for q in (0.25, 0.5, 0.75))
    p99 = percentile(samples, 0.99)
    parts += [
        f"<line x1='{x(min(samples)):.1f}' y1='{mid}' x2='{x(max(samples)):.1f}' y2='{mid}' stroke='#555'/>",
        f"<line x1='{x(min(samples)):.1f}' y1='{mid - 8}' x2='{x(min(samples)):.1f}' y2='{mid + 8}' stroke='#555'/>",
        f"<line x1='{x(max(samples)):.1f}' y1='{mid - 8}' x2='{x(max(samples)):.1f}' y2='{mid + 8}' stroke='#555'/>",
        f"<rect x='{x(q1):.1f}' y='{mid - 14}' width='{max(x(q3) - x(q1), 1.0):.1f}' height='28' "
        "fill='#cfe0f5' stroke='#2a5d9f'/>",
        f"<line x1='{x(med):.1f}' y1='{mid - 14}' x2='{x(med):.1f}' y2='{mid + 14}' stroke='#2a5d9f' "
        "stroke-width='3'/>",
    ]
    for i, sample in enumerate(samples):
        jitter = ((i * 0.6180339887) % 1.0 - 0.5) * 22  # deterministic spread, so dots that coincide stay visible
        parts.append(
            f"<circle cx='{x(sample):.1f}' cy='{mid + jitter:.1f}' r='2.6' fill='#1b3f6b' fill-opacity='0.7'>"
            f"<title>{_fmt(sample)} s</title></circle>"
        )
    for value, colour, label, dy in (
        (timeout, "#777", f"timeout {_fmt(timeout)} s", 32),
        (target, "#c0392b", f"p99 target {_fmt(target)} s", 22),
    ):
        parts.append(
            f"<line x1='{x(value):.1f}' y1='{top + 18}' x2='{x(value):.1f}' y2='{axis_y}' stroke='{colour}' "
            "stroke-width='1.5' stroke-dasharray='5,3'/>"
        )
        anchor = "end" if x(value) > WIDTH - RIGHT - 120 else "start"
        parts.append(
            _text(x(value) + (-4 if anchor == "end" else 4), top + dy, label, size=10, anchor=anchor, fill=colour)
        )
    parts.append(
        _text(
            WIDTH - RIGHT,
            top + 12,
            f"p50 {_fmt(med)} s · p99 {_fmt(p99)} s · max {_fmt(max(samples))} s",
            size=11,
            anchor="end",
            fill="#2a5d9f",
        )
    )
    return parts


def takeover_svg(series: Sequence[Mapping[str, Any]]) -> str:
    """The chart as an SVG document: one panel per item of ``series`` (see :func:`load_series`)."""
    height = TOP + max(len(series), 1) * PANEL_HEIGHT + 24
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' role='img'>",
        "<title>Takeover time after SIGKILL of the active, per profile and store</title>",
        f"<rect width='{WIDTH}' height='{height}' fill='white'/>",
        _text(LEFT, 20, "Takeover time after SIGKILL of the active: kill → standby ACTIVE", size=14, fill="#111"),
        _text(
            LEFT,
            36,
            "dots: every takeover · box: 25th–75th percentile, bar: median · whiskers: min–max · each panel has "
            "its own axis",
            size=10,
            fill="#555",
        ),
    ]
    if not series:
        parts.append(
            _text(LEFT, TOP + 50, "No takeover samples yet: run python benchmarks/run_all.py", size=12, fill="#a00")
        )
    for index, item in enumerate(series):
        parts += _panel(item, TOP + index * PANEL_HEIGHT)
    parts.append(_text(WIDTH / 2, height - 6, "seconds from SIGKILL", size=11, anchor="middle", fill="#444"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
