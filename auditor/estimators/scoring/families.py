"""Batched scoring of ProbeFamily members: one forward pass for their values, and the effects
∇f_q(θ_T) · e_k of every member at once by forward-mode differentiation along e_k.

Per-example behaviours are independent functions of the parameters, so the directional
derivative of the vector (f_1, …, f_n) along e_k is exactly the K-th row of their effects: K
forward-mode passes over the probe batch replace n backward passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call, jvp

from auditor.behaviours.base import Behaviour, ProbeFamily
from auditor.estimators.base import Vector

CHUNK = 1024  # probe examples per batched pass


def families_of(behaviours: Sequence[Behaviour]) -> dict[ProbeFamily, list[int]]:
    """Each family among ``behaviours`` with the positions of its members (families of one
    member are left to the per-behaviour path)."""
    found: dict[ProbeFamily, list[int]] = {}
    for q, behaviour in enumerate(behaviours):
        if behaviour.family is not None:
            found.setdefault(behaviour.family, []).append(q)
    return {family: qs for family, qs in found.items() if len(qs) > 1}


def family_effects(family: ProbeFamily, members: list[int], vectors: list[Vector],
                   model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(K × n effects, n metrics) of the family's examples ``members``, at ``model``."""
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    tangents = [{name: _tangent(vector, name, p) for name, p in params.items()}
                for vector in vectors]
    index = torch.as_tensor(members, dtype=torch.long)
    effects, metrics = [], []
    for start in range(0, len(index), CHUNK):
        inputs = family.inputs[index[start:start + CHUNK]]
        chosen = index[start:start + CHUNK]

        def values(p, inputs=inputs, chosen=chosen):
            outputs = functional_call(model, p, (inputs,))
            return family.per_example(outputs, chosen), outputs

        rows = []
        for tangent in tangents:
            surrogate, dot, outputs = jvp(values, (params,), (tangent,), has_aux=True)
            rows.append(dot.detach())
        if not tangents:
            surrogate, outputs = values(params)
        metrics.append(_metrics(family, outputs, surrogate, chosen))
        effects.append(torch.stack(rows) if rows else torch.zeros((0, len(chosen))))
    return (torch.cat(effects, dim=1).to("cpu", torch.float64).numpy(),
            torch.cat(metrics).to("cpu", torch.float64).numpy())


def family_values(family: ProbeFamily, members: list[int], model: torch.nn.Module,
                  use_metric: bool) -> np.ndarray:
    """The members' surrogates (or metrics) at ``model`` from batched forward passes."""
    index = torch.as_tensor(members, dtype=torch.long)
    out = []
    with torch.no_grad():
        for start in range(0, len(index), CHUNK):
            chosen = index[start:start + CHUNK]
            outputs = model(family.inputs[chosen])
            surrogate = family.per_example(outputs, chosen)
            out.append(_metrics(family, outputs, surrogate, chosen) if use_metric else surrogate)
    return torch.cat(out).to("cpu", torch.float64).numpy()


def values_at(model: torch.nn.Module, behaviours: list[Behaviour], use_metric: bool) -> np.ndarray:
    """Each behaviour's surrogate (or metric) at ``model``; a ProbeFamily's members in batched
    forward passes."""
    model.eval()
    values = np.zeros(len(behaviours), dtype=np.float64)
    families = families_of(behaviours)
    for family, members in families.items():
        values[members] = family_values(family, [behaviours[q].member for q in members], model,
                                        use_metric)
    in_family = {q for members in families.values() for q in members}
    with torch.no_grad():
        for q, b in enumerate(behaviours):
            if q not in in_family:
                values[q] = b.measure(model) if use_metric else float(b.surrogate(model))
    return values


def _metrics(family: ProbeFamily, outputs: torch.Tensor, surrogate: torch.Tensor,
             chosen: torch.Tensor) -> torch.Tensor:
    if family.metrics is None:
        return surrogate.detach()
    return family.metrics(outputs.detach(), chosen).detach()


def _tangent(vector: Vector, name: str, param: torch.Tensor) -> torch.Tensor:
    if name not in vector:
        return torch.zeros_like(param)
    return vector[name].to(param.device, param.dtype).reshape(param.shape)
