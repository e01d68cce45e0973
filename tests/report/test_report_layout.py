"""What a reader sees: page 1 is the executive summary, no table is wider than the page, the
PDF is tagged (structure tree, language, chart alt text), no machine path is printed, and the
quarterly body stays short (per-row tables in the appendices)."""

from __future__ import annotations

import re
import subprocess

from layout import tables_wider_than_page

from auditor import api
from auditor.report.context import build_context
from auditor.report.summary import executive_summary

SUMMARY_HEADINGS = ("Decision", "Stages to blame", "Remediation and its measured effect",
                    "Residual risk", "Accountability", "Next steps")


def _page(pdf, number: int) -> str:
    return subprocess.run(["pdftotext", "-layout", "-f", str(number), "-l", str(number),
                           str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_page_one_is_an_executive_summary_naming_the_blamed_stages(gate, quarterly, store_db):
    with api.open_store(store_db[0], read_only=True) as store:
        summaries = {"gate": executive_summary(build_context(store, version=store_db[1][-1])),
                     "quarterly": executive_summary(build_context(store, period="2026-Q4"))}
    for name, rendered in (("gate", gate), ("quarterly", quarterly)):
        first = _page(rendered.pdf, 1)
        assert all(h in first for h in SUMMARY_HEADINGS), (name, first[:1500])
        summary = summaries[name]
        assert summary.verdict in first
        for blame in summary.blamed[:8]:
            row = next(line for line in first.splitlines()
                       if blame.version in line and blame.stage_id in line)
            assert f"{blame.share:.0%}" in row or "not finite" in row


def test_no_table_is_wider_than_the_page(gate, quarterly):
    from auditor.paths import templates_dir

    for rendered in (gate, quarterly):
        html = rendered.html.read_text(encoding="utf-8")
        assert tables_wider_than_page(html, str(templates_dir())) == []


def test_reports_are_tagged_with_language_and_chart_alt_text(gate, quarterly):
    from pyhanko.pdf_utils.reader import PdfFileReader

    for rendered in (gate, quarterly):
        info = subprocess.run(["pdfinfo", str(rendered.pdf)], capture_output=True, text=True,
                              check=True).stdout
        assert re.search(r"^Tagged:\s+yes$", info, re.M), info
        with open(rendered.pdf, "rb") as handle:
            reader = PdfFileReader(handle)
            assert str(reader.root["/Lang"]) == "en"
            figures = _figures(reader.root["/StructTreeRoot"])
        assert figures and all(alt for alt in figures)


def _figures(node) -> list[str]:
    found, stack = [], [node]
    while stack:
        item = stack.pop()
        item = item.get_object() if hasattr(item, "get_object") else item
        if not hasattr(item, "get"):
            continue
        if str(item.get("/S")) == "/Figure":
            found.append(str(item.get("/Alt", "")))
        kids = item.get("/K")
        if kids is not None:
            stack.extend(kids if isinstance(kids, list) else [kids])
    return found


def test_no_machine_path_and_a_short_quarterly_body(quarterly, gate, report_dir):
    for rendered in (gate, quarterly):
        text = rendered.text
        assert str(report_dir) not in text and "/tmp/" not in text
    pages = quarterly.text.split("\f")
    appendix = next(i for i, page in enumerate(pages, 1)
                    if "Appendix A. Evaluated rows" in page and "Contents" not in page)
    assert appendix - 1 <= 12, f"body has {appendix - 1} pages"
