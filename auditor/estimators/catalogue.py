"""The registry as documentation: docs/estimators.md's settings table is generated here.

    python -m auditor.estimators.catalogue            # print the table
    python -m auditor.estimators.catalogue --write docs/estimators.md

tests/estimators/test_registry.py checks that the page holds exactly this table, so the names
and settings a user reads are the ones ``get_estimator`` takes.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from auditor.estimators.registry import DEFAULT, ESTIMATORS

BEGIN = "<!-- settings table: python -m auditor.estimators.catalogue --write docs/estimators.md -->"
END = "<!-- end of the settings table -->"


def settings_table() -> str:
    """One row per setting of every registered estimator."""
    rows = ["| estimator | setting | default | in the config hash | what it does |",
            "| --- | --- | --- | --- | --- |"]
    for name, cls in ESTIMATORS.items():
        label = f"`{name}` (default)" if name == DEFAULT else f"`{name}`"
        for item in fields(cls.Settings):
            hashed = item.metadata.get("hashed", True)
            hashed = f"as `{hashed}`" if isinstance(hashed, str) else "yes" if hashed else "no"
            help_text = item.metadata["help"].replace("|", "\\|")
            rows.append(f"| {label} | `{item.name}` | `{item.default!r}` | {hashed} | "
                        f"{help_text} |")
    return "\n".join(rows) + "\n"


def with_table(page: str) -> str:
    """``page`` with the block between BEGIN and END replaced by the current table."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:start] + "\n" + settings_table() + page[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="rewrite the table in this Markdown page")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(with_table(args.write.read_text()))
    else:
        print(settings_table(), end="")


if __name__ == "__main__":
    main()
