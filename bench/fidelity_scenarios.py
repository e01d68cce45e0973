"""Fidelity-only scenarios beside the demo's (auditor/demo): digits trained with AdamW, a
covariate-shift stage, and a longer, wider digits run for the cost ratio.

Each scenario is a recorded version plus its behaviours: per-example losses (pooled fidelity)
and one group behaviour (top-1 blamed stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import torch
from torch import nn

from auditor.behaviours.base import Behaviour
from auditor.behaviours.library import example_losses, group_gap, probe_loss
from auditor.demo import digits, plans, toxicity
from auditor.demo.record import StagePlan, VersionPlan, utc
from auditor.hashing import sha256_bytes
from auditor.lineage.models import DatasetRef

PER_GROUP = 25  # per-example behaviours taken from each probe set


@dataclass
class Scenario:
    name: str
    plan: VersionPlan
    group: str  # the group behaviour whose top-1 stage is compared
    planted: str  # the stage the scenario plants (expected top-1 for ``group``)
    behaviours: callable

    def task(self):
        return self.plan.scenario.task()


# -- digits: probes shared by all digits variants -------------------------------------------

def _digits_examples() -> list[Behaviour]:
    sets = digits.probes()
    (xc, yc), (xp, yp) = sets["clean"], sets["patched-odd"]
    return example_losses("clean", xc[:PER_GROUP], yc[:PER_GROUP]) + \
        example_losses("patched", xp[:PER_GROUP], yp[:PER_GROUP])


def digits_behaviours() -> list[Behaviour]:
    return digits.behaviours()[:1] + _digits_examples()


def digits_adamw_plan() -> VersionPlan:
    adamw = {"optimizer": "adamw", "weight_decay": 0.01}
    stages = [StagePlan("pretrain", "pretrain", steps=150, lr=1e-2, **adamw),
              StagePlan("vendor-ft", "fine-tune", steps=80, lr=5e-3, fresh_optimizer=False,
                        **adamw),
              StagePlan("clean-ft", "fine-tune", steps=40, lr=5e-3, **adamw),
              StagePlan("polish", "alignment", steps=20, lr=1e-3, fresh_optimizer=False,
                        **adamw)]
    return VersionPlan(digits, "digits-adamw", "v2", utc(2026, 11, 3), stages)


# -- digits with a covariate-shift stage -----------------------------------------------------

def _shift(images: torch.Tensor) -> torch.Tensor:
    """Covariate shift: every image moved two pixels right and brightened."""
    moved = torch.roll(images.view(-1, 8, 8), shifts=2, dims=2)
    moved[:, :, :2] = 0.0
    return (0.3 + 0.7 * moved).reshape(-1, 64)


@lru_cache(maxsize=1)
def _shifted_pool() -> torch.Tensor:
    return _shift(digits._data()["x_train"])


class ShiftTask(digits.DigitsTask):
    def batch(self, stage_id: str, ids):
        if stage_id != "shift-ft":
            return super().batch(stage_id, ids)
        index = torch.as_tensor(list(ids), dtype=torch.long)
        return _shifted_pool()[index], digits._data()["y_train"][index]


def _shift_dataset(stage_id: str, tags: list[str]) -> DatasetRef:
    if stage_id != "shift-ft":
        return digits.dataset(stage_id, tags)
    pool = _shifted_pool()
    return DatasetRef(name="digits-shifted", digest=sha256_bytes(pool.numpy().tobytes()),
                      records=len(pool), provenance="load_digits, shifted", tags=tags)


SHIFT = SimpleNamespace(TASK="bench.fidelity_scenarios:shift_task", task=ShiftTask,
                        dataset=_shift_dataset)


def shift_task() -> ShiftTask:
    return ShiftTask()


def shift_plan() -> VersionPlan:
    stages = [StagePlan("pretrain", "pretrain", steps=150, lr=0.1),
              StagePlan("shift-ft", "fine-tune", steps=80, lr=0.05, fresh_optimizer=False),
              StagePlan("clean-ft", "fine-tune", steps=40, lr=0.05),
              StagePlan("polish", "alignment", steps=20, lr=0.01, fresh_optimizer=False)]
    return VersionPlan(SHIFT, "digits-shift", "v1", utc(2026, 11, 5), stages)


def shift_behaviours() -> list[Behaviour]:
    xc, yc = digits.probes()["clean"]
    xs = _shift(xc)
    group = probe_loss("shifted-loss", xs, yc, description="loss on shifted test digits")
    return [group] + example_losses("shifted", xs[:PER_GROUP], yc[:PER_GROUP]) + \
        example_losses("clean", xc[:PER_GROUP], yc[:PER_GROUP])


# -- a longer, wider digits run (the cost ratio grows with the steps replay must redo) -------

class WideDigitsTask(digits.DigitsTask):
    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 10))


WIDE = SimpleNamespace(TASK="bench.fidelity_scenarios:wide_task", task=WideDigitsTask,
                       dataset=digits.dataset)


def wide_task() -> WideDigitsTask:
    return WideDigitsTask()


def long_plan(scale: int = 20) -> VersionPlan:
    stages = [StagePlan("pretrain", "pretrain", steps=150 * scale, lr=0.1),
              StagePlan("vendor-ft", "fine-tune", steps=80 * scale, lr=0.05,
                        fresh_optimizer=False),
              StagePlan("clean-ft", "fine-tune", steps=40 * scale, lr=0.05),
              StagePlan("polish", "alignment", steps=20 * scale, lr=0.01,
                        fresh_optimizer=False)]
    return VersionPlan(WIDE, "digits-long", "v2", utc(2026, 11, 9), stages)


# -- toxicity ---------------------------------------------------------------------------------

def toxicity_behaviours() -> list[Behaviour]:
    sets = toxicity.probes()
    (xi, yi), (xg, yg) = sets["identity-nontoxic"], sets["general"]
    return toxicity.behaviours()[:1] + example_losses("identity", xi[:PER_GROUP], yi[:PER_GROUP]) \
        + example_losses("general", xg[:PER_GROUP], yg[:PER_GROUP])


# -- charlm: the tiny GPT-2 language-model scenario (needs the hf extra) ----------------------

def charlm_behaviours() -> list[Behaviour]:
    from auditor.behaviours.language import continuation_probability
    from auditor.demo import charlm

    prompts = charlm.probes()["trigger"][:PER_GROUP]
    bad = torch.tensor(charlm.encode(charlm.BAD), dtype=torch.long)
    return charlm.behaviours()[:1] + [continuation_probability(f"trigger[{i}]",
                                                               prompts[i:i + 1], bad)
                                      for i in range(len(prompts))]


def scenarios(long: bool = True) -> list[Scenario]:
    found = [
        Scenario("digits-sgd", plans.digits_versions()[1], "patch-shortcut-gap", "vendor-ft",
                 digits_behaviours),
        Scenario("digits-adamw", digits_adamw_plan(), "patch-shortcut-gap", "vendor-ft",
                 digits_behaviours),
        Scenario("toxicity-adamw", plans.toxicity_versions()[1], "identity-false-positives",
                 "community-ft", toxicity_behaviours),
        Scenario("digits-shift", shift_plan(), "shifted-loss", "shift-ft", shift_behaviours),
    ]
    from auditor.demo import charlm

    if charlm.available():
        found.append(Scenario("charlm-gpt2", charlm.versions()[1], "trigger-bad-continuation",
                              "vendor-ft", charlm_behaviours))
    if long:
        found.append(Scenario("digits-long", long_plan(), "patch-shortcut-gap", "vendor-ft",
                              digits_behaviours))
    return found


__all__ = ["Scenario", "scenarios", "group_gap"]
