"""Inline SVG charts: crisp in print, small in the PDF, no plotting library.

Every chart prints its numbers too (cell values, bar labels), so a greyscale print stays readable.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

FONT = "font-family='DejaVu Sans' font-size='10'"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#7f7f7f")


def _svg(width: float, height: float, body: list[str], title: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' viewBox='0 0 {width:.0f} "
            f"{height:.0f}' width='{width:.0f}' height='{height:.0f}' role='img' "
            f"aria-label='{escape(title)}'>" + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' {FONT} {extra}>"
            f"{escape(text)}</text>")


def _heat_colour(value: float, scale: float) -> str:
    """Red for harm raised, blue for harm lowered, white at zero."""
    t = 0.0 if scale == 0 else max(-1.0, min(1.0, value / scale))
    fade = int(255 * (1 - abs(t) * 0.75))
    return f"rgb(255,{fade},{fade})" if t >= 0 else f"rgb({fade},{fade},255)"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3g}"


def heatmap(behaviours: list[dict[str, Any]]) -> str:
    """Stage (rows) × behaviour (columns) of harm contributions (effect, sign-flipped for benefit
    behaviours so that red always means "made it worse")."""
    if not behaviours:
        return ""
    stages = [(s["stage_id"], s["stage_kind"]) for s in behaviours[0]["stages"]]
    cell_w, cell_h, left, top = 92.0, 22.0, 150.0, 34.0
    scale = max((abs(s["harm"]) for b in behaviours for s in b["stages"]), default=0.0)
    body = [_text(left + (j + 0.5) * cell_w, top - 8, b["name"][:16], "middle",
                  "font-weight='bold'") for j, b in enumerate(behaviours)]
    for i, (sid, kind) in enumerate(stages):
        body.append(_text(left - 6, top + (i + 0.68) * cell_h, f"{sid} ({kind})"[:26], "end"))
    for j, b in enumerate(behaviours):
        for i, s in enumerate(b["stages"]):
            x, y = left + j * cell_w, top + i * cell_h
            body.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{cell_w:.1f}' height='{cell_h:.1f}'"
                        f" fill='{_heat_colour(s['harm'], scale)}' stroke='#999'/>")
            body.append(_text(x + cell_w / 2, y + cell_h * 0.68, _fmt(s["harm"]), "middle"))
    height = top + len(stages) * cell_h + 8
    return _svg(left + len(behaviours) * cell_w + 10, height, body, "stage by behaviour heat map")


def bars(behaviour: dict[str, Any]) -> str:
    """Horizontal bars of each stage's effect (or share, when the threshold is on shares), with
    the policy threshold as a dashed line."""
    threshold = behaviour.get("threshold")
    metric = threshold["metric"] if threshold else "effect"
    values = [(s["stage_id"], s[metric] or 0.0) for s in behaviour["stages"]]
    limit = [abs(v) for _, v in values] + ([abs(threshold["value"])] if threshold else [])
    scale = max(limit + [1e-12])
    left, width, bar_h, top = 140.0, 300.0, 18.0, 22.0
    zero = left + width / 2

    def at(value: float) -> float:
        return zero + value / scale * width / 2

    body = [_text(left, 12, f"{behaviour['name']}: stage {metric}", extra="font-weight='bold'")]
    for i, (sid, value) in enumerate(values):
        y = top + i * (bar_h + 4)
        x0, x1 = sorted((zero, at(value)))
        colour = "#d62728" if value > 0 else "#1f77b4"
        body.append(_text(left - 6, y + bar_h * 0.72, sid[:22], "end"))
        body.append(f"<rect x='{x0:.1f}' y='{y:.1f}' width='{max(x1 - x0, 0.5):.1f}' "
                    f"height='{bar_h:.1f}' fill='{colour}'/>")
        body.append(_text(left + width + 6, y + bar_h * 0.72, _fmt(value)))
    bottom = top + len(values) * (bar_h + 4)
    body.append(f"<line x1='{zero:.1f}' y1='{top - 4:.1f}' x2='{zero:.1f}' y2='{bottom:.1f}' "
                "stroke='#333'/>")
    if threshold:
        x = at(threshold["value"])
        body.append(f"<line x1='{x:.1f}' y1='{top - 4:.1f}' x2='{x:.1f}' y2='{bottom:.1f}' "
                    "stroke='#000' stroke-dasharray='4 3' stroke-width='1.5'/>")
        body.append(_text(x, bottom + 12, f"threshold {threshold['comparator']} "
                          f"{threshold['value']:g} ({threshold['rule']})", "middle"))
    return _svg(left + width + 60, bottom + 18, body, f"{behaviour['name']} bars")


def _legend(names: list[str], x: float, y: float) -> list[str]:
    items = []
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        items.append(f"<rect x='{x:.1f}' y='{y + i * 14:.1f}' width='10' height='10' "
                     f"fill='{colour}'/>")
        items.append(_text(x + 14, y + i * 14 + 9, name[:24]))
    return items


def _y_axis(low: float, high: float, left: float, top: float, height: float) -> list[str]:
    items = [f"<line x1='{left}' y1='{top}' x2='{left}' y2='{top + height}' stroke='#333'/>"]
    for k in range(5):
        value = low + (high - low) * k / 4
        y = top + height - height * k / 4
        items.append(f"<line x1='{left}' y1='{y:.1f}' x2='{left + 4}' y2='{y:.1f}' stroke='#333'/>")
        items.append(_text(left - 4, y + 3, f"{value:.3g}", "end"))
    return items


def _plottable(value: float | None) -> bool:
    """A point the chart can place: NaN, ±Inf and missing values are left out."""
    return value is not None and math.isfinite(value)


def trend(title: str, labels: list[str], series: dict[str, list[float | None]]) -> str:
    """One line per series across versions; x labels are the version names."""
    points = [v for values in series.values() for v in values if _plottable(v)]
    if not points or not labels:
        return ""
    low, high = min(points + [0.0]), max(points + [0.0])
    high = high if high > low else low + 1.0
    left, top, width, height = 60.0, 22.0, 430.0, 150.0
    step = width / max(len(labels) - 1, 1)
    body = [_text(left, 12, title, extra="font-weight='bold'"),
            *_y_axis(low, high, left, top, height)]
    every = max(1, math.ceil(len(labels) / 15))
    for i, label in enumerate(labels):
        if (len(labels) - 1 - i) % every == 0:  # evenly spaced, the latest always shown
            x = left + i * step
            body.append(f"<text transform='translate({x:.1f},{top + height + 8:.1f}) "
                        f"rotate(40)' {FONT} font-size='8'>{escape(label.split('@')[-1][:14])}"
                        "</text>")
    zero = top + height - (0.0 - low) / (high - low) * height
    body.append(f"<line x1='{left}' y1='{zero:.1f}' x2='{left + width}' y2='{zero:.1f}' "
                "stroke='#888' stroke-dasharray='3 3'/>")
    for k, values in enumerate(series.values()):
        coords = [(left + i * step, top + height - (v - low) / (high - low) * height)
                  for i, v in enumerate(values) if _plottable(v)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        colour = PALETTE[k % len(PALETTE)]
        body.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.6'/>")
        body += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2' fill='{colour}'/>" for x, y in coords]
    body += _legend(list(series), left + width + 12, top)
    return _svg(left + width + 150, top + height + 60, body, title)
