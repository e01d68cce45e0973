"""The H = 0 propagation of ``aa`` streamed one parameter tensor (or chunk of rows) at a time
(docs/maths.md#h0-propagation, docs/scaling.md).

With H = 0 the step maps are separable per coordinate, and a parameter tensor has one optimizer
group per stage: every coefficient is a scalar per (stage, step, tensor). So each chunk's
D_k, M_k and Adam v are read alone from the memory-mapped checkpoints and propagated with scalar
coefficients; no vector over the whole model is ever built. The stages are walked in order:
at stage j every earlier stage's tangent of the chunk is stepped together, so Adam's
preconditioner 1/(√v/√c₂ + ε) is formed once per step (not once per tangent) and √v is read
once per stage. A chunk holds 2 buffers per stage and a few more, so chunks are sized to the
workspace (``workspace.py``): the memory does not grow with K or the number of steps.

The arithmetic is that of ``h0.H0Propagator`` coordinate by coordinate (bitwise the same, ops
in the same order). Two things are decided per chunk instead of over the whole model: whether a
stage's Adam momentum tail runs step by step (δm ≠ 0 somewhere), and where it is cut (β₁ⁿ·|δm|
below ``TAIL_CUTOFF`` of its start). The difference is below 1e-12 relative
(docs/scaling.md#exactness).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch

from auditor.estimators.propagation.dynamics import stage_coefficients
from auditor.estimators.propagation.h0 import TAIL_CUTOFF, ordered_product, step_maps
from auditor.estimators.propagation.merge_stream import merge_into
from auditor.estimators.shards import Shards
from auditor.estimators.workspace import (
    chunk_elements,
    chunk_shape,
    release_freed_memory,
    row_chunks,
)
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
    """``aa``'s embeddings, chunk by chunk: ``chunks()`` yields (name, rows, the K embeddings
    of those rows) in ``dtype`` on ``device``; ``tensor(name, shape)`` a whole tensor's."""

    BUFFERS_PER_STAGE, BUFFERS = 2, 5  # δ and δm per live tangent; θ, θ', √v, p·η/c₁, scratch

    def __init__(self, version: ModelVersion, root: str | Path, layout: ParamLayout,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                 names_at: list[dict[str, str]] | None = None, workspace: int | None = None):
        self.version, self.layout = version, layout
        # per stage: a final tensor's name there (absent: the tensor does not exist there yet)
        self.names_at = names_at
        self.dtype, self.device = dtype, torch.device(device)
        self.read = LazyCheckpoints(root)
        stages = version.stages
        buffers = self.BUFFERS_PER_STAGE * len(stages) + self.BUFFERS
        self.elements = (None if workspace is None
                         else chunk_elements(workspace, buffers, dtype.itemsize))
        self.coefficients = [stage_coefficients(s, torch.zeros(0, dtype=torch.long),
                                                not self._buffers_at_entry(s)) for s in stages]
        self.coupled = [c.kind == "adam" and bool((c.table["lam_c"] != 0).any())
                        for c in self.coefficients]
        self._products: dict[tuple[int, int], torch.Tensor] = {}
        self._decay: dict[tuple[int, int], torch.Tensor] = {}
        self._tables: dict[tuple[int, int], dict[str, list[float]]] = {}
        self.factors: dict[tuple[int, str], list] = {}  # a merge's A, {k: δA}, B, {k: δB}

    def _buffers_at_entry(self, stage: Stage) -> bool:
        if stage.convention != "carry" or not stage.optimizer_start:
            return False
        keys = self.read(stage.optimizer_start).keys()
        return any(k.endswith((".momentum_buffer", ".exp_avg")) for k in keys)

    def rows(self, shape) -> list[slice | None]:
        return [None] if self.elements is None else row_chunks(shape, self.elements)

    def chunks(self) -> Iterator[tuple[str, slice | None, list[torch.Tensor]]]:
        for name, shape in zip(self.layout.names, self.layout.shapes):
            for rows in self.rows(shape):
                yield name, rows, self.chunk(name, shape, rows)

    def __iter__(self) -> Iterator[tuple[str, list[torch.Tensor]]]:
        for name, shape in zip(self.layout.names, self.layout.shapes):
            yield name, self.tensor(name, shape)

    def tensor(self, name: str, shape: torch.Size) -> list[torch.Tensor]:
        """The K embeddings of a whole tensor (its chunks joined on the CPU)."""
        parts = [self.chunk(name, shape, rows) for rows in self.rows(shape)]
        if len(parts) == 1:
            return parts[0]
        return [torch.cat([part[k].to("cpu") for part in parts]) for k in range(len(parts[0]))]

    # -- one chunk ----------------------------------------------------------------------------

    def _load(self, ref, key: str | None, shape, rows: slice | None = None) -> torch.Tensor:
        reader = self.read(ref) if key is not None else None
        stored = reader.shape(key) if reader is not None else None
        if stored is None:
            return torch.zeros(chunk_shape(shape, rows), dtype=self.dtype, device=self.device)
        if rows is None:
            tensor = reader.get(key).reshape(shape)
        elif tuple(stored) == tuple(shape):
            tensor = reader.get(key, rows)
        else:  # stored in another shape: the whole tensor, then the rows
            tensor = reader.get(key).reshape(shape)[rows]
        return tensor.detach().to(self.device, self.dtype)

    def chunk(self, name: str, shape: torch.Size, rows: slice | None = None
              ) -> list[torch.Tensor]:
        """The K embeddings of ``rows`` of tensor ``name`` (all of it when None)."""
        stages = self.version.stages
        at = ([name] * len(stages) if self.names_at is None
              else [names.get(name) for names in self.names_at])
        return self.walk(at, shape, rows)

    def walk(self, at: list[str | None], shape, rows: slice | None, stop: int | None = None):
        """The stages in order for the tensor named ``at[j]`` at stage j: its K embeddings, or
        with ``stop``, the tangents {k: δ} of the earlier stages as stage ``stop`` begins."""
        stages, last = self.version.stages, len(self.version.stages) - 1
        groups = [group_of(s, at[j]) for j, s in enumerate(stages)]
        out: list[torch.Tensor | None] = [None] * len(stages)
        live: list[list] = []  # [k, δ, δm] of each earlier stage k, moved on stage by stage
        theta = self._load(stages[0].theta_start, at[0], shape, rows)
        for j, stage in enumerate(stages):
            if j == stop:
                return {k: d for k, d, _ in live}
            if live:
                merge_into(self, j, at[j], live, rows)
                self._apply_stage(j, groups[j], live, at[j], shape, rows)
            if j < last and stages[j + 1].changes is None:
                following = self._load(stages[j + 1].theta_start, at[j + 1], shape, rows)
                d = following - theta
            else:  # the last stage, or the next one changes the parameter set
                d = self._load(stage.theta_end, at[j], shape, rows) - theta
                following = (self._load(stages[j + 1].theta_start, at[j + 1], shape, rows)
                             if j < last else None)
            theta = following
            if j == last:
                out[j] = d
                break
            live.append([j, d, self._momentum_change(j, at[j], shape, rows)])
        for k, d, _ in live:
            out[k] = d
        return out

    def _momentum_change(self, k: int, name: str | None, shape, rows) -> torch.Tensor:
        stages = self.version.stages
        stage = stages[k]
        if stages[k + 1].convention != "carry" or name is None:
            return torch.zeros(chunk_shape(shape, rows), dtype=self.dtype, device=self.device)
        key = name + momentum_field(stage)
        return (self._load(stage.optimizer_end, key, shape, rows)
                - self._load(stage.optimizer_start, key, shape, rows))

    def _apply_stage(self, j, g, live, name, shape, rows) -> None:
        """Stage j's map on every live tangent [k, δ, δm] (in place in ``live``)."""
        coeffs = self.coefficients[j]
        stepped, starts = [], []
        for item in live:
            _, d, dm = item
            start = _abs_max(dm) if coeffs.kind != "sgd" else 0.0  # max |δm|: δm ≠ 0 somewhere
            if coeffs.kind != "sgd" and (start > 0 or self.coupled[j]):
                stepped.append(item)
                starts.append(start)
                continue
            phi = self._product(j, g)
            item[1] = phi[:, 0, 0] * d + phi[:, 0, 1] * dm
            item[2] = phi[:, 1, 0] * d + phi[:, 1, 1] * dm
        if stepped:
            stage = self.version.stages[j]
            ref = stage.optimizer_start if stage.convention == "carry" else stage.optimizer_end
            key = None if name is None else name + ".exp_avg_sq"
            root_v = self._load(ref, key, shape, rows).clamp_min(0).sqrt()
            self._adam_steps(j, g, stepped, starts, root_v)

    def _product(self, j: int, g: int) -> torch.Tensor:
        """(1, 2, 2): stage j's H = 0 map of group g (``H0Propagator.stage_product``)."""
        if (j, g) not in self._products:
            coeffs = self.coefficients[j]
            columns = {key: v.T[[g]] for key, v in coeffs.table.items()}
            product = ordered_product(step_maps(coeffs.kind, coeffs.reset, columns))
            self._products[j, g] = product.to(self.device, self.dtype)
        return self._products[j, g]

    def _table(self, j: int, g: int) -> dict[str, list[float]]:
        if (j, g) not in self._tables:
            table = self.coefficients[j].table
            self._tables[j, g] = {key: table[key][:, g].tolist() for key in
                                  ("eta", "lam_c", "lam_d", "beta1", "c1", "c2", "eps", "active")}
        return self._tables[j, g]

    def _adam_steps(self, j: int, g: int, items: list[list], starts: list[float],
                    root_v: torch.Tensor) -> None:
        """``H0Propagator._adam_steps`` on each item [k, δ, δm], the coefficients scalars of
        the tensor's group and the preconditioner formed once per step for all of them.

        Without coupled decay δm only shrinks by β₁ each step, so β₁ⁿ predicts when its tail
        can fall below ``TAIL_CUTOFF`` of its start; |δm| is only measured from then on
        (a margin of 4 covers the rounding of n products)."""
        coeffs, coupled = self.coefficients[j], self.coupled[j]
        table = self._table(j, g)
        running = 1.0  # Π β₁ since the stage began (0 once a reset zeroed δm)
        scratch = scaled = None
        for t in range(coeffs.steps):
            if not items:
                return
            eta, lam_c, lam_d = table["eta"][t], table["lam_c"][t], table["lam_d"][t]
            beta1, c1, active = table["beta1"][t], table["c1"][t], table["active"][t]
            # (η/c₁)·1/(√v/√c₂ + ε), as H0Propagator forms it (1/x is x.reciprocal() · 1)
            scaled = torch.div(root_v, math.sqrt(table["c2"][t]), out=scaled)
            scaled.add_(table["eps"][t]).reciprocal_().mul_(eta / c1)
            decay = 1.0 - eta * lam_d
            running = (0.0 if coeffs.reset and t == 0 else running) * beta1
            kept = []
            for item, start in zip(items, starts):
                _, d, dm = item
                if coeffs.reset and t == 0:
                    dm = torch.zeros_like(dm)
                if coupled:
                    a = active * (lam_c * d)
                    dm = beta1 * dm + (1.0 - beta1) * a
                    d = decay * d - scaled * dm
                else:  # lam_c = 0: a = 0 and the same numbers in place
                    dm.mul_(beta1)
                    if scratch is None:
                        scratch = torch.empty_like(dm)
                    torch.mul(scaled, dm, out=scratch)
                    d.mul_(decay).sub_(scratch)
                item[1], item[2] = d, dm
                if not coupled and dm.numel() and (running <= 4 * TAIL_CUTOFF or start < 1e-20) \
                        and _abs_max(dm) <= TAIL_CUTOFF * max(start, 1e-300):
                    item[1], item[2] = self._decay_after(j, t + 1)[g] * d, torch.zeros_like(dm)
                    continue
                kept.append((item, start))
            items, starts = [i for i, _ in kept], [s for _, s in kept]

    def _decay_after(self, j: int, t: int) -> torch.Tensor:
        if (j, t) not in self._decay:
            table = self.coefficients[j].table
            factors = (1.0 - table["eta"][t:] * table["lam_d"][t:]).prod(dim=0)
            self._decay[j, t] = factors.to(self.device, self.dtype)
        return self._decay[j, t]


def _abs_max(tensor: torch.Tensor) -> float:
    """max |x| (0 when empty)."""
    return float(tensor.abs().max()) if tensor.numel() else 0.0


def streamed_embeddings(version: ModelVersion, root: str | Path, layout: ParamLayout,
                        dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                        spill: bool = False, names_at: list[dict[str, str]] | None = None,
                        workspace: int | None = None) -> list:
    """The K embeddings as tensors by name, computed one chunk at a time within ``workspace``
    bytes; ``spill`` writes them to disk chunk by chunk (``Shards``) instead of holding them.
    ``layout``: the final model's parameters; ``names_at``: their names in each stage, when
    stages change the parameter set (``LineageLayout.names_at``)."""
    streamed = StreamedH0(version, root, layout, dtype, device, names_at, workspace)
    if spill:
        shards = Shards(len(version.stages))
        for name, rows, per_stage in streamed.chunks():
            shards.add(name, per_stage, rows)
        release_freed_memory()
        return shards.vectors()
    vectors: list[dict[str, torch.Tensor]] = [{} for _ in version.stages]
    for name, per_stage in streamed:
        for k, tensor in enumerate(per_stage):
            vectors[k][name] = tensor.to("cpu")  # device memory: one tensor's worth at a time
    return vectors
