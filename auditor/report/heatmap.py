"""The stage × behaviour heat map, drawn with matplotlib's SVG backend like the other charts (the
report and the dashboard draw it with this one function; the figure: ``heatmap_frame``).

The cells are one image (``imshow``, embedded unscaled and drawn pixelated), the evidence of each
cell a marker layer per kind (exact ●, estimate ○, uncalibrated ×; the map's most common kind is
named in the key and left unmarked), the scale a colour bar with round ticks; axis titles, stage
and behaviour names (steeper, then thinned, as cells narrow), values printed in the cells up to
``LABELLED_CELLS`` cells, and alt text. Over the image lies one transparent ``<g id="cell-i-j">``
per cell, placed with the axes' data → SVG transform, holding a ``<title>`` (stage, behaviour,
value, evidence): a tooltip in a browser and a label for a screen reader. The colours are the
Okabe–Ito vermillion (the stage made the behaviour worse) and blue (better) of the other charts,
through white at zero, linear in RGB; a cell that is not a number is grey and says "n/a".

Drawn as 1,000 patch artists a 10 × 100 map took about a second. Now: one image; names as text
artists rather than axis ticks (a tick is four artists); a figure kept per set of stage and
behaviour names and repainted for the next version that has them (``Frame``); and the last
drawings kept by a digest of their input, so a page seen again does not draw its map again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from html import escape
from typing import Any

from auditor.report.heatmap_frame import MARKS, Frame, finite, fmt, nice_ticks  # noqa: F401

# the heat map prints each cell's value up to this many cells; a larger grid's cells are too
# narrow for a number (the table beside every heat map carries the values)
LABELLED_CELLS = 120
_DRAWN: OrderedDict[str, str] = OrderedDict()  # digest of the input -> SVG
_FRAMES: OrderedDict[tuple, Frame] = OrderedDict()  # (stages, names, labelled) -> figure
_DRAWN_KEPT, _FRAMES_KEPT = 64, 8
_LOCK = threading.Lock()


def evidence_kind(stage: dict[str, Any]) -> str:
    """exact / estimate / uncalibrated of one stage row (a report's or the dashboard's)."""
    if isinstance(stage.get("evidence"), dict):  # the dashboard's row_evidence
        return stage["evidence"].get("kind") or "uncalibrated"
    mark = stage.get("evidence_mark")
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
        if key in _DRAWN:
            _DRAWN.move_to_end(key)
            return _DRAWN[key]
    svg = _draw(stages, names, grid, kinds)
    with _LOCK:
        _DRAWN[key] = svg
        while len(_DRAWN) > _DRAWN_KEPT:
            _DRAWN.popitem(last=False)
    return svg


def _frame(stages: list[str], names: list[str]) -> Frame:
    labelled = len(stages) * len(names) <= LABELLED_CELLS
    key = (tuple(stages), tuple(names), labelled)
    with _LOCK:
        frame = _FRAMES.get(key)
        if frame is not None:
            _FRAMES.move_to_end(key)
            return frame
    frame = Frame(stages, names, labelled)
    with _LOCK:
        frame = _FRAMES.setdefault(key, frame)
        while len(_FRAMES) > _FRAMES_KEPT:
            _FRAMES.popitem(last=False)
    return frame


def forget() -> None:
    """Drop every kept drawing and figure (the tests draw from scratch)."""
    with _LOCK:
        _DRAWN.clear()
        _FRAMES.clear()


def _draw(stages: list[str], names: list[str], grid: list[list[float | None]],
          kinds: list[list[str | None]]) -> str:
    from auditor.report.charts import _svg

    frame = _frame(stages, names)
    with frame.lock:
        frame.paint(grid, kinds)
        svg = _svg(frame.fig, _alt(stages, names, grid))
    return svg[:svg.rindex("</svg>")] + _cells(stages, names, grid, kinds, frame.box) + "</svg>"


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
            tip = f"{stages[i]} on {names[j]}: {fmt(value)}" + (f" ({kind})" if kind else "")
            out.append(f'<g id="cell-{i}-{j}"><rect x="{left + j * cw:.2f}" y="{y:.2f}" '
                       f'width="{cw:.2f}" height="{ch:.2f}" fill="#FFFFFF" fill-opacity="0">'
                       f'<title>{escape(tip)}</title></rect></g>')
    out.append("</g>")
    return "".join(out)


def _alt(stages: list[str], names: list[str], grid: list[list[float | None]]) -> str:
    worst = max(((v, s, n) for s, row in zip(stages, grid) for n, v in zip(names, row)
                 if finite(v)), default=None)
    alt = (f"Heat map of the harm contribution of {len(stages)} stages to {len(names)} "
           "behaviours; vermillion: the stage made the behaviour worse, blue: better.")
    if worst:
        alt += f" Largest: {worst[1]} on {worst[2]}, {fmt(worst[0])}."
    return alt
