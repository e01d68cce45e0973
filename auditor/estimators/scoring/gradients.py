"""Scoring stage embeddings against behaviours: one gradient per behaviour at θ_T."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import StageEffects, StageEmbeddings, Vector
from auditor.estimators.records import effects_record
from auditor.estimators.scoring.families import families_of, family_effects
from auditor.estimators.shards import ShardVector

log = logging.getLogger(__name__)
CHUNK = 64  # gradients held before one (K × P_j) @ (P_j × chunk) product per parameter


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


def score_by_gradients(embeddings: StageEmbeddings, behaviours: list[Behaviour],
                       model: torch.nn.Module) -> StageEffects:
    """effects[k, q] = ∇f_q(θ_T) · e_k: one backward pass per behaviour, then K dot products;
    members of a ProbeFamily are scored together by forward-mode passes (families.py).

    The gradients are not copied into one flat vector each: a chunk of them is kept as autograd
    returned them, and each parameter's block is stacked once per chunk and multiplied by that
    block of the embeddings (copying every gradient cost a fifth of the backward pass).
    """
    started = time.perf_counter()
    model.eval()
    effects = np.zeros((len(embeddings.stages), len(behaviours)), dtype=np.float64)
    metrics = np.zeros(len(behaviours), dtype=np.float64)
    in_family = set()
    for family, members in families_of(behaviours).items():
        try:
            effects[:, members], metrics[members] = family_effects(
                family, [behaviours[q].member for q in members], embeddings.vectors, model)
        except RuntimeError as exc:  # e.g. an op without forward-mode support: score one by one
            log.debug("probe family of %s scored one by one: %s", behaviours[members[0]].name,
                      exc)
            continue
        in_family.update(members)
    singles = [q for q in range(len(behaviours)) if q not in in_family]
    if singles:
        single_effects, single_metrics = _score_one_by_one(
            embeddings, [behaviours[q] for q in singles], model)
        effects[:, singles], metrics[singles] = single_effects, single_metrics
    return effects_record(embeddings, behaviours, model, effects, started, tuple(metrics.tolist()))


def _score_one_by_one(embeddings: StageEmbeddings, behaviours: list[Behaviour],
                      model: torch.nn.Module) -> tuple[np.ndarray, list[float]]:
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    first = next(iter(params.values()), None)
    dtype = first.dtype if first is not None else torch.float64
    # the product runs in the model's dtype: a float32 gradient carries float32 precision anyway
    lazy = _LazyBlocks(embeddings.vectors, params, dtype) if _chunked(embeddings.vectors) \
        else None
    blocks = None if lazy is not None else _embedding_blocks(
        embedding_matrix(embeddings, params).to(dtype), params)
    effects = np.zeros((len(embeddings.stages), len(behaviours)), dtype=np.float64)
    metrics, held = [], []
    for q, behaviour in enumerate(behaviours):
        value, metric = behaviour.evaluate(model)
        if not torch.is_tensor(value) or value.numel() != 1:
            raise EstimatorError(
                f"behaviour {behaviour.name!r}: surrogate must return a scalar tensor")
        held.append(_gradients(value, params))
        metrics.append(metric)
        if len(held) == CHUNK or q == len(behaviours) - 1:
            effects[:, q - len(held) + 1:q + 1] = (
                lazy.effects(held, len(effects)) if lazy is not None
                else _chunk_effects(blocks, held, len(effects)))
            held = []
    return effects, metrics


def _embedding_blocks(matrix: torch.Tensor,
                      params: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The K × P matrix cut into one K × P_j block per parameter, on the parameters' device."""
    blocks, start = [], 0
    for p in params.values():
        blocks.append(matrix[:, start:start + p.numel()].to(p.device))
        start += p.numel()
    return blocks


class _LazyBlocks:
    """The embeddings kept on disk (``Shards``), multiplied by a chunk of gradients one chunk
    of rows of one parameter at a time: memory K × the chunk, not K × P (nor K × P_j)."""

    def __init__(self, vectors: list, params: dict[str, torch.Tensor], dtype: torch.dtype):
        self.shards, self.items, self.dtype = vectors[0].shards, list(params.items()), dtype

    def effects(self, held: list[list[torch.Tensor]], stages: int) -> np.ndarray:
        total = None
        for j, (name, p) in enumerate(self.items):
            if name not in self.shards.files:  # no embedding: a zero block
                continue
            for rows, per_stage in self.shards.blocks(name):
                block = torch.stack([t.reshape(-1) for t in per_stage]).to(self.dtype)
                block = block.to(p.device)
                stacked = torch.stack([grads[j] if rows is None else grads[j][rows]
                                       for grads in held]).reshape(len(held), -1)
                part = block @ stacked.T
                total = part if total is None else total + part
        if total is None:
            return np.zeros((stages, len(held)))
        return total.to("cpu").double().numpy()


def _chunked(vectors: list) -> bool:
    """Whether every stage vector reads the same ``Shards`` (scored chunk by chunk)."""
    return bool(vectors) and all(isinstance(v, ShardVector) and v.shards is vectors[0].shards
                                 for v in vectors)


def _gradients(value: torch.Tensor, params: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]


def _chunk_effects(blocks: list[torch.Tensor], held: list[list[torch.Tensor]],
                   stages: int) -> np.ndarray:
    """K × len(held) effects of a chunk of gradients."""
    total = None
    for j, block in enumerate(blocks):
        stacked = torch.stack([grads[j] for grads in held]).reshape(len(held), -1)
        part = block @ stacked.T
        total = part if total is None else total + part
    if total is None:
        return np.zeros((stages, len(held)))
    return total.to("cpu").double().numpy()
