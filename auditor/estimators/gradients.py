"""Scoring stage embeddings against behaviours: one gradient per behaviour at θ_T."""

from __future__ import annotations

import time

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import StageEffects, StageEmbeddings, Vector


def behaviour_gradient(model: torch.nn.Module, behaviour: Behaviour) -> Vector:
    """∇_θ surrogate(θ_T), by trainable parameter name."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    value = behaviour.surrogate(model)
    if not torch.is_tensor(value) or value.numel() != 1:
        raise EstimatorError(f"behaviour {behaviour.name!r}: surrogate must return a scalar tensor")
    grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
    return {name: torch.zeros_like(p) if g is None else g.detach()
            for (name, p), g in zip(params.items(), grads)}


def dot(a: Vector, b: Vector) -> float:
    total = torch.zeros((), dtype=torch.float64)
    for name, tensor in a.items():
        if name in b:
            total += (tensor.double() * b[name].double()).sum()
    return float(total)


def score_by_gradients(embeddings: StageEmbeddings, behaviours: list[Behaviour],
                       model: torch.nn.Module) -> StageEffects:
    """effects[k, q] = ∇f_q(θ_T) · e_k."""
    started = time.perf_counter()
    model.eval()
    effects = np.zeros((len(embeddings.stages), len(behaviours)), dtype=np.float64)
    for q, behaviour in enumerate(behaviours):
        grad = behaviour_gradient(model, behaviour)
        for k, vector in enumerate(embeddings.vectors):
            effects[k, q] = dot(grad, vector)
    metrics = tuple(behaviour.measure(model) for behaviour in behaviours)
    return StageEffects(
        model=embeddings.model, version=embeddings.version, stages=embeddings.stages,
        stage_kinds=embeddings.stage_kinds, behaviours=tuple(b.name for b in behaviours),
        directions=tuple(b.direction for b in behaviours), effects=effects,
        estimator=embeddings.estimator, estimator_version=embeddings.estimator_version,
        convention=embeddings.convention, config_hash=embeddings.config_hash,
        runtime_s=embeddings.runtime_s + time.perf_counter() - started, metric_values=metrics)
