"""Charts drawn with matplotlib's SVG backend, inlined in the report's HTML (the heat map:
``auditor.report.heatmap``).

Every chart has axis titles, round ticks, a colour-blind-safe palette (Okabe–Ito), prints its
numbers (cell values, bar labels) so a greyscale print stays readable, and carries alt text
(``role="img"``, ``aria-label`` and an SVG ``<title>``) that states what it shows. No pyplot:
each chart is its own ``Figure`` on an SVG canvas, so the dashboard can draw charts from several
threads at once.
"""

from __future__ import annotations

import functools
import io
import math
import re
import threading
from html import escape
from typing import Any

from auditor.report.heatmap import LABELLED_CELLS, heatmap  # noqa: F401 - one chart module API
from auditor.report.heatmap_frame import finite as _finite
from auditor.report.heatmap_frame import fmt as _fmt

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Vermillion marks harm raised, blue harm lowered.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
             "#000000")
PALETTE = OKABE_ITO
HARM_UP, HARM_DOWN = "#D55E00", "#0072B2"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")
FONT = {"font.family": "DejaVu Sans", "font.size": 8.0, "svg.fonttype": "none",
        "svg.hashsalt": "auditor", "axes.spines.top": False, "axes.spines.right": False}


# rc_context changes matplotlib's global settings for the time it is open: charts drawn from
# several threads at once (the dashboard) take turns, so none sees another's settings restored
_RC_LOCK = threading.RLock()
_SAVING = threading.local()


@functools.lru_cache(maxsize=8192)
def _text_metrics(text: str, prop, ismath) -> tuple[float, float, float]:
    from matplotlib.textpath import text_to_path  # matplotlib's shared TextToPath

    return text_to_path.get_text_width_height_descent(text, prop, ismath)


def _cache_text_metrics() -> None:
    """Keep the size of each text across charts. matplotlib measures a text once per renderer,
    and an SVG renderer lives for one ``savefig``, so every chart measured every label again
    (FreeType lays the string out): a third of the time of a heat map whose names repeat from
    version to version. The SVG renderer's measure depends on the text, its font properties and
    whether it is mathtext only; it is cached only while this module saves a chart (its own
    settings in force), and every other caller gets matplotlib's own."""
    from matplotlib.backends.backend_svg import RendererSVG

    measure = RendererSVG.get_text_width_height_descent
    if getattr(measure, "auditor_cached", False):
        return

    def cached(self, s, prop, ismath):
        if getattr(_SAVING, "active", False) and ismath is not True and ismath != "TeX":
            return _text_metrics(s, prop.copy(), ismath)
        return measure(self, s, prop, ismath)

    cached.auditor_cached = True
    RendererSVG.get_text_width_height_descent = cached


CHAR_IN = 0.062  # width of one 8-pt DejaVu Sans character, inches (margins without a layout pass)


def _figure(width_in: float, height_in: float, *, left_chars: int = 6, bottom_in: float = 0.45,
            right_in: float = 0.15, top_in: float = 0.3):
    """A figure with margins computed from the label lengths: matplotlib's layout engines draw
    every chart twice, which doubled the time charts add to a report."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasSVG(fig)
    left_in = 0.45 + CHAR_IN * left_chars
    fig.subplots_adjust(left=left_in / width_in, right=1 - right_in / width_in,
                        bottom=bottom_in / height_in, top=1 - top_in / height_in)
    return fig


def _svg(fig, alt: str) -> str:
    """The figure as an inline ``<svg>`` element with its alt text."""
    import matplotlib

    buffer = io.StringIO()
    _cache_text_metrics()
    with _RC_LOCK, matplotlib.rc_context(FONT):
        _SAVING.active = True
        try:
            fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
        finally:
            _SAVING.active = False
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    label = escape(alt, quote=True)
    text = re.sub(r"<svg ", f"<svg class=\"chart\" role=\"img\" aria-label=\"{label}\" ", text,
                  count=1)
    text = re.sub(r"(<svg[^>]*>)", rf"\1<title>{label}</title>", text, count=1)
    return re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


_plottable = _finite  # a value the chart can place: NaN, ±Inf and None are left out


def _with(fig, draw) -> None:
    import matplotlib

    with _RC_LOCK, matplotlib.rc_context(FONT):
        draw()


def bars(behaviour: dict[str, Any]) -> str:
    """Horizontal bars of each stage's effect (or share of harm, on a fixed 0–1 axis, when the
    threshold is on shares), with the policy threshold as a dashed line."""
    threshold = behaviour.get("threshold")
    metric = threshold["metric"] if threshold else "effect"
    values = [(s["stage_id"], s.get(metric)) for s in behaviour["stages"]]
    left = max([len(sid[:24]) for sid, _ in values] + [4])
    fig = _figure(6.0, 0.85 + 0.2 * len(values), left_chars=left, right_in=0.4)

    def draw():
        ax = fig.add_subplot()
        ys = range(len(values))
        plotted = [v if _finite(v) else 0.0 for _, v in values]
        colours = [HARM_UP if v > 0 else HARM_DOWN for v in plotted]
        ax.barh(ys, plotted, color=colours, height=0.6)
        ax.set_yticks(ys, [sid[:24] for sid, _ in values])
        ax.invert_yaxis()
        if metric == "share":
            ax.set_xlim(0.0, 1.0)
            ax.set_xlabel("share of harm (0–1, common to every chart)")
        else:
            ax.axvline(0.0, color="#333333", linewidth=0.8)
            ax.set_xlabel(f"stage {metric}")
            ax.margins(x=0.18)
        ax.set_ylabel("training stage")
        for y, (_, value), shown in zip(ys, values, plotted):
            ax.annotate(_fmt(value), (shown, y), xytext=(3 if shown >= 0 else -3, 0),
                        textcoords="offset points", va="center",
                        ha="left" if shown >= 0 else "right", fontsize=7)
        if threshold:
            ax.axvline(threshold["value"], color="black", linestyle="--", linewidth=1.2,
                       label=f"threshold {threshold['comparator']} {threshold['value']:g} "
                             f"({threshold['rule']})")
            ax.legend(loc="upper right", fontsize=7, frameon=False, bbox_to_anchor=(1.0, 1.25))
        ax.set_title(f"{behaviour['name']}: stage {metric}", fontsize=9, loc="left")

    _with(fig, draw)
    alt = f"Bar chart of each stage's {metric} for {behaviour['name']}: " + "; ".join(
        f"{sid} {_fmt(v)}" for sid, v in values)
    if threshold:
        alt += f". Threshold {threshold['comparator']} {threshold['value']:g}."
    return _svg(fig, alt)


def _axis_labels(labels: list[str]) -> tuple[list[str], str]:
    """Tick labels and the x-axis title: version names under one model's name, else model@v."""
    models = {label.split("@")[0] for label in labels if "@" in label}
    if len(models) == 1:
        return [label.split("@", 1)[1] for label in labels], f"version of {models.pop()}"
    return list(labels), "model@version"


def trend(title: str, labels: list[str], series: dict[str, list[float | None]], *,
          compact: bool = False) -> str:
    """One line per series across versions. Each series has its own colour, marker and dash, and
    later series are drawn with smaller hollow markers, so none hides another. ``compact``: half
    the text width with the legend below the plot, so that two charts stand side by side."""
    points = [v for values in series.values() for v in values if _finite(v)]
    if not points or not labels:
        return ""
    from matplotlib.ticker import MaxNLocator

    ticks, xtitle = _axis_labels(labels)
    legend = max(len(name[:28]) for name in series)
    if compact:
        below = 0.13 * len(series)
        fig = _figure(3.25, 1.9 + below, right_in=0.1, bottom_in=0.75 + below, left_chars=6)
    else:
        fig = _figure(6.6, 2.3, right_in=0.5 + CHAR_IN * legend, bottom_in=0.9, left_chars=6)

    def draw():
        ax = fig.add_subplot()
        for k, (name, values) in enumerate(series.items()):
            xs = [i for i, v in enumerate(values) if _finite(v)]
            ys = [values[i] for i in xs]
            ax.plot(xs, ys, label=name, color=PALETTE[k % len(PALETTE)],
                    linestyle=DASHES[k % len(DASHES)], marker=MARKERS[k % len(MARKERS)],
                    markersize=max(6.5 - 1.2 * k, 3), linewidth=1.4,
                    markerfacecolor="none" if k else PALETTE[0], zorder=3 + k)
        ax.axhline(0.0, color="#888888", linewidth=0.7, linestyle=":")
        every = max(1, math.ceil(len(labels) / 15))
        shown = [i for i in range(len(labels)) if (len(labels) - 1 - i) % every == 0]
        ax.set_xticks(shown, [ticks[i][:16] for i in shown], rotation=35, ha="right")
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        ax.set_xlabel(xtitle)
        ax.set_ylabel("value")
        ax.set_title(title, fontsize=9, loc="left")
        if compact:
            fig.legend(fontsize=7, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 0.0))
        else:
            ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))

    _with(fig, draw)
    alt = f"Line chart: {title}, across {len(labels)} versions ({labels[0]} to {labels[-1]}). " + \
        "; ".join(f"{name}: latest {_fmt(next((v for v in reversed(vals) if _finite(v)), None))}"
                  for name, vals in series.items())
    return _svg(fig, alt)
