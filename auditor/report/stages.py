"""Printable views of a version's stages: hyperparameters, datasets, and the diff between two
versions (the report's lineage and change-log sections)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from auditor.lineage.models import ModelVersion, Stage, StepLog


def _first(column: list[list[float]] | None) -> float | None:
    return column[0][0] if column and column[0] else None


def _span(column: list[list[float]] | None) -> str:
    if not column:
        return "-"
    values = [v for row in column for v in row]
    first, last = column[0][0], column[-1][0]
    if min(values) == max(values):
        return f"{first:g} (constant)"
    return f"{first:g} → {last:g} (min {min(values):g}, max {max(values):g})"


def _clip(steps: StepLog) -> str:
    limits = {v for v in steps.max_grad_norm or [] if v is not None}
    return ", ".join(f"{v:g}" for v in sorted(limits)) or "none"


def hyperparameters(stage: Stage) -> dict[str, str]:
    opt, steps = stage.optimizer, stage.optimizer.steps
    params = {"optimizer": opt.kind + (" (nesterov)" if opt.nesterov else ""),
              "steps": str(stage.steps), "lr schedule": _span(steps.lr),
              "weight decay": f"{_span(steps.weight_decay)} ({opt.weight_decay_mode})",
              "convention": stage.convention, "grad clip": _clip(steps),
              "param groups": str(len(opt.groups))}
    if opt.kind == "sgd":
        params["momentum"] = f"{_first(steps.momentum) or 0:g}"
        params["dampening"] = f"{_first(steps.dampening) or 0:g}"
    else:
        params["betas"] = f"({_first(steps.beta1):g}, {_first(steps.beta2):g})"
        params["eps"] = f"{_first(steps.eps):g}"
    return params


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M")


def stage_view(index: int, stage: Stage) -> dict[str, Any]:
    return {
        "index": index, "id": stage.id, "kind": stage.kind,
        "started_at": _when(stage.started_at), "ended_at": _when(stage.ended_at),
        "theta_start": stage.theta_start.sha256, "theta_end": stage.theta_end.sha256,
        "code_commit": stage.code_commit or "-", "config_hash": stage.config_hash or "-",
        "replayable": stage.replayable, "hyperparameters": hyperparameters(stage),
        "datasets": [d.model_dump() for d in stage.datasets], "notes": stage.notes or "",
    }


def _stage_changes(old: Stage, new: Stage) -> list[str]:
    changes = []
    for label, before, after in (
            ("kind", old.kind, new.kind), ("optimizer", old.optimizer.kind, new.optimizer.kind),
            ("steps", old.steps, new.steps), ("code commit", old.code_commit, new.code_commit),
            ("config hash", old.config_hash, new.config_hash),
            ("lr schedule", _span(old.optimizer.steps.lr), _span(new.optimizer.steps.lr))):
        if before != after:
            changes.append(f"stage {new.id}: {label} {before} → {after}")
    old_data = {(d.name, d.digest) for d in old.datasets}
    new_data = {(d.name, d.digest) for d in new.datasets}
    changes += [f"stage {new.id}: dataset added {n} ({d[:12]})" for n, d in sorted(new_data - old_data)]
    changes += [f"stage {new.id}: dataset removed {n} ({d[:12]})"
                for n, d in sorted(old_data - new_data)]
    return changes


def version_diff(old: ModelVersion | None, new: ModelVersion) -> list[str]:
    """Human-readable differences in stages and data from ``old`` to ``new``."""
    if old is None:
        return ["first audited version of this model: no earlier version to compare"]
    old_stages = {s.id: s for s in old.stages}
    new_ids = [s.id for s in new.stages]
    changes = [f"stage added: {s.id} ({s.kind})" for s in new.stages if s.id not in old_stages]
    changes += [f"stage removed: {sid}" for sid in old_stages if sid not in new_ids]
    for stage in new.stages:
        if stage.id in old_stages:
            changes += _stage_changes(old_stages[stage.id], stage)
    return changes or ["no change in stages, hyperparameters or data"]
