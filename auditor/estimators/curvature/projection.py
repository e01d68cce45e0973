"""``aa-ggn`` with random projection: the unrolled propagation in d sketched dimensions
(docs/maths.md#random-projection).

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
from auditor.estimators.propagation.dynamics import StageCoefficients, forward_step, step_vectors
from auditor.estimators.propagation.h0 import H0Propagator, step_maps
from auditor.estimators.propagation.trajectory import FactualStep, params_of, walk
from auditor.estimators.propagation.unrolled import Problem
from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.countsketch import CountSketch
from auditor.lineage.sketching.factors import ggn_factors, step_generator, tensor_dots
from auditor.lineage.sketching.loss import LossModule
from auditor.lineage.sketching.spec import SketchSpec


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
    tensor (2 × tensors columns). ``state[0]`` holds δ, ``state[1]`` δm; the step's
    coefficients act on both parts alike."""

    def __init__(self, problem: Problem, sketch: CountSketch):
        self.sketch = sketch
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
        self.scalar_maps = [None] + [_scalar_maps(c) for c in self.coefficients[1:]]
        self.state = torch.zeros(2, 0, sketch.width + 2 * self.tensors, dtype=torch.float64)

    def start(self, stage: int) -> None:
        """The tangent of ``stage`` at its end: δ = D_k, δm = M_k, no correction yet."""
        if stage != self.state.shape[1]:
            raise EstimatorError(f"stage {stage} started out of order")
        row = torch.zeros(2, 1, self.state.shape[2], dtype=torch.float64)
        width, tensors = self.sketch.width, self.tensors
        row[0, 0, width:width + tensors] = 1.0  # δ = 1·D_k
        row[1, 0, width + tensors:] = 1.0  # δm = 1·M_k
        self.state = torch.cat([self.state, row], dim=1)

    def _generic_step(self, stage: int, local_step: int, factors: torch.Tensor,
                      dots: torch.Tensor) -> None:
        """One step with per-bucket coefficients (several optimizer groups, frozen tensors):
        ``factors`` (m, D) and ``dots`` (K', 2·tensors, m), float64."""
        width, rows = self.sketch.width, self.state.shape[1]
        x = self.state[0]
        # h_j · δ^{H0} for every row, exactly: Σ over tensors of the (D_k, M_k) coefficients
        # (row k is stage k's tangent: stages start in order)
        exact = torch.bmm(x[:, None, width:], dots[:rows]).squeeze(1)
        curved = (torch.addmm(exact, x[:, :width], factors.T) @ factors) / factors.shape[0]
        idle = torch.zeros(rows, 2 * self.tensors, dtype=torch.float64)
        d, dm = forward_step(step_vectors(self.coefficients[stage], local_step),
                             self.state[0], self.state[1],
                             lambda _x: torch.cat([curved, idle], 1))
        self.state = torch.stack([d, dm])

    def run_stage(self, stage: int, factors: torch.Tensor, dots: torch.Tensor) -> None:
        """Every step of a stage: ``factors`` (steps, m, D), ``dots`` (steps, K', 2·tensors,
        m). A one-group SGD stage takes the fast path: the H = 0 coefficients follow the
        prefix products of the 2×2 maps, so every step's exact inner products are formed at
        once, and the loop carries only the sketched correction."""
        self.start(stage - 1)
        maps = self.scalar_maps[stage]
        if maps is None:
            for t in range(len(factors)):
                self._generic_step(stage, t, factors[t].to(torch.float64), dots[t])
            return
        mix, response = maps
        width, rows = self.sketch.width, self.state.shape[1]
        prefix = _prefix_products(mix)  # (steps + 1, 2, 2): the maps before each step
        start = self.state[:, :, width:]  # (2, n, 2·tensors)
        # h_j · δ^{H0}_t = P_t[0,0] (A_δ · dots_t) + P_t[0,1] (A_δm · dots_t)
        along = torch.einsum("inc,tncm->itnm", start, dots[:, :rows].to(torch.float64))
        exact = prefix[:-1, 0, 0, None, None] * along[0] + prefix[:-1, 0, 1, None, None] * along[1]
        # the loop runs in the dtype the factors were logged in (the model's: float64 for the
        # exactness tests, float32 otherwise, well below the sampling noise)
        dtype = factors.dtype
        exact, mix = exact.to(dtype), mix.to(dtype)
        gains = (response / factors.shape[1]).to(dtype).view(-1, 2, 1, 1)
        sketched = self.state[:, :, :width].to(dtype).contiguous()
        for t in range(len(factors)):
            f = factors[t]
            curved = torch.addmm(exact[t], sketched[0], f.T) @ f
            sketched = (mix[t] @ sketched.view(2, -1)).view(sketched.shape)
            sketched.add_(gains[t] * curved)
        coefficients = (prefix[-1] @ start.reshape(2, -1)).reshape(start.shape)
        self.state = torch.cat([sketched.to(torch.float64), coefficients], dim=2)

    def corrections(self) -> torch.Tensor:
        """Rᵀ ĉ_k for every started stage (rows)."""
        return self.sketch.lift(self.state[0, :, :self.sketch.width])


def _prefix_products(maps: torch.Tensor) -> torch.Tensor:
    """(n + 1, 2, 2): I, M_0, M_1 M_0, … for maps (n, 2, 2) (plain floats: 2×2 is too small
    for tensor operations to pay)."""
    values = maps.tolist()
    a, b, c, d = 1.0, 0.0, 0.0, 1.0
    out = [(a, b, c, d)]
    for (p, q), (r, s) in values:
        a, b, c, d = p * a + q * c, p * b + q * d, r * a + s * c, r * b + s * d
        out.append((a, b, c, d))
    return torch.tensor(out, dtype=torch.float64).view(-1, 2, 2)


def _scalar_maps(coeffs: StageCoefficients) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For an SGD stage whose coordinates are all in its one optimizer group: per step, the
    2×2 map of (δ, δm) with H = 0 (``aa.step_maps``) and the response of (δ, δm) to the
    curvature term ν·Gδ — ``forward_step``'s formulas folded into (steps, 2, 2) and (steps, 2)."""
    index = coeffs.group_index
    if coeffs.kind != "sgd" or len(index) == 0 or bool((index != 0).any()):
        return None
    col = {k: v.T[:1] for k, v in coeffs.table.items()}  # (1, steps) per field
    mix = step_maps("sgd", coeffs.reset, col)[0]
    gain = (col["active"] * coeffs.clip[None])[0]  # a = ν·(curvature term) on active groups
    response = torch.stack([-col["eta"][0] * (col["na"][0] + col["nm"][0] * col["c"][0]) * gain,
                            col["c"][0] * gain], dim=1)
    return mix, response


def propagate_projected(problem: Problem, spec: SketchSpec, name: str) -> list[torch.Tensor]:
    version, layout = problem.version, problem.layout
    disp = problem.displacements
    propagator = H0Propagator(version, problem.root, layout, problem.coefficients)
    h0 = [propagator.run(k, disp.changes[k], disp.momenta[k]) for k in range(len(disp.changes))]
    if len(version.stages) == 1:
        return h0
    require_sgd(version, name)
    tangents = SketchedTangents(problem, CountSketch.build(layout, spec.dim, spec.seed))
    if logged_sketches_match(version, spec):
        for stage, factors, dots in _logged_factors(problem, tangents.sketch.width):
            tangents.run_stage(stage, factors, dots)
    else:
        _walk_factors(problem, spec, tangents)
    corrections = tangents.corrections()
    if not bool(torch.isfinite(corrections).all()):
        raise EstimatorError(f"{name}: the curvature sketch gave non-finite corrections (a "
                             "NaN or Inf in the logged factors, or training diverged)")
    last = len(version.stages) - 1
    return [h0[k] + corrections[k] for k in range(last)] + [h0[last]]


def _logged_factors(problem: Problem, width: int):
    tensors = len(problem.layout.sizes)
    for j, stage in enumerate(problem.version.stages[1:], start=1):
        # hash-checked; finiteness is checked once on the result (a NaN in the factors reaches
        # it), not over the whole file
        logged = load_tensors(stage.curvature_sketch.file, problem.root, check_finite=False)
        factors, dots = logged.get("factors"), logged.get("dots")
        if (factors is None or dots is None or factors.ndim != 3
                or factors.shape[0] != stage.steps or factors.shape[2] != width
                or tuple(dots.shape) != (stage.steps, factors.shape[1], j, tensors, 2)):
            shapes = {k: tuple(v.shape) for k, v in logged.items()}
            raise EstimatorError(
                f"stage {stage.id!r}: the logged curvature sketch {shapes} does not fit this "
                f"model (factors ({stage.steps}, samples, {width}), dots ({stage.steps}, "
                f"samples, {j}, {tensors}, 2)); re-record it or drop projection=")
        yield j, factors, _dots_by_stage(dots.to(torch.float64))


def _walk_factors(problem: Problem, spec: SketchSpec, tangents: SketchedTangents) -> None:
    """The factors of every step, computed in one walk of the factual trajectory, and each
    stage propagated as soon as its last step is sketched."""
    modules: list[LossModule] = []
    disp = problem.displacements
    pairs = torch.stack([torch.stack([d, m]) for d, m in zip(disp.changes, disp.momenta)])
    stage_rows: list[tuple[torch.Tensor, torch.Tensor]] = []

    def flush(stage: int) -> None:
        factors, dots = (torch.stack(column) for column in zip(*stage_rows))
        tangents.run_stage(stage, factors, _dots_by_stage(dots))
        stage_rows.clear()

    def before(step: FactualStep, model: nn.Module) -> None:
        nonlocal pairs
        if not modules:
            modules.append(LossModule(model, problem.task, "mean"))
            first = next(iter(model.parameters()))
            pairs = pairs.to(first.device, first.dtype)  # once, in the blocks' dtype
        if step.local_step == 0 and stage_rows:
            flush(step.stage_index - 1)
        factors = ggn_factors(modules[0], params_of(model), step.batch, step.seed,
                              problem.layout, spec.samples,
                              step_generator(spec, step.global_step))
        stage_rows.append((tangents.sketch.project_blocks(factors),
                           tensor_dots(factors, pairs[:step.stage_index], problem.layout)))

    walk(problem.version, problem.root, problem.task, 1, before)
    flush(len(problem.version.stages) - 1)


def _dots_by_stage(dots: torch.Tensor) -> torch.Tensor:
    """(steps, m, K', tensors, 2) → (steps, K', 2·tensors, m), columns ordered as the
    coefficient part of a ``SketchedTangents`` row (all D_k coefficients, then all M_k)."""
    steps, m, stages, tensors, _ = dots.shape
    return dots.permute(0, 2, 4, 3, 1).reshape(steps, stages, 2 * tensors, m)
