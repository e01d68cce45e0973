"""Small pieces every estimator shares: the stage-embedding record and its settings hash."""

from __future__ import annotations

import time
from typing import Any

import torch

from auditor.estimators.base import StageEmbeddings
from auditor.estimators.layout import ParamLayout
from auditor.hashing import config_hash
from auditor.lineage.models import ModelVersion


def convention_of(version: ModelVersion) -> str:
    conventions = {s.convention for s in version.stages[1:]} or {"reset"}
    return conventions.pop() if len(conventions) == 1 else "mixed"


def settings_hash(name: str, version: str, settings: dict[str, Any]) -> str:
    return config_hash({"estimator": name, "version": version, "settings": settings})


def embeddings_from_flat(estimator, version: ModelVersion, layout: ParamLayout,
                         flats: list[torch.Tensor], started: float,
                         extra: dict[str, Any] | None = None) -> StageEmbeddings:
    vectors = [{n: t.clone() for n, t in layout.unflatten(flat).items()} for flat in flats]
    return StageEmbeddings(
        model=version.model, version=version.version,
        stages=tuple(s.id for s in version.stages),
        stage_kinds=tuple(s.kind for s in version.stages),
        convention=convention_of(version), estimator=estimator.name,
        estimator_version=estimator.version, config_hash=estimator.config_hash,
        vectors=vectors, runtime_s=time.perf_counter() - started, extra=dict(extra or {}))


def effects_record(embeddings: StageEmbeddings, behaviours, model: torch.nn.Module,
                   effects, started: float, metric_values: tuple[float, ...] | None = None):
    """A StageEffects for ``effects`` (K × Q) with the metrics measured at ``model`` (unless
    the caller measured them already)."""
    from auditor.estimators.base import StageEffects
    from auditor.estimators.families import values_at

    model.eval()
    if metric_values is None:
        metric_values = tuple(values_at(model, behaviours, use_metric=True).tolist())
    return StageEffects(
        model=embeddings.model, version=embeddings.version, stages=embeddings.stages,
        stage_kinds=embeddings.stage_kinds, behaviours=tuple(b.name for b in behaviours),
        directions=tuple(b.direction for b in behaviours), effects=effects,
        estimator=embeddings.estimator, estimator_version=embeddings.estimator_version,
        convention=embeddings.convention, config_hash=embeddings.config_hash,
        runtime_s=embeddings.runtime_s + time.perf_counter() - started,
        metric_values=metric_values)
