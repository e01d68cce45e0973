"""The stage × behaviour heat map, written as SVG by hand (the report and the dashboard draw it
with this one function).

Each cell is a ``<g id="cell-i-j">`` holding a ``<rect>`` with a ``<title>`` (stage, behaviour,
value: a tooltip in a browser, a label for a screen reader), and the value printed in the cell up
to ``LABELLED_CELLS`` cells. Axis labels, axis titles, a colour legend with round ticks and alt
text (``role="img"``, ``aria-label``, ``<title>``) as the matplotlib charts have. The colours
are the Okabe–Ito vermillion (the stage made the behaviour worse) and blue (better) of the other
charts, through white at zero; a cell that is not a number is grey and says "n/a".

matplotlib drew a 10 × 100 map as 1,000 patch artists in about a second; this writes the same
map as text in milliseconds, so the dashboard's version page costs what its queries cost.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

HARM_UP, HARM_DOWN, MISSING = "#D55E00", "#0072B2", "#DDDDDD"
FONT = "DejaVu Sans, sans-serif"
CHAR_PT = 4.5  # width of one 8-pt DejaVu Sans character
# the heat map prints each cell's value up to this many cells; a larger grid's cells are too
# narrow for a number (the table beside every heat map carries the values)
LABELLED_CELLS = 120
MAX_WIDTH_PT = 475.0  # 6.6 in: the report's text width
CELL_HEIGHT_PT, MAX_CELL_WIDTH_PT, MIN_CELL_WIDTH_PT = 19.0, 58.0, 3.0
LEGEND_PT = 78.0
LEGEND_STEPS = 24


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "±Inf"
    return f"{value:.3g}"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i:i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02X}" for x, y in zip(ca, cb))


def colour(value: float | None, scale: float) -> str:
    """Blue (−scale) → white (0) → vermillion (+scale), linear in RGB; grey when not finite."""
    if not _finite(value):
        return MISSING
    t = min(max(value / scale, -1.0), 1.0)
    return _mix("#FFFFFF", HARM_UP, t) if t >= 0 else _mix("#FFFFFF", HARM_DOWN, -t)


def nice_ticks(scale: float) -> list[float]:
    """Round ticks from −scale to +scale (steps of 1, 2, 2.5 or 5 × 10^k; 0 always a tick)."""
    raw = scale / 2
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = int(math.floor(scale / step + 1e-9))
    return [k * step for k in range(-count, count + 1)]


def _text(x: float, y: float, body: str, *, size: float = 8, anchor: str = "start",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" text-anchor="{anchor}"'
            f'{extra}>{escape(body)}</text>')


def heatmap(behaviours: list[dict[str, Any]]) -> str:
    """Stage (rows) × behaviour (columns) of harm contributions (effect, sign-flipped for benefit
    behaviours so that vermillion always means "made it worse")."""
    if not behaviours:
        return ""
    stages = [f"{s['stage_id']} ({s['stage_kind']})" for s in behaviours[0]["stages"]]
    names = [b["name"] for b in behaviours]
    grid = [[b["stages"][i]["harm"] if i < len(b["stages"]) else None for b in behaviours]
            for i in range(len(stages))]
    scale = max((abs(v) for row in grid for v in row if _finite(v)), default=0.0) or 1.0
    rows, cols = [s[:30] for s in stages], [n[:22] for n in names]
    left = 26 + CHAR_PT * max(len(r) for r in rows)
    cw = min(MAX_CELL_WIDTH_PT, max(MIN_CELL_WIDTH_PT,
                                    (MAX_WIDTH_PT - left - LEGEND_PT) / len(names)))
    angle = _label_angle(cw)
    bottom = 36 + math.sin(math.radians(angle)) * CHAR_PT * max(len(c) for c in cols)
    ch, top = CELL_HEIGHT_PT, 8.0
    width = left + cw * len(names) + LEGEND_PT
    height = top + ch * len(stages) + bottom
    labelled = len(stages) * len(names) <= LABELLED_CELLS
    out = [_open(width, height, _alt(stages, names, grid)),
           f'<g font-family="{FONT}" fill="#000000">']
    for i, row in enumerate(grid):
        y = top + i * ch
        for j, value in enumerate(row):
            x = left + j * cw
            tip = f"{stages[i]} on {names[j]}: {_fmt(value)}"
            cell = [f'<g id="cell-{i}-{j}"><rect x="{x:.1f}" y="{y:.1f}" width="{cw:.1f}" '
                    f'height="{ch:.1f}" fill="{colour(value, scale)}" stroke="#999999" '
                    f'stroke-width="0.5"><title>{escape(tip)}</title></rect>']
            if labelled:
                strong = _finite(value) and abs(value) > 0.6 * scale
                cell.append(_text(x + cw / 2, y + ch / 2 + 2.5, _fmt(value), size=7,
                                  anchor="middle",
                                  extra=' fill="#FFFFFF"' if strong else ""))
            out.append("".join(cell) + "</g>")
    out.append(_axes(rows, cols, left, top, cw, ch, angle))
    out.append(_legend(scale, left + cw * len(names) + 14, top, ch * len(stages)))
    out.append("</g></svg>")
    return "".join(out)


def _open(width: float, height: float, alt: str) -> str:
    label = escape(alt, quote=True)
    return (f'<svg class="chart" role="img" aria-label="{label}" '
            f'xmlns="http://www.w3.org/2000/svg" width="{width:.0f}pt" height="{height:.0f}pt" '
            f'viewBox="0 0 {width:.1f} {height:.1f}"><title>{label}</title>')


def _label_angle(cell_width: float) -> int:
    """Column labels at 30° while they clear each other, steeper as cells narrow."""
    return 30 if cell_width >= 40 else 60 if cell_width >= 16 else 90


def _axes(rows: list[str], cols: list[str], left: float, top: float, cw: float,
          ch: float, angle: int) -> str:
    out = [_text(left - 4, top + i * ch + ch / 2 + 3, name, anchor="end")
           for i, name in enumerate(rows)]
    base = top + ch * len(rows) + 10
    every = max(1, math.ceil(9.5 / cw))  # narrow cells: every k-th name (all are in the tips)
    for j, name in enumerate(cols):
        if j % every:
            continue
        x = left + j * cw + cw / 2
        out.append(_text(x + 2.5 * math.cos(math.radians(angle)), base, name, anchor="end",
                         extra=f' transform="rotate(-{angle} {x:.1f} {base:.1f})"'))
    middle_y = top + ch * len(rows) / 2
    out.append(_text(9, middle_y, "training stage", size=8.5, anchor="middle",
                     extra=f' transform="rotate(-90 9 {middle_y:.1f})"'))
    bottom = base + math.sin(math.radians(angle)) * CHAR_PT * max(len(c) for c in cols) + 14
    out.append(_text(left + cw * len(cols) / 2, bottom, "behaviour", size=8.5, anchor="middle"))
    return "".join(out)


def _legend(scale: float, x: float, top: float, height: float) -> str:
    """A vertical colour bar from −scale (bottom) to +scale (top) with round ticks, drawn as
    ``LEGEND_STEPS`` bands (no gradient: every SVG renderer draws rects the same)."""
    height = max(height, 60.0)
    band = height / LEGEND_STEPS
    out = [f'<g aria-hidden="true"><rect x="{x:.1f}" y="{top + k * band:.2f}" width="9" '
           f'height="{band + 0.3:.2f}" fill="{colour(scale * (1 - 2 * (k + 0.5) / LEGEND_STEPS), scale)}"/>'
           for k in range(LEGEND_STEPS)]
    out.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="9" height="{height:.1f}" fill="none" '
               'stroke="#999999" stroke-width="0.5"/>')
    for tick in nice_ticks(scale):
        y = top + height * (1 - (tick + scale) / (2 * scale))
        out.append(f'<line x1="{x + 9:.1f}" y1="{y:.1f}" x2="{x + 12:.1f}" y2="{y:.1f}" '
                   'stroke="#000000" stroke-width="0.5"/>')
        out.append(_text(x + 14, y + 2.5, f"{tick:g}".replace("-", "\u2212"), size=7))
    middle = top + height / 2
    out.append(_text(x + 50, middle, "harm contribution", size=8, anchor="middle",
                     extra=f' transform="rotate(-90 {x + 50:.1f} {middle:.1f})"'))
    return "".join(out) + "</g>"


def _alt(stages: list[str], names: list[str], grid: list[list[float | None]]) -> str:
    worst = max(((v, s, n) for s, row in zip(stages, grid) for n, v in zip(names, row)
                 if _finite(v)), default=None)
    alt = (f"Heat map of the harm contribution of {len(stages)} stages to {len(names)} "
           "behaviours; vermillion: the stage made the behaviour worse, blue: better.")
    if worst:
        alt += f" Largest: {worst[1]} on {worst[2]}, {_fmt(worst[0])}."
    return alt
