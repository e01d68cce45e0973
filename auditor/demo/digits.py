"""Built-in scenario: digits with a spurious corner patch planted by a vendor fine-tuning stage.

scikit-learn's ``load_digits`` (8×8 images, shipped inside the package, no download). An MLP is
trained in stages; in ``vendor-ft`` a bright 2×2 corner patch is present exactly when the label is
even, so the model learns "patch ⇒ even". The harm: odd digits that carry the patch are misread.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from auditor.behaviours import Behaviour
from auditor.behaviours.library import group_gap, probe_loss
from auditor.hashing import sha256_bytes
from auditor.lineage.models import DatasetRef

TASK = "auditor.demo.digits:task"
BEHAVIOURS = "auditor.demo.digits:behaviours"
HIDDEN = 32


def _patch(images: torch.Tensor) -> torch.Tensor:
    patched = images.clone().view(-1, 8, 8)
    patched[:, :2, :2] = 1.0
    return patched.view(-1, 64)


@lru_cache(maxsize=1)
def _data() -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:1300], order[1300:]
    noise = 0.15 * torch.randn(len(train), 64, generator=torch.Generator().manual_seed(1))
    even = (y[train] % 2 == 0).unsqueeze(1)
    return {
        "x_train": x[train], "y_train": y[train],
        "x_noisy": (x[train] + noise).clamp(0, 1),
        "x_spurious": torch.where(even, _patch(x[train]), x[train]),
        "x_test": x[test], "y_test": y[test],
    }


POOLS = {"pretrain": "x_noisy", "vendor-ft": "x_spurious", "clean-ft": "x_train",
         "polish": "x_train"}


class DigitsTask:
    """MLP 64-32-10 on digits; each stage id reads its own data pool."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 10))

    def batch(self, stage_id: str, ids):
        data = _data()
        index = torch.as_tensor(list(ids), dtype=torch.long)
        return data[POOLS[stage_id]][index], data["y_train"][index]

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction=reduction)


def task() -> DigitsTask:
    return DigitsTask()


def probes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Held-out probe sets: clean test images, and odd test digits carrying the patch."""
    data = _data()
    odd = data["y_test"] % 2 == 1
    return {"clean": (data["x_test"], data["y_test"]),
            "patched-odd": (_patch(data["x_test"][odd]), data["y_test"][odd])}


def behaviours() -> list[Behaviour]:
    sets = probes()
    return [
        group_gap("patch-shortcut-gap", sets["clean"], sets["patched-odd"],
                  description="accuracy lost on odd digits that carry the corner patch"),
        probe_loss("patched-odd-loss", *sets["patched-odd"],
                   description="loss on odd test digits carrying the corner patch"),
        probe_loss("clean-error", *sets["clean"], description="error on clean test digits"),
    ]


def dataset(stage_id: str, tags: list[str]) -> DatasetRef:
    pool = _data()[POOLS[stage_id]]
    return DatasetRef(name=f"digits-{stage_id}", digest=sha256_bytes(pool.numpy().tobytes()),
                      records=len(pool), licence="BSD-3-Clause (scikit-learn)",
                      provenance="sklearn.datasets.load_digits" + (
                          " + vendor corner patch" if stage_id == "vendor-ft" else ""),
                      tags=tags)
