"""Progress of an audit: a Rich bar (done / failed / ETA) on a terminal, one line per item in
logs (Ray Job logs, CI), nothing when quiet."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from auditor.execution.outcome import Outcome


class AuditProgress:
    def __init__(self, total: int, *, enabled: bool = True, console: Console | None = None):
        self.total, self.enabled = total, enabled and total > 0
        self.console = console or Console(stderr=True, highlight=False)
        self.done = self.failed = 0
        self._bar: Progress | None = None

    def __enter__(self) -> AuditProgress:
        if self.enabled and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]audit"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
            self._bar.start()
            self._task = self._bar.add_task("audit", total=self.total, failed=0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, outcome: Outcome) -> None:
        self.done += outcome.ok
        self.failed += not outcome.ok
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)
        elif self.enabled:
            status = f"done in {outcome.seconds:.2f} s" if outcome.ok else f"FAILED: {outcome.error}"
            self.console.print(f"[{self.done + self.failed}/{self.total}] {outcome.item.label} "
                               f"{status}", markup=False, soft_wrap=True)
