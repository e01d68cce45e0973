"""``RayExecutor``: work items as Ray tasks. Ray is imported only when this executor runs.

Tasks get plain data (the work item: lineage JSON, checkpoint URIs and hashes) and return score
rows; the driver alone writes DuckDB. A task whose worker dies is retried ``max_retries`` times;
an exception raised by the estimator is not retried (it would fail again) and becomes a failed
outcome. Results are drained with ``ray.wait`` in batches, with at most ``max_in_flight`` tasks
submitted, so the driver's memory stays flat however many versions the audit has.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from auditor.errors import ExecutionError
from auditor.execution.items import WorkItem
from auditor.execution.outcome import Outcome, WorkerFn

LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


def _timed(fn: WorkerFn, item: WorkItem) -> tuple[Any, float]:
    started = time.perf_counter()
    rows = fn(item)
    return rows, time.perf_counter() - started


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 num_gpus: float | None = None, max_retries: int = 3,
                 max_in_flight: int | None = None):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.max_retries, self.max_in_flight = max_retries, max_in_flight
        self._started_here = False

    def _ray(self):
        import ray

        if not ray.is_initialized():
            self._init(ray)
        return ray

    def _init(self, ray) -> None:
        common = {"include_dashboard": False, "logging_level": logging.WARNING,
                  "log_to_driver": True}
        try:
            if self.address or os.environ.get("RAY_ADDRESS"):
                ray.init(address=self.address, **common)
            else:  # a fresh local instance, even when a `ray start` one is running here
                ray.init(address="local", num_cpus=self.num_cpus,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a local instance"
            raise ExecutionError(f"cannot start or reach Ray at {where}: {exc}") from exc
        self._started_here = True

    def gpus_per_task(self, ray) -> float:
        if self.num_gpus is not None:
            return self.num_gpus
        return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0

    def gpus_for(self, item: WorkItem, gpus: float) -> float:
        """GPUs to request for ``item``: the executor's share when it has GPUs to give and the
        item would use one (a replay unit pinned to ``device: cpu`` would not), else 0."""
        return gpus if gpus > 0 and getattr(item, "uses_gpu", True) else 0.0

    def _in_flight_limit(self, ray, gpus: float) -> int:
        if self.max_in_flight:
            return self.max_in_flight
        resources = ray.cluster_resources()
        slots = resources.get("GPU", 0) / gpus if gpus else resources.get("CPU", 1)
        return max(2, int(2 * slots))

    def map(self, fn: WorkerFn, items: Iterable[WorkItem]) -> Iterator[Outcome]:
        ray = self._ray()
        gpus = self.gpus_per_task(ray)
        remote = ray.remote(_timed)
        tasks = {g: remote.options(num_cpus=1, num_gpus=g, max_retries=self.max_retries,
                                   retry_exceptions=False) for g in {0.0, gpus}}
        fn_ref = ray.put(fn)
        limit, pending, queue = self._in_flight_limit(ray, gpus), {}, iter(items)
        self._submit(tasks, gpus, fn_ref, queue, pending, limit)
        while pending:
            for ref in _ready_batch(ray, list(pending)):
                yield self._outcome(ray, ref, pending.pop(ref))
            self._submit(tasks, gpus, fn_ref, queue, pending, limit)

    def _submit(self, tasks: dict, gpus: float, fn_ref, queue: Iterator[WorkItem],
                pending: dict, limit: int) -> None:
        while len(pending) < limit:
            item = next(queue, None)
            if item is None:
                return
            pending[tasks[self.gpus_for(item, gpus)].remote(fn_ref, item)] = item

    @staticmethod
    def _outcome(ray, ref, item: WorkItem) -> Outcome:
        try:
            rows, seconds = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return Outcome(item, error=f"{type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as exc:
            return Outcome(item, error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        return Outcome(item, rows=rows, seconds=seconds)

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False


def _ready_batch(ray, refs: list) -> list:
    """Block until one result is ready, then take every other one already ready."""
    ready, rest = ray.wait(refs, num_returns=1)
    if rest:
        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
        ready += more
    return ready
