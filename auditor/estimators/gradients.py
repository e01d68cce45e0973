"""Scoring stage embeddings against behaviours: one gradient per behaviour at θ_T."""

from __future__ import annotations

import time

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import StageEffects, StageEmbeddings, Vector
from auditor.estimators.common import effects_record


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


def embedding_matrix(embeddings: StageEmbeddings,
                     params: dict[str, torch.Tensor]) -> torch.Tensor:
    """K × P float64 matrix of the embeddings over ``params`` (absent names are zeros)."""
    rows = []
    for vector in embeddings.vectors:
        parts = [vector[name].reshape(-1).to("cpu", torch.float64) if name in vector
                 else torch.zeros(p.numel(), dtype=torch.float64) for name, p in params.items()]
        rows.append(torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64))
    return torch.stack(rows)


def flat_gradient(value: torch.Tensor, params: dict[str, torch.Tensor],
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """∇value over ``params`` as one flat vector (written into ``out`` when given)."""
    grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
    if out is None:
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for p, g in zip(params.values(), grads)]).to("cpu", torch.float64)
    if any(g is None for g in grads):
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
    return torch.cat([g.reshape(-1) for g in grads], out=out)


CHUNK = 64  # gradients gathered before one (K × P) @ (P × chunk) product


def score_by_gradients(embeddings: StageEmbeddings, behaviours: list[Behaviour],
                       model: torch.nn.Module) -> StageEffects:
    """effects[k, q] = ∇f_q(θ_T) · e_k: one backward pass per behaviour, then K dot products."""
    started = time.perf_counter()
    model.eval()
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    first = next(iter(params.values()), None)
    dtype = first.dtype if first is not None else torch.float64
    # the product runs in the model's dtype: a float32 gradient carries float32 precision anyway
    matrix = embedding_matrix(embeddings, params).to(dtype)
    buffer = torch.empty((min(CHUNK, max(1, len(behaviours))), matrix.shape[1]), dtype=dtype,
                         device=first.device if first is not None else "cpu")
    effects = np.zeros((len(embeddings.stages), len(behaviours)), dtype=np.float64)
    metrics = []
    for q, behaviour in enumerate(behaviours):
        value = behaviour.surrogate(model)
        if not torch.is_tensor(value) or value.numel() != 1:
            raise EstimatorError(
                f"behaviour {behaviour.name!r}: surrogate must return a scalar tensor")
        flat_gradient(value, params, out=buffer[q % CHUNK])
        if q % CHUNK == CHUNK - 1 or q == len(behaviours) - 1:
            rows = q % CHUNK + 1
            block = buffer[:rows].to("cpu")
            effects[:, q - rows + 1:q + 1] = (matrix @ block.T).double().numpy()
        metrics.append(value.item() if behaviour.metric is None else behaviour.measure(model))
    return effects_record(embeddings, behaviours, model, effects, started, tuple(metrics))
