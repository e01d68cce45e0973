"""Reporting periods: ``2026``, ``2026-Q4`` or ``2026-11`` as half-open UTC intervals."""

from __future__ import annotations

import re
from datetime import datetime

from auditor.errors import InputError

_PERIOD = re.compile(r"^(?P<year>\d{4})(?:-Q(?P<quarter>[1-4])|-(?P<month>0[1-9]|1[0-2]))?$")


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """(start, end) of a period, naive UTC, ``start <= t < end``."""
    match = _PERIOD.match(period.strip())
    if not match:
        raise InputError(f"period {period!r} is not YYYY, YYYY-Qn or YYYY-MM (e.g. 2026-Q4)")
    year = int(match["year"])
    if match["quarter"]:
        first = 3 * (int(match["quarter"]) - 1) + 1
        return _month_start(year, first), _month_start(year, first + 3)
    if match["month"]:
        month = int(match["month"])
        return _month_start(year, month), _month_start(year, month + 1)
    return datetime(year, 1, 1), datetime(year + 1, 1, 1)
