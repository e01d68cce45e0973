"""Lineages whose stage starts by merging an adapter pair into its base weight, tiny and fast.

* ``record_merged``: linear regression (float64, 2 outputs) whose third stage wraps the layer
  with a LoRA-like factor pair (named as peft names them, so the Recorder recognises the merge;
  no peft needed) and whose last stage starts by merging it, W' = W + s·B·A. With the A factor
  frozen the model stays linear in what trains, so with squared loss the curvature-aware
  estimators are exact; with A trained too, the adapter stage's own effect still is.
* ``record_lora_merged``: real peft: the MLP of tests.support.grown, a LoRA stage that plants a
  trigger habit, then a stage that starts with ``merge_and_unload()``.
"""

from __future__ import annotations

import torch
from torch import nn

from auditor import Recorder
from auditor.behaviours.base import Behaviour
from tests.support.grown import LORA_CHANGES, LORA_PLAN, LoraTask, record_lora


class Factored(nn.Module):
    """y = base_layer(x) + s·B·A·x, the factors under peft's names (lora_A.default, ...)."""

    def __init__(self, base: nn.Linear, rank: int, scale: float):
        super().__init__()
        self.base_layer, self.scale = base, scale
        self.lora_A = nn.ModuleDict({"default": nn.Linear(base.in_features, rank, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(rank, base.out_features, bias=False)})
        self.double()

    def forward(self, x):
        return self.base_layer(x) + self.scale * self.lora_B["default"](self.lora_A["default"](x))

    def merged(self) -> nn.Linear:
        """W += s·B·A in place (like peft's merge_and_unload): the base layer, merged."""
        with torch.no_grad():
            delta = self.lora_B["default"].weight @ self.lora_A["default"].weight
            self.base_layer.weight += self.scale * delta
        return self.base_layer


class LinearNet(nn.Module):
    def __init__(self, d: int, out: int):
        super().__init__()
        self.lin = nn.Linear(d, out).double()

    def forward(self, x):
        return self.lin(x)


class MergedTask:
    STAGES = [("pretrain", 8, 0.05), ("vendor", 6, 0.08), ("adapter", 7, 0.05),
              ("merged", 5, 0.04)]
    SCALE = 1.5

    def __init__(self, n: int = 48, d: int = 4, out: int = 2, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        w = torch.randn(d, out, generator=gen, dtype=torch.float64)
        self.y = self.x @ w + 0.2 * torch.randn(n, out, generator=gen, dtype=torch.float64)
        self.d, self.out = d, out

    def build_model(self) -> nn.Module:
        return LinearNet(self.d, self.out)

    def adapt(self, model: nn.Module, stage_id: str) -> nn.Module:
        if stage_id == "adapter":
            model.lin = Factored(model.lin, 2, self.SCALE)
        if stage_id == "merged":
            model.lin = model.lin.merged()
        return model

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        shift = 0.5 if stage_id in ("vendor", "adapter") else 0.0
        return self.x[index], self.y[index] + shift

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        errors = ((model(x) - y) ** 2).sum(-1)
        return errors.mean() if reduction == "mean" else errors


def output_probes(task: MergedTask, count: int = 3) -> list[Behaviour]:
    """Behaviours linear in the merged model's θ (its outputs on fixed inputs)."""
    gen = torch.Generator().manual_seed(5)
    probes = torch.randn(count, task.d, generator=gen, dtype=torch.float64)
    return [Behaviour(name=f"x{i}", direction="harm",
                      surrogate=lambda model, x=probes[i:i + 1], i=i: model(x)[0, i % 2])
            for i in range(count)]


def record_merged(root, train_a: bool = False):
    """pretrain → vendor → adapter (adds the factor pair; A trained only with ``train_a``) →
    merged (starts with W' = W + s·B·A, the factors removed). SGD with momentum, ``reset``."""
    task = MergedTask()
    torch.manual_seed(0)
    model = task.build_model()
    rec = Recorder(root, model, model_name="merged", version="a" if train_a else "b", seed=3)
    gen = torch.Generator().manual_seed(1)
    for stage_id, steps, lr in MergedTask.STAGES:
        options = {}
        if stage_id == "adapter":
            task.adapt(model, stage_id)
            factors = model.lin
            torch.nn.init.normal_(factors.lora_B["default"].weight, std=0.1, generator=gen)
            factors.lora_A["default"].weight.requires_grad_(train_a)
            options = {"model": model, "adds": ["*lora_*"]}
        if stage_id == "merged":
            task.adapt(model, stage_id)
            options = {"model": model, "removes": ["*lora_*"], "recomputes": ["lin.weight"]}
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                    lr=lr, momentum=0.9, weight_decay=0.01)
        with rec.stage(stage_id, kind="fine-tune", optimizer=optimizer, **options):
            for _ in range(steps):
                ids = torch.randperm(len(task.y), generator=gen)[:8]
                rec.batch(ids)
                loss = task.loss(model, task.batch(stage_id, ids))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return task, rec.lineage


# -- real peft: merge_and_unload --------------------------------------------------------------

class LoraMergeTask(LoraTask):
    def adapt(self, model: nn.Module, stage_id: str) -> nn.Module:
        if stage_id == "merged":  # the merged base weights train again
            merged = model.merge_and_unload()
            merged.requires_grad_(True)
            return merged
        return super().adapt(model, stage_id)


def record_lora_merged(root):
    """pretrain (SGD) → sft (AdamW) → vendor-lora (peft LoRA, AdamW; plants the trigger) →
    merged (starts with merge_and_unload(), AdamW)."""
    plan = [*LORA_PLAN[:3], ("merged", 4, "adamw", 0.005)]
    changes = {**LORA_CHANGES, "merged": {"removes": ["*lora_*"], "recomputes": ["*.weight"]}}
    return record_lora(root, LoraMergeTask(), plan, changes, version="merged")
