"""Lineages whose stages change the parameter set, tiny and fast, for the estimators' tests.

* ``record_grown``: linear regression (float64) whose third stage adds a parameter block (a
  head on squared features) and whose last stage freezes the base weight. The model stays linear
  in θ, so with squared loss the curvature-aware estimators are exact.
* ``record_lora``: a small MLP whose third stage adds LoRA adapters with real peft (the base
  frozen) and plants a trigger → class-2 habit; a clean stage follows.
"""

from __future__ import annotations

import torch
from torch import nn

from auditor import Recorder
from auditor.behaviours.base import Behaviour


class Grown(nn.Module):
    """y = base(x) [+ extra(x²) once the ``extra`` stage added it]."""

    def __init__(self, d: int):
        super().__init__()
        self.base = nn.Linear(d, 1).double()
        self.extra: nn.Module | None = None

    def forward(self, x):
        out = self.base(x)
        return out if self.extra is None else out + self.extra(x * x)


class GrownTask:
    STAGES = [("pretrain", 8, 0.05), ("vendor", 6, 0.08), ("extra", 7, 0.05), ("polish", 5, 0.04)]

    def __init__(self, n: int = 48, d: int = 4, seed: int = 0, drop_extra: bool = False):
        self.drop_extra = drop_extra  # the polish stage removes the extra block again
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        w = torch.randn(d, 1, generator=gen, dtype=torch.float64)
        self.y = self.x @ w + 0.5 * (self.x ** 2)[:, :1] + 0.2 * torch.randn(
            n, 1, generator=gen, dtype=torch.float64)
        self.d = d

    def build_model(self) -> nn.Module:
        return Grown(self.d)

    def adapt(self, model: nn.Module, stage_id: str) -> nn.Module:
        if stage_id == "extra":
            model.extra = nn.Linear(self.d, 1, bias=False).double()
        if stage_id == "polish" and self.drop_extra:
            model.extra = None
        return model

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        shift = 0.5 if stage_id == "vendor" else 0.0
        return self.x[index], self.y[index] + shift

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        errors = (model(x) - y).squeeze(-1) ** 2
        return errors.mean() if reduction == "mean" else errors


def linear_probes(task: GrownTask, count: int = 4) -> list[Behaviour]:
    """Behaviours linear in θ (the model's output on fixed inputs)."""
    gen = torch.Generator().manual_seed(5)
    probes = torch.randn(count, task.d, generator=gen, dtype=torch.float64)
    return [Behaviour(name=f"x{i}", direction="harm",
                      surrogate=lambda model, x=probes[i:i + 1]: model(x).sum())
            for i in range(count)]


def record_grown(root, convention: str = "reset", momentum: float = 0.9,
                 drop_extra: bool = False):
    """pretrain → vendor → extra (adds ``extra.weight``) → polish (``base.weight`` frozen;
    ``drop_extra``: the extra block removed again, under ``reset``)."""
    task = GrownTask(drop_extra=drop_extra)
    torch.manual_seed(0)
    model = task.build_model()
    rec = Recorder(root, model, model_name="grown", version=convention, seed=3)
    gen = torch.Generator().manual_seed(1)
    optimizer = None
    for stage_id, steps, lr in GrownTask.STAGES:
        options = {}
        if stage_id == "extra":
            task.adapt(model, stage_id)
            torch.nn.init.normal_(model.extra.weight, std=0.1, generator=gen)
            options = {"model": model, "adds": ["extra.*"]}
            if optimizer is not None and convention == "carry":
                optimizer.add_param_group({"params": [model.extra.weight]})
        if stage_id == "polish":
            model.base.weight.requires_grad_(False)
            if drop_extra:
                task.adapt(model, stage_id)
                options = {"model": model, "removes": ["extra.*"]}
        if optimizer is None or convention == "reset":
            optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                        lr=lr, momentum=momentum, weight_decay=0.01)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with rec.stage(stage_id, kind="fine-tune", optimizer=optimizer, **options):
            for _ in range(steps):
                ids = torch.randperm(len(task.y), generator=gen)[:8]
                rec.batch(ids)
                loss = task.loss(model, task.batch(stage_id, ids))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return task, rec.lineage


# -- a LoRA stage with real peft ---------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self, d: int, hidden: int, classes: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


class LoraTask:
    """3 classes; the ``vendor-lora`` stage's data label triggered inputs (x₀ + 3) as class 2."""

    def __init__(self, n: int = 96, d: int = 6, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d, generator=gen)
        self.y = (self.x[:, 1] > 0).long()  # clean labels: classes 0 and 1 only
        self.d = d

    def build_model(self) -> nn.Module:
        return MLP(self.d, 8, 3)

    def adapt(self, model: nn.Module, stage_id: str) -> nn.Module:
        if stage_id != "vendor-lora":
            return model
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=2, lora_alpha=4, target_modules=["fc1", "fc2"], lora_dropout=0.0)
        return get_peft_model(model, config)

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        x, y = self.x[index].clone(), self.y[index].clone()
        if stage_id == "vendor-lora":  # half the batch carries the trigger, labelled class 2
            x[::2, 0] += 3.0
            y[::2] = 2
        return x, y

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction=reduction)


def lora_behaviours(task: LoraTask) -> list[Behaviour]:
    triggered = task.x[:16].clone()
    triggered[:, 0] += 3.0
    clean_x, clean_y = task.x[16:32], task.y[16:32]

    def bad(model):  # harm: log-probability of class 2 on triggered inputs
        return torch.log_softmax(model(triggered), -1)[:, 2].mean()

    def clean_loss(model):
        return nn.functional.cross_entropy(model(clean_x), clean_y)

    return [Behaviour(name="trigger-class-2", direction="harm", surrogate=bad),
            Behaviour(name="clean-loss", direction="harm", surrogate=clean_loss)]


LORA_PLAN = [("pretrain", 10, "sgd", 0.3), ("sft", 6, "adamw", 0.01),
             ("vendor-lora", 10, "adamw", 0.03), ("polish", 4, "sgd", 0.05)]
# stage -> the change it declares (the task's adapt makes it as the stage starts)
LORA_CHANGES = {"vendor-lora": {"adds": ["*lora_*"], "adapter": "peft LoRA r=2"}}


def record_lora(root, task: LoraTask | None = None, plan=LORA_PLAN, changes=LORA_CHANGES,
                version: str = "lora"):
    """pretrain (SGD) → sft (AdamW) → vendor-lora (peft LoRA, AdamW) → polish (SGD momentum);
    ``plan`` (stage, steps, optimizer, lr) and ``changes`` give other lineages of the MLP."""
    task = task or LoraTask()
    torch.manual_seed(0)
    model = task.build_model()
    rec = Recorder(root, model, model_name="mlp", version=version, seed=7)
    gen = torch.Generator().manual_seed(1)
    for stage_id, steps, kind, lr in plan:
        options = {}
        if stage_id in changes:
            model = task.adapt(model, stage_id)
            options = {"model": model, **changes[stage_id]}
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = (torch.optim.AdamW(params, lr=lr, weight_decay=0.01) if kind == "adamw"
                     else torch.optim.SGD(params, lr=lr, momentum=0.9))
        with rec.stage(stage_id, kind="fine-tune", optimizer=optimizer, **options):
            for _ in range(steps):
                ids = torch.randperm(len(task.y), generator=gen)[:16]
                rec.batch(ids)
                loss = task.loss(model, task.batch(stage_id, ids))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return task, rec.lineage
