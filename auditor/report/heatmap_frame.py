"""The matplotlib figure of the heat map (``auditor.report.heatmap`` is the API).

A ``Frame`` is the figure for one set of stage and behaviour names: axes, cell image, names,
axis titles, colour bar, value texts, one marker layer per evidence kind. ``paint`` puts a grid
in it (image data, value texts and their colours, marks, colour-bar ticks, the key), so versions
that share their stages and behaviours share a frame and only paint and save it: building the
figure was half the time of a 10 × 100 map. A frame is painted and saved by one thread at a time.

The cells are drawn as values / scale against a fixed −1…1 colour scale, so the colour bar never
changes: its ticks are placed at tick / scale and labelled with the tick.
"""

from __future__ import annotations

import math
import threading
from typing import Any

HARM_UP, HARM_DOWN, MISSING = "#D55E00", "#0072B2", "#DDDDDD"
CHAR_PT = 4.5  # width of one 8-pt DejaVu Sans character
MAX_WIDTH_PT = 475.0  # 6.6 in: the report's text width
CELL_HEIGHT_PT, MAX_CELL_WIDTH_PT, MIN_CELL_WIDTH_PT = 19.0, 58.0, 3.0
LEGEND_PT = 78.0  # the colour bar, its ticks and its title
KEY_LINE_PT, KEY_INDENT_PT = 11.0, 6.0  # a row of the evidence key; its left margin
BAR_MIN_PT = 80.0  # the colour bar's least height (its title is about 70 pt long)
# evidence kind -> (marker, face colour, key label)
MARKS = {"exact": ("o", "#000000", "exact (replayed)"),
         "estimate": ("o", "none", "estimate (± band in the table)"),
         "uncalibrated": ("x", "#000000", "uncalibrated estimate")}
_CMAP = None


def fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "±Inf"
    return f"{value:.3g}"


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def nice_ticks(scale: float) -> list[float]:
    """Round ticks from −scale to +scale (steps of 1, 2, 2.5 or 5 × 10^k; 0 always a tick)."""
    raw = scale / 2
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = int(math.floor(scale / step + 1e-9))
    return [round(k * step, 12) for k in range(-count, count + 1)]


def colours():
    """Blue (−1) → white (0) → vermillion (+1), linear in RGB; grey when not a number."""
    global _CMAP
    if _CMAP is None:
        from matplotlib.colors import LinearSegmentedColormap

        _CMAP = LinearSegmentedColormap.from_list(
            "auditor-harm", [HARM_DOWN, "#FFFFFF", HARM_UP]).with_extremes(bad=MISSING)
    return _CMAP


def _label_angle(cell_width: float) -> int:
    """Column labels at 30° while they clear each other, steeper as cells narrow."""
    return 30 if cell_width >= 40 else 60 if cell_width >= 16 else 90


class Frame:
    def __init__(self, stages: list[str], names: list[str], labelled: bool):
        import numpy as np

        from auditor.report.charts import _figure, _with

        self.lock = threading.Lock()
        self.n_rows, self.n_cols = len(stages), len(names)
        rows, cols = [s[:30] for s in stages], [n[:22] for n in names]
        left = 26 + CHAR_PT * max(len(r) for r in rows)
        self.cw = cw = min(MAX_CELL_WIDTH_PT, max(MIN_CELL_WIDTH_PT,
                                                  (MAX_WIDTH_PT - left - LEGEND_PT) / len(cols)))
        angle = _label_angle(cw)
        # how far the rotated behaviour names reach below the cells
        label_pt = math.sin(math.radians(angle)) * CHAR_PT * max(len(c) for c in cols) + \
            8 * math.cos(math.radians(angle)) + 4
        self.width = width = left + cw * self.n_cols + LEGEND_PT
        self.key_cols = _key_columns(width)
        key_rows = math.ceil((len(MARKS) + 1) / self.key_cols)
        # names, axis title, the evidence key (a line per row of it)
        bottom, ch = 28 + label_pt + KEY_LINE_PT * (key_rows - 1), CELL_HEIGHT_PT
        top = 8.0 + max(0.0, BAR_MIN_PT - ch * self.n_rows)  # room for a short colour bar
        self.height = height = top + ch * self.n_rows + bottom
        self.fig = fig = _figure(width / 72, height / 72)
        self.plot = (left / width, bottom / height, cw * self.n_cols / width,
                     ch * self.n_rows / height)
        self.texts: list[list[Any]] = []
        self.layers: dict[str, Any] = {}

        def build():
            ax = self.ax = fig.add_axes(self.plot)
            self.image = ax.imshow(np.zeros((self.n_rows, self.n_cols)), cmap=colours(),
                                   vmin=-1.0, vmax=1.0, aspect="auto", interpolation="none",
                                   extent=(-0.5, self.n_cols - 0.5, self.n_rows - 0.5, -0.5))
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_linewidth(0.5)
                spine.set_color("#999999")
            _labels(ax, rows, cols, cw, angle, label_pt)
            if labelled:
                self.texts = [[ax.text(j, i, "", ha="center", va="center", fontsize=7)
                               for j in range(self.n_cols)] for i in range(self.n_rows)]
            size = 3.2 if cw >= 12 else 2.0
            for kind, (marker, face, label) in MARKS.items():
                (self.layers[kind],) = ax.plot([], [], linestyle="none", marker=marker,
                                               markersize=size, markerfacecolor=face,
                                               markeredgecolor="#000000",
                                               markeredgewidth=0.6, label=label)
            ax.set_xlim(-0.5, self.n_cols - 0.5)
            ax.set_ylim(self.n_rows - 0.5, -0.5)
            self.bar = _colour_bar(fig, (left + cw * self.n_cols + 14) / width, self.plot[1],
                                   self.plot[3], width)
            # the image's corners, data -> figure fraction -> SVG points (y down)
            corners = (ax.transData + fig.transFigure.inverted()).transform(
                [(-0.5, -0.5), (self.n_cols - 0.5, self.n_rows - 0.5)])
            self.box = (corners[0][0] * width, (1 - corners[0][1]) * height,
                        corners[1][0] * width, (1 - corners[1][1]) * height)

        _with(fig, build)

    def paint(self, grid: list[list[float | None]], kinds: list[list[str | None]]) -> None:
        """Put ``grid`` (harm contributions) and the evidence ``kinds`` of its cells in."""
        import numpy as np

        from auditor.report.charts import _with

        values = np.array([[v if finite(v) else np.nan for v in row] for row in grid],
                          dtype=float)
        found = np.abs(values[np.isfinite(values)])
        scale = float(found.max()) if found.size and found.max() > 0 else 1.0
        self.image.set_data(np.ma.masked_invalid(values / scale))
        for i, row in enumerate(self.texts):
            for j, text in enumerate(row):
                value = grid[i][j]
                text.set_text(fmt(value))
                strong = finite(value) and abs(value) > 0.6 * scale
                text.set_color("#FFFFFF" if strong else "#000000")
        ticks = nice_ticks(scale)
        self.bar.set_ticks([t / scale for t in ticks],
                           labels=[f"{t:g}".replace("-", "\u2212") for t in ticks])
        _with(self.fig, lambda: self._marks(kinds))

    def _marks(self, kinds: list[list[str | None]]) -> None:
        """The marker layers, each cell's mark in its upper right corner, and their key. The
        map's most common kind is left unmarked (the key names it): a mark in every one of a
        thousand cells says nothing a key cannot, and costs a tenth of the drawing."""
        from matplotlib.lines import Line2D

        counts = {k: sum(row.count(k) for row in kinds) for k in MARKS}
        present = [k for k in MARKS if counts[k]]
        common = max(present, key=lambda k: counts[k]) if present else None
        dx = 0.5 - min(0.3, 2.8 / self.cw)
        marked, unmarked = [Line2D([], [], linestyle="none", marker="None",
                                   label="evidence:")], []
        for kind, layer in self.layers.items():
            cells = [] if kind == common else [(j + dx, i - 0.3) for i, row in enumerate(kinds)
                                               for j, k in enumerate(row) if k == kind]
            layer.set_data([x for x, _ in cells], [y for _, y in cells])
            if cells:
                marked.append(layer)
            elif kind == common:
                label = f"{'every cell' if len(present) == 1 else 'unmarked'}: {MARKS[kind][2]}"
                unmarked.append(Line2D([], [], linestyle="none", marker="None", label=label))
        self.fig.legends.clear()
        if present:  # the key, under the behaviour axis title
            handles = marked + unmarked
            self.fig.legend(handles=handles, loc="lower left",
                            bbox_to_anchor=(KEY_INDENT_PT / self.width, 0.0),
                            ncols=min(len(handles), self.key_cols),
                            fontsize=7, frameon=False, handletextpad=0.2, handlelength=0.8,
                            columnspacing=1.0, borderaxespad=0.1, markerscale=1.5)


def _key_entry_pt(label: str) -> float:
    """The width of one entry of the evidence key: marker, label (7 pt) and column spacing."""
    return 16.0 + 7 / 8 * CHAR_PT * len(label)


def _key_columns(width: float) -> int:
    """Entries per row of the evidence key such that its widest possible row (every kind
    present, the longest one named "unmarked: …") fits the figure's width."""
    labels = sorted([label for _, _, label in MARKS.values()], key=len, reverse=True)
    widest = [_key_entry_pt("evidence:"), _key_entry_pt("unmarked: " + labels[0]),
              *(_key_entry_pt(label) for label in labels[1:])]
    for columns in range(len(widest), 1, -1):
        if KEY_INDENT_PT + sum(sorted(widest, reverse=True)[:columns]) <= width - 4:
            return columns
    return 1


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


def _colour_bar(fig, x: float, bottom: float, height: float, width_pt: float):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    height = max(height, BAR_MIN_PT / 72 / fig.get_figheight())
    cax = fig.add_axes((x, bottom, 9 / width_pt, height))
    bar = fig.colorbar(ScalarMappable(Normalize(-1.0, 1.0), colours()), cax=cax)
    bar.outline.set_linewidth(0.5)
    bar.outline.set_edgecolor("#999999")
    cax.tick_params(labelsize=7, length=3, width=0.5, pad=1.5)
    bar.set_label("harm contribution", fontsize=8)
    return bar
