"""Progress: a Rich bar with done / failed / ETA on a terminal, one line per item in logs."""

from __future__ import annotations

import io

from rich.console import Console

from auditor.execution.items import WorkItem
from auditor.execution.outcome import Outcome
from auditor.execution.progress import AuditProgress

ITEM = WorkItem("tiny@v1", "", "file:///tmp", (), "t:t", "pkg.probes:sets", "aa", "0" * 16)


def _run(console: Console) -> AuditProgress:
    with AuditProgress(3, console=console) as progress:
        progress.advance(Outcome(ITEM, seconds=0.5))
        progress.advance(Outcome(ITEM, error="EstimatorError: no optimizer log"))
    return progress


def test_terminal_bar_counts_done_and_failed():
    out = io.StringIO()
    progress = _run(Console(file=out, force_terminal=True, width=120))
    text = out.getvalue()
    assert (progress.done, progress.failed) == (1, 1)
    assert "2/3" in text and "1 failed" in text and "ETA" in text


def test_log_lines_when_not_a_terminal():
    out = io.StringIO()
    _run(Console(file=out, force_terminal=False, width=120))
    lines = out.getvalue().splitlines()
    assert lines == ["[1/3] tiny@v1 aa probes done in 0.50 s",
                     "[2/3] tiny@v1 aa probes FAILED: EstimatorError: no optimizer log"]
