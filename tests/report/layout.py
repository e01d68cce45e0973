"""Boxes of a rendered report in WeasyPrint's layout: tables that stick out of the page."""

from __future__ import annotations


def _tables(box):
    from weasyprint.formatting_structure import boxes

    if isinstance(box, boxes.TableBox):
        yield box
    for child in getattr(box, "children", []) or []:
        yield from _tables(child)


def tables_wider_than_page(html: str, base_url: str) -> list[str]:
    """'page N: table … overflows by X px' for every table box whose border box ends right of
    the page's content area (or starts left of it)."""
    from weasyprint import HTML

    document = HTML(string=html, base_url=base_url).render()
    problems = []
    for number, page in enumerate(document.pages, 1):
        box = page._page_box
        left = box.margin_left + box.padding_left + box.border_left_width
        right = left + box.width
        for table in _tables(box):
            start = table.border_box_x()
            end = start + table.border_width()
            if end > right + 0.5 or start < left - 0.5:
                head = " ".join(table.element.itertext())[:60] if table.element is not None \
                    else "?"
                problems.append(f"page {number}: table '{head}' spans {start:.0f}–{end:.0f} px, "
                                f"page content {left:.0f}–{right:.0f} px")
    return problems
