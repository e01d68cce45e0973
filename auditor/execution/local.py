"""``LocalExecutor``: runs work items one after another in this process."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from auditor.execution.items import WorkItem
from auditor.execution.outcome import Outcome, WorkerFn


class LocalExecutor:
    name = "local"

    def map(self, fn: WorkerFn, items: Iterable[WorkItem]) -> Iterator[Outcome]:
        for item in items:
            started = time.perf_counter()
            try:
                rows = fn(item)
            except Exception as exc:  # an item's failure is an outcome; the audit goes on
                yield Outcome(item, error=f"{type(exc).__name__}: {exc}",
                              seconds=time.perf_counter() - started)
                continue
            yield Outcome(item, rows=rows, seconds=time.perf_counter() - started)

    def close(self) -> None:
        return None
