"""What an executor yields per work item: its rows, or why it failed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from auditor.execution.items import WorkItem

WorkerFn = Callable[[WorkItem], pa.Table]


@dataclass(frozen=True)
class Outcome:
    item: WorkItem
    rows: pa.Table | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    name: str

    def map(self, fn: WorkerFn, items: Iterable[WorkItem]) -> Iterator[Outcome]:
        """Run ``fn`` on every item; yield outcomes as they complete (any order)."""

    def close(self) -> None: ...
