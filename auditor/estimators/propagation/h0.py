"""The H = 0 propagation of ``aa`` (docs/maths.md#h0-propagation): stage displacements through the
later steps' logged scalars, no curvature.

SGD stages are one 2×2 product per group class (scalars per parameter group); Adam/AdamW stages
with a momentum tail run per coordinate with the preconditioner from the nearest boundary's v,
until β₁ⁿ has decayed below ``TAIL_CUTOFF``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from auditor.estimators.propagation.dynamics import (
    StageCoefficients,
    adam_preconditioner,
    forward_step,
    step_vectors,
)
from auditor.estimators.propagation.trajectory import all_coefficients
from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.merges import flat_merges
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout, load_flat, stage_displacements

TAIL_CUTOFF = 1e-12


def stage_embeddings_h0(version: ModelVersion, root: str | Path, layout: ParamLayout,
                        views: tuple[ParamLayout, ...] | None = None) -> list[torch.Tensor]:
    """``views``: each stage's parameters in ``layout`` when the lineage changes the parameter
    set (auditor.lineage.sketching.union)."""
    coefficients = all_coefficients(version, root, layout, views)
    disp = stage_displacements(version, root, layout, views)
    propagator = H0Propagator(version, root, layout, coefficients, views)
    return [propagator.run(k, disp.changes[k], disp.momenta[k])
            for k in range(len(version.stages))]


class H0Propagator:
    def __init__(self, version: ModelVersion, root, layout: ParamLayout,
                 coefficients: list[StageCoefficients],
                 views: tuple[ParamLayout, ...] | None = None):
        self.version, self.root, self.layout = version, root, layout
        self.views = views or (layout,) * len(version.stages)
        self.coefficients = coefficients
        self.class_of, self.class_groups = _group_classes(coefficients)
        self._products: dict[int, torch.Tensor] = {}
        self._v_ref: dict[int, torch.Tensor] = {}
        self._merges: dict[int, object] = {}

    def run(self, k: int, d: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
        d, dm = d.clone(), dm.clone()
        for j in range(k + 1, len(self.coefficients)):
            d = self.enter(j, d)
            d, dm = self.apply_stage(j, d, dm)
        return d

    def enter(self, j: int, d: torch.Tensor) -> torch.Tensor:
        """δ through stage j's recorded adapter merges (docs/maths.md#merged-adapters)."""
        change = self.version.stages[j].changes
        if change is None or not change.merges:
            return d
        if j not in self._merges:
            ends = load_tensors(self.version.stages[j - 1].theta_end, self.root)
            self._merges[j] = flat_merges(change.merges, self.views[j - 1].offsets(), ends)
        return self._merges[j](d)

    def apply_stage(self, j: int, d: torch.Tensor, dm: torch.Tensor):
        """(δ, δm) through every step of stage j with H = 0."""
        coeffs = self.coefficients[j]
        if coeffs.kind != "sgd" and (bool((dm != 0).any()) or _coupled(coeffs)):
            return self._adam_steps(j, d, dm)
        return self._apply_product(j, d, dm)

    # -- stages whose maps are scalars per group: one 2×2 product per class ---------------

    def stage_product(self, j: int) -> torch.Tensor:
        """(C, 2, 2): the map of stage j on (δ, δm) for every group class (the product of its
        step maps)."""
        if j not in self._products:
            coeffs = self.coefficients[j]
            groups = self.class_groups[j]
            columns = {k: v.T[groups] for k, v in coeffs.table.items()}  # (C, steps)
            self._products[j] = ordered_product(step_maps(coeffs.kind, coeffs.reset, columns))
        return self._products[j]

    def _apply_product(self, j: int, d: torch.Tensor, dm: torch.Tensor):
        product = self.stage_product(j)
        # one class (a single parameter group, the common case): scalars, no (P, 2, 2) gather
        phi = product if len(product) == 1 else product[self.class_of]
        return phi[:, 0, 0] * d + phi[:, 0, 1] * dm, phi[:, 1, 0] * d + phi[:, 1, 1] * dm

    # -- Adam momentum tail, per coordinate ------------------------------------------------

    def _adam_steps(self, j: int, d: torch.Tensor, dm: torch.Tensor):
        coeffs = self.coefficients[j]
        v_ref = self.v_reference(j)
        start = float(dm.abs().max())
        for t in range(coeffs.steps):
            precond = adam_preconditioner(v_ref, coeffs, t)
            d, dm = forward_step(step_vectors(coeffs, t, precond), d, dm, None)
            if not _coupled(coeffs) and float(dm.abs().max()) <= TAIL_CUTOFF * max(start, 1e-300):
                decay = self._decay_after(j, t + 1)
                return decay * d, torch.zeros_like(dm)
        return d, dm

    def _decay_after(self, j: int, t: int) -> torch.Tensor:
        coeffs = self.coefficients[j]
        factors = (1.0 - coeffs.table["eta"][t:] * coeffs.table["lam_d"][t:]).prod(dim=0)
        return factors[coeffs.group_index]

    def v_reference(self, j: int) -> torch.Tensor:
        """Adam's v near stage j: its entry state under carry, else its end state."""
        if j not in self._v_ref:
            stage = self.version.stages[j]
            ref = stage.optimizer_start if stage.convention == "carry" else stage.optimizer_end
            self._v_ref[j] = load_flat(self.views[j], ref, self.root, ".exp_avg_sq")
        return self._v_ref[j]


def _group_classes(coefficients: list[StageCoefficients]) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates with the same group in every stage share one class: (class per coordinate,
    (K, C) group of each class in each stage)."""
    class_of = torch.zeros_like(coefficients[0].group_index)
    if all(len(c.group_index) == 0 or int(c.group_index.max()) == 0 for c in coefficients):
        return class_of, torch.zeros((len(coefficients), 1), dtype=class_of.dtype)
    for coeffs in coefficients:  # re-numbered after every stage: no overflow for long lineages
        code = class_of * (int(coeffs.group_index.max()) + 1) + coeffs.group_index
        _, class_of = torch.unique(code, return_inverse=True)
    count = int(class_of.max()) + 1
    # any coordinate of a class represents it (they share every stage's group)
    first = torch.zeros(count, dtype=torch.long).scatter_(0, class_of, torch.arange(len(class_of)))
    groups = torch.stack([c.group_index[first] for c in coefficients])
    return class_of, groups


def step_maps(kind: str, reset: bool, col: dict[str, torch.Tensor]) -> torch.Tensor:
    """(C, steps, 2, 2): the H = 0 map of each step on (δ, δm), for every group class.

    The same formulas as ``dynamics.forward_step`` (with p = 1, used only where δm = 0 for
    Adam); a ``reset`` stage first zeroes δm.
    """
    a = col["active"] * col["lam_c"]  # a = a_coef · δ
    if kind == "sgd":
        m_d, m_m = col["c"] * a, col["mu"]  # δm' = m_d δ + m_m δm
        d_d = 1.0 - col["eta"] * (col["na"] * a + col["nm"] * m_d)
        d_m = -col["eta"] * col["nm"] * m_m
    else:
        m_d, m_m = (1.0 - col["beta1"]) * a, col["beta1"]
        scale = col["eta"] / col["c1"]
        d_d = (1.0 - col["eta"] * col["lam_d"]) - scale * m_d
        d_m = -scale * m_m
    maps = torch.stack([torch.stack([d_d, d_m], -1), torch.stack([m_d, m_m], -1)], -2)
    if reset and maps.shape[1]:
        maps[:, 0, :, 1] = 0.0
    return maps


def ordered_product(maps: torch.Tensor) -> torch.Tensor:
    """M_{n-1} ⋯ M_1 M_0 for maps (C, n, 2, 2), by pairwise halving (log n batched products)."""
    eye = torch.eye(2, dtype=maps.dtype).expand(maps.shape[0], 1, 2, 2)
    if maps.shape[1] == 0:
        return eye[:, 0].clone()
    while maps.shape[1] > 1:
        if maps.shape[1] % 2:
            maps = torch.cat([maps, eye], dim=1)
        maps = maps[:, 1::2] @ maps[:, 0::2]
    return maps[:, 0]


def _coupled(coeffs: StageCoefficients) -> bool:
    return coeffs.kind == "adam" and bool((coeffs.table["lam_c"] != 0).any())
