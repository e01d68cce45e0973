"""``aa-ggn`` with random projection: the unrolled propagation in d sketched dimensions (§4.2).

A stage's displacement splits into the part the H = 0 maps carry (``aa``'s embedding, exact in
P dimensions) and the curvature correction c_k. The correction is propagated in the sketch: every
later step applies its logged coefficients (per parameter tensor, so they commute with the
sketch) and the sampled Gauss–Newton Ĝ_t ê = (1/m) Σ_j ĥ_j (ĥ_jᵀ ê). The embedding is
e_k = e_k^{H0} + Rᵀ ĉ_k: a behaviour's score ∇fᵀRᵀĉ_k = (R∇f)ᵀĉ_k is the sketch's unbiased
estimate of ∇fᵀc_k, and exact when every parameter tensor fits in the sketch.

Factors come from the lineage when the recorder logged them with the same sketch settings
(O(m·d) per step and stage, the model is never run), else from one walk of the factual
trajectory (one forward and m backward passes per step). SGD stages only: Adam's
per-coordinate preconditioner does not commute with the sketch.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from auditor.errors import EstimatorError
from auditor.estimators.aa import stage_embeddings_h0
from auditor.estimators.curvature import LossModule
from auditor.estimators.dynamics import (
    StageCoefficients,
    StepVectors,
    forward_step,
    step_vectors,
)
from auditor.estimators.sketch import (
    CountSketch,
    SketchSpec,
    ggn_factors,
    step_generator,
    tensor_dots,
)
from auditor.estimators.trajectory import FactualStep, params_of, walk
from auditor.estimators.unrolled import Problem
from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.models import ModelVersion


def require_sgd(version: ModelVersion, name: str) -> None:
    adam = [s.id for s in version.stages[1:] if s.optimizer.kind != "sgd"]
    if adam:
        raise EstimatorError(
            f"{name}: random projection needs SGD in every stage after the first; "
            f"{', '.join(adam)} use(s) Adam, whose per-coordinate preconditioner does not "
            "commute with the sketch (drop projection=)")


def logged_sketches_match(version: ModelVersion, spec: SketchSpec) -> bool:
    sketches = [s.curvature_sketch for s in version.stages[1:]]
    return bool(sketches) and all(
        s is not None and (s.dim, s.samples, s.seed) == (spec.dim, spec.samples, spec.seed)
        for s in sketches)


class SketchedTangents:
    """Every started stage's tangent, one row each, as [ĉ | A]: the curvature correction in
    the sketch (D columns), then the H = 0 part as coefficients of D_k and of M_k per parameter
    tensor (2 × tensors columns). The step's coefficients act on both alike."""

    def __init__(self, problem: Problem, sketch: CountSketch):
        self.problem, self.sketch = problem, sketch
        first = torch.tensor([span.start for span in problem.layout.offsets().values()],
                             dtype=torch.long)
        self.tensors = len(first)
        self.coefficients = []
        for coeffs in problem.coefficients:
            per_tensor = coeffs.group_index[first]
            combined = torch.cat([sketch.coordinate_index(coeffs.group_index), per_tensor,
                                  per_tensor])
            self.coefficients.append(replace(coeffs, group_index=combined))
        # stage 1 is never stepped through: its displacement is where propagation starts
        self.scalars = [None] + [_scalar_steps(c) for c in self.coefficients[1:]]
        width = sketch.width + 2 * self.tensors
        self.x = self.xm = torch.zeros(0, width, dtype=torch.float64)

    def start(self, stage: int) -> None:
        """The tangent of ``stage`` at its end: δ = D_k, δm = M_k, no correction yet."""
        zero, one = torch.zeros(self.tensors), torch.ones(self.tensors)
        blank = torch.zeros(self.sketch.width)
        x = torch.cat([blank, one, zero]).to(torch.float64)[None]
        xm = torch.cat([blank, zero, one]).to(torch.float64)[None]
        if stage != self.x.shape[0]:
            raise EstimatorError(f"stage {stage} started out of order")
        self.x, self.xm = torch.cat([self.x, x]), torch.cat([self.xm, xm])

    def step(self, stage: int, local_step: int, factors: torch.Tensor,
             dots: torch.Tensor) -> None:
        """One logged step: ``factors`` (m, D) sketched, ``dots`` (K', 2·tensors, m) exact
        (both float64)."""
        width, rows = self.sketch.width, self.x.shape[0]
        # h_j · δ^{H0} for every row, exactly: Σ over tensors of the (D_k, M_k) coefficients
        # (row k is stage k's tangent: stages start in order)
        exact = torch.bmm(self.x[:, None, width:], dots[:rows]).squeeze(1)
        # R G (δ^{H0} + c) times m
        curved = torch.addmm(exact, self.x[:, :width], factors.T) @ factors
        scale = 1.0 / factors.shape[0]
        scalars = self.scalars[stage]
        if scalars is not None:
            self._scalar_step(scalars[local_step], curved, scale)
            return
        idle = torch.zeros(rows, 2 * self.tensors, dtype=torch.float64)
        self.x, self.xm = forward_step(step_vectors(self.coefficients[stage], local_step),
                                       self.x, self.xm,
                                       lambda _x: torch.cat([curved * scale, idle], 1))

    def _scalar_step(self, s: StepVectors, curved: torch.Tensor, scale: float) -> None:
        """``forward_step`` for SGD with one group: the same formulas, fused."""
        a = self.x * (s.active * s.lam_c)
        a[:, :self.sketch.width].add_(curved, alpha=s.active * s.nu * scale)
        xm = torch.zeros_like(self.xm) if s.reset_before else self.xm
        xm = torch.add(xm * s.mu, a, alpha=s.c)
        self.x = self.x.add(a, alpha=-s.eta * s.na).add_(xm, alpha=-s.eta * s.nm)
        self.xm = xm

    def corrections(self) -> torch.Tensor:
        """Rᵀ ĉ_k for every started stage (rows)."""
        return self.sketch.lift(self.x[:, :self.sketch.width])


def _scalar_steps(coeffs: StageCoefficients) -> list[StepVectors] | None:
    """Each step's coefficients as plain numbers when every coordinate is in the stage's one
    optimizer group (the common case: a dozen scalar operations per step instead of vectors)."""
    index = coeffs.group_index
    if coeffs.kind != "sgd" or len(index) == 0 or bool((index != 0).any()):
        return None
    fields = ("eta", "lam_c", "lam_d", "mu", "c", "na", "nm", "beta1", "c1", "active")
    columns = {f: coeffs.table[f][:, 0].tolist() for f in fields}
    clip = coeffs.clip.tolist()
    return [StepVectors("sgd", coeffs.reset and t == 0, clip[t],
                        **{f: columns[f][t] for f in fields})
            for t in range(coeffs.steps)]


def propagate_projected(problem: Problem, spec: SketchSpec, name: str) -> list[torch.Tensor]:
    version, layout = problem.version, problem.layout
    h0 = stage_embeddings_h0(version, problem.root, layout)
    if len(version.stages) == 1:
        return h0
    require_sgd(version, name)
    tangents = SketchedTangents(problem, CountSketch.build(layout, spec.dim, spec.seed))
    if logged_sketches_match(version, spec):
        for stage, local_step, factors, dots in _logged_factors(problem,
                                                                tangents.sketch.width):
            if local_step == 0:
                tangents.start(stage - 1)
            tangents.step(stage, local_step, factors, dots)
    else:
        _walk_factors(problem, spec, tangents)
    corrections = tangents.corrections()
    last = len(version.stages) - 1
    return [h0[k] + corrections[k] for k in range(last)] + [h0[last]]


def _logged_factors(problem: Problem, width: int):
    tensors = len(problem.layout.sizes)
    for j, stage in enumerate(problem.version.stages[1:], start=1):
        logged = load_tensors(stage.curvature_sketch.file, problem.root)
        factors, dots = logged.get("factors"), logged.get("dots")
        if (factors is None or dots is None or factors.ndim != 3
                or factors.shape[0] != stage.steps or factors.shape[2] != width
                or tuple(dots.shape) != (stage.steps, factors.shape[1], j, tensors, 2)):
            shapes = {k: tuple(v.shape) for k, v in logged.items()}
            raise EstimatorError(
                f"stage {stage.id!r}: the logged curvature sketch {shapes} does not fit this "
                f"model (factors ({stage.steps}, samples, {width}), dots ({stage.steps}, "
                f"samples, {j}, {tensors}, 2)); re-record it or drop projection=")
        factors = factors.to(torch.float64)
        dots = _dots_by_stage(dots.to(torch.float64))
        for t in range(stage.steps):
            yield j, t, factors[t], dots[t]


def _walk_factors(problem: Problem, spec: SketchSpec, tangents: SketchedTangents) -> None:
    modules: list[LossModule] = []
    disp = problem.displacements
    pairs = torch.stack([torch.stack([d, m]) for d, m in zip(disp.changes, disp.momenta)])

    def before(step: FactualStep, model: nn.Module) -> None:
        if not modules:
            modules.append(LossModule(model, problem.task, "mean"))
        if step.local_step == 0:
            tangents.start(step.stage_index - 1)
        factors = ggn_factors(modules[0], params_of(model), step.batch, step.seed,
                              problem.layout, spec.samples,
                              step_generator(spec, step.global_step))
        dots = tensor_dots(factors, pairs[:step.stage_index], problem.layout)
        tangents.step(step.stage_index, step.local_step, tangents.sketch.project(factors),
                      _dots_by_stage(dots[None])[0])

    walk(problem.version, problem.root, problem.task, 1, before)


def _dots_by_stage(dots: torch.Tensor) -> torch.Tensor:
    """(steps, m, K', tensors, 2) → (steps, K', 2·tensors, m), columns ordered as the
    coefficient part of a ``SketchedTangents`` row (all D_k coefficients, then all M_k)."""
    steps, m, stages, tensors, _ = dots.shape
    return dots.permute(0, 2, 4, 3, 1).reshape(steps, stages, 2 * tensors, m)
