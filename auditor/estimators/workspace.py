"""The bounded working memory of the streamed estimators (docs/scaling.md#what-streams).

A streamed estimator holds, per parameter tensor, a handful of buffers per stage (``aa``: each
earlier stage's displacement and momentum change; ``naive``: each stage's difference). A tensor
larger than the workspace is cut into ranges of rows of its first dimension, each read alone
from the checkpoints (``LazyCheckpoint.get(name, rows)``), so the memory is the workspace
whatever K, the number of steps, or the size of the largest tensor.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Sequence

MiB = 2**20
AUTO_MIN, AUTO_MAX = 1 * MiB, 256 * MiB


def workspace_bytes(setting_mb: float, parameters: int) -> int:
    """The workspace in bytes: ``setting_mb`` MiB, or when 0 (auto) a quarter of the float32
    model's bytes (one byte per parameter), between 1 and 256 MiB."""
    if setting_mb > 0:
        return int(setting_mb * MiB)
    return min(AUTO_MAX, max(AUTO_MIN, parameters))


def chunk_elements(workspace: int, buffers: int, itemsize: int) -> int:
    """Elements per chunk when ``buffers`` chunks of ``itemsize`` bytes must fit ``workspace``."""
    return max(1, workspace // (buffers * itemsize))


def row_chunks(shape: Sequence[int], elements: int) -> list[slice | None]:
    """Ranges of rows (first dimension) of a tensor of ``shape`` holding at most ``elements``
    values each (at least one row); ``[None]``: the tensor is one chunk."""
    numel = math.prod(shape)
    if not shape or numel <= elements or shape[0] <= 1:
        return [None]
    per = max(1, elements // max(1, numel // shape[0]))
    return [slice(start, min(start + per, shape[0])) for start in range(0, shape[0], per)]


def chunk_shape(shape: Sequence[int], rows: slice | None) -> tuple[int, ...]:
    return tuple(shape) if rows is None else (rows.stop - rows.start, *shape[1:])


def release_freed_memory() -> None:
    """Hand memory freed by the streamed buffers back to the system (glibc keeps freed heap
    pages otherwise, so the process's resident memory would keep the workspace's high water
    mark); a no-op where the C library has no ``malloc_trim``."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own C library (glibc)
    except (OSError, AttributeError):
        return None
