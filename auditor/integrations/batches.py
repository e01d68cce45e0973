"""Example ids of the batches a framework's data loader draws, without changing what it draws.

``RecordedData(dataset, collate)`` gives a dataset that notes the index of every example fetched
and a collate function that closes each micro-batch: the ids of the examples it collates, in
order, wait in a queue until the step that trains on them takes them (``take``). Data loaders
that fetch ahead (accelerate does, by one batch) leave those batches queued for the next step.
Loading must happen in the training process (``num_workers=0``): ids noted in a worker process
never reach it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import torch

from auditor.errors import LineageError


class _IndexedDataset(torch.utils.data.Dataset):
    def __init__(self, data: Any, fetched: list[int]):
        self.data, self._fetched = data, fetched

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        self._fetched.append(int(index))
        return self.data[index]


class RecordedData:
    def __init__(self, dataset: Any, collate: Callable[[list], Any] | None = None):
        self._fetched: list[int] = []
        self._queue: deque[list[int]] = deque()
        self.dataset = _IndexedDataset(dataset, self._fetched)
        self._collate = collate

    def collate(self, features: list) -> Any:
        """Collate like the wrapped function, noting the micro-batch's example ids."""
        n = len(features)
        if len(self._fetched) < n:
            raise LineageError("a batch was collated from examples fetched outside the recorded "
                               "dataset (use RecordedData.dataset and num_workers=0)")
        self._queue.append(self._fetched[:n])
        del self._fetched[:n]
        return self._collate(features) if self._collate is not None else features

    def take(self, micro_batches: int) -> tuple[list[int], list[int]]:
        """The ids of the next ``micro_batches`` micro-batches, and the size of each."""
        if len(self._queue) < micro_batches:
            raise LineageError(f"the step trained on {micro_batches} micro-batch(es) but only "
                               f"{len(self._queue)} were collated through the recorded data")
        chunks = [self._queue.popleft() for _ in range(micro_batches)]
        return [i for chunk in chunks for i in chunk], [len(chunk) for chunk in chunks]

    def reset(self) -> None:
        """Forget batches fetched ahead (a new ``train()`` call builds a new data loader)."""
        self._fetched.clear()
        self._queue.clear()


def count_forwards(model: torch.nn.Module, counter: list[int]):
    """A forward pre-hook counting ``model``'s training forward passes (one per micro-batch)."""
    def hook(module, args, kwargs=None):
        if module.training:
            counter[0] += 1

    return model.register_forward_pre_hook(hook)


def collated_ids(chunks: Sequence[Sequence[int]]) -> list[int]:
    return [int(i) for chunk in chunks for i in chunk]
