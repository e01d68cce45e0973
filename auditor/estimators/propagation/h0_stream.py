"""The H = 0 propagation of ``aa`` streamed one parameter tensor at a time
(docs/maths.md#h0-propagation, docs/scaling.md).

With H = 0 the step maps are separable per coordinate, and a parameter tensor has one optimizer
group per stage: every coefficient is a scalar per (stage, step, tensor). So each tensor's
D_k, M_k and Adam v are read alone from the memory-mapped checkpoints, propagated through the
later stages with scalar coefficients, and its K embeddings handed on; no vector over the whole
model is ever built. The arithmetic is that of ``h0.H0Propagator`` coordinate by coordinate
(bitwise the same where it is elementwise). One thing is decided per tensor instead of over the
whole model: whether a stage's Adam momentum tail runs step by step and where it is cut
(β₁ⁿ·|δm| below ``TAIL_CUTOFF`` of its start, per tensor rather than over all coordinates).
The difference is below 1e-12 relative (docs/scaling.md#exactness).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch

from auditor.estimators.propagation.dynamics import stage_coefficients
from auditor.estimators.propagation.h0 import TAIL_CUTOFF, ordered_product, step_maps
from auditor.estimators.shards import Shards
from auditor.lineage.checkpoints import LazyCheckpoints
from auditor.lineage.models import ModelVersion, Stage
from auditor.lineage.sketching.layout import ParamLayout, momentum_field

PRECISIONS = {"float64": torch.float64, "float32": torch.float32}


def group_of(stage: Stage, name: str) -> int:
    """The stage's optimizer group of parameter ``name``, or len(groups) when frozen / not
    optimized (``ParamLayout.group_index`` per tensor: the last group naming it wins)."""
    groups = stage.optimizer.groups
    found = len(groups)
    for g, group in enumerate(groups):
        if name in group.params and name not in set(group.frozen):
            found = g
    return found


class StreamedH0:
    """``aa``'s embeddings, tensor by tensor: ``for name, e in StreamedH0(...)`` yields the K
    embeddings of each parameter (in ``dtype``, on ``device``)."""

    def __init__(self, version: ModelVersion, root: str | Path, layout: ParamLayout,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                 names_at: list[dict[str, str]] | None = None):
        self.version, self.layout = version, layout
        # per stage: a final tensor's name there (absent: the tensor does not exist there yet)
        self.names_at = names_at
        self.dtype, self.device = dtype, torch.device(device)
        self.read = LazyCheckpoints(root)
        stages = version.stages
        self.coefficients = [stage_coefficients(s, torch.zeros(0, dtype=torch.long),
                                                not self._buffers_at_entry(s)) for s in stages]
        self.coupled = [c.kind == "adam" and bool((c.table["lam_c"] != 0).any())
                        for c in self.coefficients]
        self._products: dict[tuple[int, int], torch.Tensor] = {}
        self._decay: dict[tuple[int, int], torch.Tensor] = {}

    def _buffers_at_entry(self, stage: Stage) -> bool:
        if stage.convention != "carry" or not stage.optimizer_start:
            return False
        keys = self.read(stage.optimizer_start).keys()
        return any(k.endswith((".momentum_buffer", ".exp_avg")) for k in keys)

    def __iter__(self) -> Iterator[tuple[str, list[torch.Tensor]]]:
        for name, shape in zip(self.layout.names, self.layout.shapes):
            yield name, self.tensor(name, shape)

    # -- one tensor ---------------------------------------------------------------------------

    def _load(self, ref, key: str | None, shape) -> torch.Tensor:
        reader = self.read(ref) if key is not None else None
        tensor = reader.get(key) if reader is not None else None
        if tensor is None:
            return torch.zeros(shape, dtype=self.dtype, device=self.device)
        return tensor.detach().reshape(shape).to(self.device, self.dtype)

    def tensor(self, name: str, shape: torch.Size) -> list[torch.Tensor]:
        stages, last = self.version.stages, len(self.version.stages) - 1
        at = ([name] * len(stages) if self.names_at is None
              else [names.get(name) for names in self.names_at])
        groups = [group_of(s, at[j]) for j, s in enumerate(stages)]
        roots: dict[int, torch.Tensor] = {}  # √v near stage j, read once per tensor
        out = []
        theta = self._load(stages[0].theta_start, at[0], shape)
        for k, stage in enumerate(stages):
            if k < last and stages[k + 1].changes is None:
                following = self._load(stages[k + 1].theta_start, at[k + 1], shape)
                d = following - theta
            else:  # the last stage, or the next one changes the parameter set
                d = self._load(stage.theta_end, at[k], shape) - theta
                following = (self._load(stages[k + 1].theta_start, at[k + 1], shape)
                             if k < last else None)
            theta = following
            if k == last:
                out.append(d)
                break
            dm = self._momentum_change(k, at[k], shape)
            for j in range(k + 1, len(stages)):
                d, dm = self._apply_stage(j, groups[j], d, dm, roots, at[j], shape)
            out.append(d)
        return out

    def _momentum_change(self, k: int, name: str | None, shape) -> torch.Tensor:
        stages = self.version.stages
        stage = stages[k]
        if stages[k + 1].convention != "carry" or name is None:
            return torch.zeros(shape, dtype=self.dtype, device=self.device)
        key = name + momentum_field(stage)
        return (self._load(stage.optimizer_end, key, shape)
                - self._load(stage.optimizer_start, key, shape))

    def _apply_stage(self, j, g, d, dm, roots, name, shape):
        coeffs = self.coefficients[j]
        if coeffs.kind != "sgd" and (bool((dm != 0).any()) or self.coupled[j]):
            if j not in roots:
                stage = self.version.stages[j]
                ref = stage.optimizer_start if stage.convention == "carry" else stage.optimizer_end
                key = None if name is None else name + ".exp_avg_sq"
                roots[j] = self._load(ref, key, shape).clamp_min(0).sqrt()
            return self._adam_steps(j, g, d, dm, roots[j])
        phi = self._product(j, g).to(self.device, self.dtype)
        return phi[:, 0, 0] * d + phi[:, 0, 1] * dm, phi[:, 1, 0] * d + phi[:, 1, 1] * dm

    def _product(self, j: int, g: int) -> torch.Tensor:
        """(1, 2, 2): stage j's H = 0 map of group g (``H0Propagator.stage_product``)."""
        if (j, g) not in self._products:
            coeffs = self.coefficients[j]
            columns = {key: v.T[[g]] for key, v in coeffs.table.items()}
            self._products[j, g] = ordered_product(step_maps(coeffs.kind, coeffs.reset,
                                                             columns))
        return self._products[j, g]

    def _adam_steps(self, j: int, g: int, d, dm, root_v):
        """``H0Propagator._adam_steps`` with the coefficients as scalars of the tensor's group."""
        coeffs = self.coefficients[j]
        table = {key: coeffs.table[key][:, g].tolist()
                 for key in ("eta", "lam_c", "lam_d", "beta1", "c1", "c2", "eps", "active")}
        start = float(dm.abs().max()) if dm.numel() else 0.0
        for t in range(coeffs.steps):
            eta, lam_c, lam_d = table["eta"][t], table["lam_c"][t], table["lam_d"][t]
            beta1, c1, active = table["beta1"][t], table["c1"][t], table["active"][t]
            precond = 1.0 / (root_v / math.sqrt(table["c2"][t]) + table["eps"][t])
            if coeffs.reset and t == 0:
                dm = torch.zeros_like(dm)
            a = active * (lam_c * d)
            dm = beta1 * dm + (1.0 - beta1) * a
            d = (1.0 - eta * lam_d) * d - (eta / c1) * precond * dm
            if not self.coupled[j] and dm.numel() and \
                    float(dm.abs().max()) <= TAIL_CUTOFF * max(start, 1e-300):
                return self._decay_after(j, t + 1)[g] * d, torch.zeros_like(dm)
        return d, dm

    def _decay_after(self, j: int, t: int) -> torch.Tensor:
        if (j, t) not in self._decay:
            table = self.coefficients[j].table
            factors = (1.0 - table["eta"][t:] * table["lam_d"][t:]).prod(dim=0)
            self._decay[j, t] = factors.to(self.device, self.dtype)
        return self._decay[j, t]


def streamed_embeddings(version: ModelVersion, root: str | Path, layout: ParamLayout,
                        dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                        spill: bool = False, names_at: list[dict[str, str]] | None = None
                        ) -> list:
    """The K embeddings as tensors by name, computed one tensor at a time; ``spill`` writes
    them to disk tensor by tensor (``Shards``) instead of holding them. ``layout``: the final
    model's parameters; ``names_at``: their names in each stage, when stages change the
    parameter set (``LineageLayout.names_at``)."""
    streamed = StreamedH0(version, root, layout, dtype, device, names_at)
    if spill:
        shards = Shards(len(version.stages))
        for name, per_stage in streamed:
            shards.add(name, per_stage)
        return shards.vectors()
    vectors: list[dict[str, torch.Tensor]] = [{} for _ in version.stages]
    for name, per_stage in streamed:
        for k, tensor in enumerate(per_stage):
            vectors[k][name] = tensor.to("cpu")  # device memory: one tensor's worth at a time
    return vectors
