"""The two long tables of the dashboard built as HTML text in Python: the overview's row per
version and the version page's stage × behaviour effects. Through Jinja2 a thousand rows cost
more than the queries behind them (an attribute look-up and an escape call per field, through
the template machinery); here each field is escaped once with markupsafe, and the markup is the
same as the templates wrote."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from auditor.serve.web import num, when


def overview_rows(versions: list[dict[str, Any]]) -> Markup:
    out = []
    for v in versions:
        verdict = escape(v["verdict"])
        policy = f' <span class="muted">{escape(v["policy"])}</span>' if v["policy"] else ""
        blamed = (f'<span class="fail">{escape(", ".join(v["blamed"]))}</span>' if v["blamed"]
                  else '<span class="muted">none</span>')
        ev = v["evidence"]
        evidence = (f'<span class="ev {escape(ev["kind"])}" title="evidence: '
                    f'{escape(ev["kind"])}">{escape(ev["label"])}</span>' if ev["kind"]
                    else '<span class="muted">not scored</span>')
        out.append(
            f'<tr class="version-row" data-verdict="{verdict}">'
            f'<td>{escape(v["model"])}</td>'
            f'<td><a class="version-link" href="{escape(v["url"])}">{escape(v["version"])}</a></td>'
            f'<td>{escape(v["period"] or "-")}</td><td>{escape(when(v["created_at"]))}</td>'
            f'<td><span class="verdict {escape(v["verdict"].replace(" ", "-"))}">{verdict}</span>'
            f'{policy}</td><td>{blamed}</td><td>{evidence}</td>'
            f'<td>{escape(v["estimator"] or "-")}</td>'
            f'<td class="num">{escape(v["stages"])}</td></tr>\n')
    return Markup("".join(out))


def effect_rows(effects: list[dict[str, Any]]) -> Markup:
    """The body rows of the effects table: a row per stage (harm contribution and evidence mark
    per behaviour), then total effect and metric value."""
    out = []
    for i, stage in enumerate(effects[0]["stages"]):
        cells = []
        for b in effects:
            c = b["stages"][i]
            kind = escape(c["evidence"]["kind"])
            cells.append(f'<td class="num effect-cell">{escape(num(c["harm"]))} <span class="ev '
                         f'{kind}" title="evidence: {kind}">{escape(c["evidence"]["mark"])}'
                         '</span></td>')
        out.append(f'<tr><th>{escape(stage["stage_id"])} <span class="muted">'
                   f'{escape(stage["stage_kind"])}</span></th>{"".join(cells)}</tr>\n')
    totals = []
    for b in effects:
        change = (f' <span class="muted">({escape(format(b["change"], "+.3g"))} vs previous)</span>'
                  if b["change"] is not None else "")
        totals.append(f'<td class="num">{escape(num(b["total"]))}{change}</td>')
    out.append(f'<tr><th>total effect</th>{"".join(totals)}</tr>\n')
    metrics = "".join(f'<td class="num">{escape(num(b["metric_value"]))}</td>' for b in effects)
    out.append(f"<tr><th>metric value</th>{metrics}</tr>\n")
    return Markup("".join(out))
