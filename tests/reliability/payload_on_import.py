"""A module whose import alone is the payload: a lineage naming it must be refused before it is
imported."""

from pathlib import Path

from corpus import PWNED

Path(PWNED).write_text("imported by a lineage")


def task():
    return None
