"""The stage × behaviour heat map, drawn with matplotlib's SVG backend like the other charts (the
report and the dashboard draw it with this one function).

The cells are one image (``imshow``, embedded unscaled and drawn pixelated), the evidence of each
cell one marker layer per kind (exact ●, estimate ○, uncalibrated ×) with a legend, the scale a
colour bar with round ticks; axis titles, stage and behaviour labels (steeper, then thinned, as
cells narrow), values printed in the cells up to ``LABELLED_CELLS`` cells, and alt text. Over the
image lies one transparent ``<g id="cell-i-j">`` per cell, placed with the axes' data → SVG
transform, holding a ``<title>`` (stage, behaviour, value, evidence): a tooltip in a browser and a
label for a screen reader. The colours are the Okabe–Ito vermillion (the stage made the
behaviour worse) and blue (better) of the other charts, through white at zero, linear in RGB; a
cell that is not a number is grey and says "n/a".

Drawn as 1,000 patch artists a 10 × 100 map took about a second; as one image with tick marks
left out (a tick mark is a line artist each) it takes a tenth of that. The same grid always
draws the same SVG, so the last drawings are kept by a digest of their input (``_CACHE``).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from html import escape
from typing import Any

HARM_UP, HARM_DOWN, MISSING = "#D55E00", "#0072B2", "#DDDDDD"
CHAR_PT = 4.5  # width of one 8-pt DejaVu Sans character
# the heat map prints each cell's value up to this many cells; a larger grid's cells are too
# narrow for a number (the table beside every heat map carries the values)
LABELLED_CELLS = 120
MAX_WIDTH_PT = 475.0  # 6.6 in: the report's text width
CELL_HEIGHT_PT, MAX_CELL_WIDTH_PT, MIN_CELL_WIDTH_PT = 19.0, 58.0, 3.0
LEGEND_PT = 78.0  # the colour bar, its ticks and its title
BAR_MIN_PT = 80.0  # the colour bar's least height (its title is about 70 pt long)
# evidence kind -> (marker, face colour, legend label)
MARKS = {"exact": ("o", "#000000", "exact (replayed)"),
         "estimate": ("o", "none", "estimate (± band in the table)"),
         "uncalibrated": ("x", "#000000", "uncalibrated estimate")}
_CACHE: OrderedDict[str, str] = OrderedDict()
_CACHE_SIZE = 64
_LOCK = threading.Lock()


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "±Inf"
    return f"{value:.3g}"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def nice_ticks(scale: float) -> list[float]:
    """Round ticks from −scale to +scale (steps of 1, 2, 2.5 or 5 × 10^k; 0 always a tick)."""
    raw = scale / 2
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = int(math.floor(scale / step + 1e-9))
    return [round(k * step, 12) for k in range(-count, count + 1)]


def evidence_kind(stage: dict[str, Any]) -> str:
    """exact / estimate / uncalibrated of one stage row (a report's or the dashboard's)."""
    mark = stage.get("evidence_mark")
    if isinstance(stage.get("evidence"), dict):  # the dashboard's row_evidence
        return stage["evidence"].get("kind") or "uncalibrated"
    if mark in ("exact", "uncalibrated"):
        return mark
    if isinstance(mark, str) and mark.startswith("±"):
        return "estimate"
    kind = stage.get("evidence") or ("exact" if stage.get("estimator") == "replay" else None)
    return kind if kind in MARKS else "uncalibrated"


def heatmap(behaviours: list[dict[str, Any]]) -> str:
    """Stage (rows) × behaviour (columns) of harm contributions (effect, sign-flipped for benefit
    behaviours so that vermillion always means "made it worse")."""
    if not behaviours:
        return ""
    stages = [f"{s['stage_id']} ({s['stage_kind']})" for s in behaviours[0]["stages"]]
    names = [b["name"] for b in behaviours]
    grid = [[b["stages"][i]["harm"] if i < len(b["stages"]) else None for b in behaviours]
            for i in range(len(stages))]
    kinds = [[evidence_kind(b["stages"][i]) if i < len(b["stages"]) else None
              for b in behaviours] for i in range(len(stages))]
    key = hashlib.sha256(json.dumps([stages, names, grid, kinds], allow_nan=True,
                                    default=str).encode()).hexdigest()
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    svg = _draw(stages, names, grid, kinds)
    with _LOCK:
        _CACHE[key] = svg
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return svg


def _label_angle(cell_width: float) -> int:
    """Column labels at 30° while they clear each other, steeper as cells narrow."""
    return 30 if cell_width >= 40 else 60 if cell_width >= 16 else 90


def _draw(stages: list[str], names: list[str], grid: list[list[float | None]],
          kinds: list[list[str | None]]) -> str:
    import numpy as np

    from auditor.report.charts import _figure, _svg, _with

    n_rows, n_cols = len(stages), len(names)
    values = np.array([[v if _finite(v) else np.nan for v in row] for row in grid], dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    rows, cols = [s[:30] for s in stages], [n[:22] for n in names]
    left = 26 + CHAR_PT * max(len(r) for r in rows)
    cw = min(MAX_CELL_WIDTH_PT, max(MIN_CELL_WIDTH_PT,
                                    (MAX_WIDTH_PT - left - LEGEND_PT) / n_cols))
    angle = _label_angle(cw)
    present = [k for k in MARKS if any(k in row for row in kinds)]
    # how far the rotated behaviour names reach below the cells
    label_pt = math.sin(math.radians(angle)) * CHAR_PT * max(len(c) for c in cols) + \
        8 * math.cos(math.radians(angle)) + 4
    bottom = 16 + label_pt + (12 if present else 0)
    ch = CELL_HEIGHT_PT
    top = 8.0 + max(0.0, BAR_MIN_PT - ch * n_rows)  # room for a short map's colour bar
    width, height = left + cw * n_cols + LEGEND_PT, top + ch * n_rows + bottom
    fig = _figure(width / 72, height / 72)
    plot = ((left / width), bottom / height, cw * n_cols / width, ch * n_rows / height)
    labelled = n_rows * n_cols <= LABELLED_CELLS

    def draw():
        ax = fig.add_axes(plot)
        ax.imshow(np.ma.masked_invalid(values), cmap=_colours(), vmin=-scale, vmax=scale,
                  aspect="auto", interpolation="none",
                  extent=(-0.5, n_cols - 0.5, n_rows - 0.5, -0.5))
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(True)
            ax.spines[side].set_linewidth(0.5)
            ax.spines[side].set_color("#999999")
        _labels(ax, rows, cols, cw, angle, label_pt)
        if labelled:
            for i in range(n_rows):
                for j in range(n_cols):
                    value = grid[i][j]
                    strong = _finite(value) and abs(value) > 0.6 * scale
                    ax.text(j, i, _fmt(value), ha="center", va="center", fontsize=7,
                            color="#FFFFFF" if strong else "#000000")
        _marks(ax, kinds, present, cw, plot[0])
        ax.set_xlim(-0.5, n_cols - 0.5)
        ax.set_ylim(n_rows - 0.5, -0.5)
        _colour_bar(fig, scale, (left + cw * n_cols + 14) / width, plot[1], plot[3], width)
        # the image's corners, data -> figure fraction -> SVG points (y down)
        corners = (ax.transData + fig.transFigure.inverted()).transform(
            [(-0.5, -0.5), (n_cols - 0.5, n_rows - 0.5)])
        box.extend([corners[0][0] * width, (1 - corners[0][1]) * height,
                    corners[1][0] * width, (1 - corners[1][1]) * height])

    box: list[float] = []
    _with(fig, draw)
    svg = _svg(fig, _alt(stages, names, grid))
    return svg[:svg.rindex("</svg>")] + _cells(stages, names, grid, kinds, box) + "</svg>"


_CMAP = None


def _colours():
    """Blue (−scale) → white (0) → vermillion (+scale), linear in RGB; grey when not a number."""
    global _CMAP
    if _CMAP is None:
        from matplotlib.colors import LinearSegmentedColormap

        cmap = LinearSegmentedColormap.from_list("auditor-harm", [HARM_DOWN, "#FFFFFF", HARM_UP])
        cmap.set_bad(MISSING)
        _CMAP = cmap
    return _CMAP


def _marks(ax, kinds: list[list[str | None]], present: list[str], cw: float,
           legend_x: float) -> None:
    """A marker layer per evidence kind, in each cell's upper right corner, and their key. The
    map's most common kind is left unmarked (the key names it): a mark in every one of a
    thousand cells says nothing a key cannot, and costs a tenth of the drawing."""
    from matplotlib.lines import Line2D

    counts = {k: sum(row.count(k) for row in kinds) for k in present}
    common = max(present, key=lambda k: counts[k]) if present else None
    size = 3.2 if cw >= 12 else 2.0
    dx = 0.5 - min(0.3, 2.8 / cw)
    handles = [Line2D([], [], linestyle="none", marker="None", label="evidence:")]
    for kind in present:
        marker, face, label = MARKS[kind]
        if kind == common:
            unmarked = "every cell" if len(present) == 1 else "unmarked"
            handles.append(Line2D([], [], linestyle="none", marker="None",
                                  label=f"{unmarked}: {label}"))
            continue
        cells = [(j + dx, i - 0.3) for i, row in enumerate(kinds)
                 for j, k in enumerate(row) if k == kind]
        xs, ys = zip(*cells)
        (line,) = ax.plot(xs, ys, linestyle="none", marker=marker, markersize=size,
                          markerfacecolor=face, markeredgecolor="#000000",
                          markeredgewidth=0.6, label=label)
        handles.append(line)
    if len(handles) > 1:  # the key, under the behaviour axis title
        handles[1:] = sorted(handles[1:], key=lambda line: line.get_marker() == "None")
        ax.figure.legend(handles=handles, loc="lower left", bbox_to_anchor=(legend_x, 0.0),
                         ncols=len(handles), fontsize=7, frameon=False, handletextpad=0.2,
                         handlelength=0.8, columnspacing=1.0, borderaxespad=0.1,
                         markerscale=1.5)


def _labels(ax, rows: list[str], cols: list[str], cw: float, angle: int,
            label_pt: float) -> None:
    """Stage and behaviour names beside their cells, and the axis titles. Text artists, not
    axis ticks: a tick is two line and two text artists, and 35 of them were a third of the
    drawing; with no ticks the axis titles are placed here too (axes coordinates)."""
    from matplotlib.transforms import blended_transform_factory, offset_copy

    fig = ax.figure
    below = offset_copy(blended_transform_factory(ax.transData, ax.transAxes), fig=fig,
                        y=-3, units="points")
    beside = offset_copy(blended_transform_factory(ax.transAxes, ax.transData), fig=fig,
                         x=-3, units="points")
    ax.set_xticks([])
    ax.set_yticks([])
    every = max(1, math.ceil(9.5 / cw))  # narrow cells: every k-th name (all are in titles)
    for j in range(0, len(cols), every):
        ax.text(j, 0, cols[j], transform=below, rotation=angle, rotation_mode="anchor",
                ha="right", va="center" if angle == 90 else "top")
    for i, name in enumerate(rows):
        ax.text(0, i, name, transform=beside, ha="right", va="center")
    height_pt = ax.get_position().height * fig.get_figheight() * 72
    width_pt = ax.get_position().width * fig.get_figwidth() * 72
    ax.set_xlabel("behaviour", fontsize=8.5)
    ax.xaxis.set_label_coords(0.5, -(label_pt + 3) / height_pt)
    ax.xaxis.label.set_va("top")
    ax.set_ylabel("training stage", fontsize=8.5)
    ax.yaxis.set_label_coords(-(CHAR_PT * max(len(r) for r in rows) + 10) / width_pt, 0.5)
    ax.yaxis.label.set_va("bottom")


def _colour_bar(fig, scale: float, x: float, bottom: float, height: float,
                width_pt: float) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import FixedLocator, FuncFormatter

    height = max(height, BAR_MIN_PT / 72 / fig.get_figheight())
    cax = fig.add_axes((x, bottom, 9 / width_pt, height))
    bar = fig.colorbar(ScalarMappable(Normalize(-scale, scale), _colours()), cax=cax)
    bar.locator = FixedLocator(nice_ticks(scale))
    bar.formatter = FuncFormatter(lambda value, _: f"{value:g}".replace("-", "\u2212"))
    bar.update_ticks()
    bar.outline.set_linewidth(0.5)
    bar.outline.set_edgecolor("#999999")
    cax.tick_params(labelsize=7, length=3, width=0.5, pad=1.5)
    bar.set_label("harm contribution", fontsize=8)


def _cells(stages: list[str], names: list[str], grid: list[list[float | None]],
           kinds: list[list[str | None]], box: list[float]) -> str:
    """A transparent rectangle per cell over the image (``box``: its corners x0, y0, x1, y1 in
    SVG points), each in ``<g id="cell-i-j">`` with a ``<title>``."""
    left, top, right, lower = box
    cw, ch = (right - left) / len(grid[0]), (lower - top) / len(grid)
    out = ['<g class="cells">']
    for i, row in enumerate(grid):
        y = top + i * ch
        for j, value in enumerate(row):
            kind = kinds[i][j]
            tip = f"{stages[i]} on {names[j]}: {_fmt(value)}" + (f" ({kind})" if kind else "")
            out.append(f'<g id="cell-{i}-{j}"><rect x="{left + j * cw:.2f}" y="{y:.2f}" '
                       f'width="{cw:.2f}" height="{ch:.2f}" fill="#FFFFFF" fill-opacity="0">'
                       f'<title>{escape(tip)}</title></rect></g>')
    out.append("</g>")
    return "".join(out)


def _alt(stages: list[str], names: list[str], grid: list[list[float | None]]) -> str:
    worst = max(((v, s, n) for s, row in zip(stages, grid) for n, v in zip(names, row)
                 if _finite(v)), default=None)
    alt = (f"Heat map of the harm contribution of {len(stages)} stages to {len(names)} "
           "behaviours; vermillion: the stage made the behaviour worse, blue: better.")
    if worst:
        alt += f" Largest: {worst[1]} on {worst[2]}, {_fmt(worst[0])}."
    return alt
