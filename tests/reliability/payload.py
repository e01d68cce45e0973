"""Entry points a hostile lineage may name: each leaves the file PWNED in the working folder if
it ever runs (the harness checks that it never does)."""

from __future__ import annotations

from pathlib import Path

from corpus import PWNED


def touch_pwned() -> str:
    Path(PWNED).write_text("a lineage ran code")
    return "pwned"


def touch_pwned_with(path: str) -> None:
    Path(path, PWNED).write_text("a lineage ran code")


def behaviours():
    Path(PWNED).write_text("behaviours were loaded for a refused lineage")
    return []
