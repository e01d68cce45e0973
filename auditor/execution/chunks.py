"""A streamed estimator's groups of tensors as Ray tasks (docs/scaling.md#several-workers).

``ray_chunk_map`` is the ``chunk_map`` the worker gives an estimator whose ``workers`` setting
asks for more than one group when it runs inside Ray: one task per group (a CPU each), the
results returned in the groups' order (``ray.get`` of the list). Inside a Ray task the nested
tasks run on the same cluster; a task blocked in ``ray.get`` lends its CPU to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def ray_chunk_map(fn: Callable[[Any], Any], items: list) -> list:
    import ray

    remote = ray.remote(fn).options(num_cpus=1)
    return ray.get([remote.remote(item) for item in items])


def chunk_map_here() -> Callable | None:
    """The Ray map when this process runs inside Ray (a worker or a driver that started it),
    else None (the estimator runs its groups in this process)."""
    import sys

    ray = sys.modules.get("ray")
    return ray_chunk_map if ray is not None and ray.is_initialized() else None
