"""Every reference to a docs page — ``docs/NAME.md`` or ``docs/NAME.md#anchor`` in the code, a
relative link between pages — names a page and a heading that exist in this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
IN_CODE = re.compile(r"docs/([\w-]+\.md)(#[\w-]+)?")
IN_DOCS = re.compile(r"\]\(([\w-]+\.md)(#[\w-]+)?\)")


def slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines()
            if line.startswith("#")}


def references() -> list[tuple[str, str, str | None]]:
    found = []
    sources = [*(ROOT / "auditor").rglob("*.py"), *(ROOT / "bench").glob("*.py"),
               *(ROOT / "scripts").glob("*.py"), ROOT / "README.md"]
    for path in sources:
        for page, anchor in IN_CODE.findall(path.read_text()):
            found.append((str(path.relative_to(ROOT)), page, anchor or None))
    for path in DOCS.glob("*.md"):
        for pattern in (IN_CODE, IN_DOCS):
            for page, anchor in pattern.findall(path.read_text()):
                found.append((str(path.relative_to(ROOT)), page, anchor or None))
    return found


@pytest.mark.parametrize(("source", "page", "anchor"), references())
def test_reference_resolves(source, page, anchor):
    target = DOCS / page
    assert target.is_file(), f"{source} cites {page}, which is not in docs/"
    if anchor:
        assert anchor[1:] in anchors(target), f"{source} cites {page}{anchor}: no such heading"


def test_the_estimators_cite_no_numbered_sections():
    """Section numbers of design notes outside the repository do not resolve: cite anchors."""
    cited = [str(p.relative_to(ROOT)) for p in (ROOT / "auditor").rglob("*.py")
             if "§" in p.read_text()]
    cited += [p.name for p in DOCS.glob("*.md") if "§" in p.read_text()]
    assert not cited, cited
