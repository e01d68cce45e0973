"""The records every estimator builds: ``StageEmbeddings`` from flat vectors, ``StageEffects``."""

from __future__ import annotations

import time

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators.base import Estimator, EstimatorState, StageEffects, StageEmbeddings
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout


def convention_of(version: ModelVersion) -> str:
    conventions = {s.convention for s in version.stages[1:]} or {"reset"}
    return conventions.pop() if len(conventions) == 1 else "mixed"


def stage_embeddings(estimator: Estimator, version: ModelVersion, vectors: list,
                     started: float, state: EstimatorState | None = None) -> StageEmbeddings:
    return StageEmbeddings(
        model=version.model, version=version.version,
        stages=tuple(s.id for s in version.stages),
        stage_kinds=tuple(s.kind for s in version.stages),
        convention=convention_of(version), estimator=estimator.name,
        estimator_version=estimator.version, config_hash=estimator.config_hash,
        vectors=vectors, runtime_s=time.perf_counter() - started, state=state)


def embeddings_from_flat(estimator: Estimator, version: ModelVersion, layout: ParamLayout,
                         flats: list[torch.Tensor], started: float,
                         state: EstimatorState | None = None) -> StageEmbeddings:
    vectors = [{n: t.clone() for n, t in layout.unflatten(flat).items()} for flat in flats]
    return stage_embeddings(estimator, version, vectors, started, state)


def effects_record(embeddings: StageEmbeddings, behaviours: list[Behaviour],
                   model: torch.nn.Module, effects: np.ndarray, started: float,
                   metric_values: tuple[float, ...] | None = None) -> StageEffects:
    """A StageEffects for ``effects`` (K × Q) with the metrics measured at ``model`` (unless
    the caller measured them already)."""
    from auditor.estimators.scoring.families import values_at  # scoring builds on this module

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
