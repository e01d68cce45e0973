"""``aa-stationary``: segment-stationary curvature (docs/estimators.md §4.2, after SOURCE).

Inside each later SGD stage j the Hessian is taken as constant, H̄_j, measured once at the
stage's start checkpoint on a few of its logged batches, and kept to its top ``rank``
eigenpairs (Lanczos through scipy's ``eigsh`` on exact HVPs). A displacement splits into its
components along those eigenvectors — each evolves by a scalar 2×2 recursion with curvature h_i
through the stage's logged steps — and the rest, which evolves as in ``aa`` (H = 0). No
trajectory replay: about 3·rank HVPs per stage instead of one per step.

Stages whose step coefficients differ between parameter groups, and Adam/AdamW stages (their
per-coordinate preconditioner does not share the eigenbasis), fall back to ``aa``'s H = 0 map.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators.aa import H0Propagator, ordered_product, step_maps
from auditor.estimators.base import StageEffects, StageEmbeddings
from auditor.estimators.common import embeddings_from_flat, settings_hash
from auditor.estimators.curvature import LossModule, hessian_operator
from auditor.estimators.device import check_device, task_on
from auditor.estimators.dynamics import StageCoefficients
from auditor.estimators.gradients import score_by_gradients
from auditor.estimators.layout import ParamLayout, stage_displacements
from auditor.estimators.trajectory import all_coefficients, params_of
from auditor.lineage.counterfactual import load_model
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask


class StationaryEstimator:
    name: ClassVar[str] = "aa-stationary"
    version: ClassVar[str] = "1"

    def __init__(self, rank: int = 32, batches: int = 4, device: str = "auto"):
        self.rank, self.batches = int(rank), int(batches)
        self.device = check_device(device)  # not in the config hash: same numbers up to rounding

    @property
    def config_hash(self) -> str:
        return settings_hash(self.name, self.version, {"rank": self.rank,
                                                       "batches": self.batches})

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        task = task_on(task, self.device)
        layout = ParamLayout.of(task.build_model())
        coefficients = all_coefficients(version, root, layout)
        disp = stage_displacements(version, root, layout)
        h0 = H0Propagator(version, root, layout, coefficients)
        spectra = {j: self.spectrum(version, root, task, layout, j)
                   for j in range(1, len(version.stages)) if _uniform_sgd(coefficients[j])}
        modes = {j: _mode_maps(coefficients[j], values) for j, (values, _) in spectra.items()}
        flats = []
        for k in range(len(version.stages)):
            d, dm = disp.changes[k].clone(), disp.momenta[k].clone()
            for j in range(k + 1, len(version.stages)):
                if j in spectra:
                    d, dm = _stage_map(h0, j, modes[j], spectra[j][1], d, dm)
                else:
                    d, dm = h0.apply_stage(j, d, dm)
            flats.append(d)
        return embeddings_from_flat(self, version, layout, flats, started,
                                    {"stationary_stages": sorted(spectra)})

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        return score_by_gradients(embeddings, behaviours, model)

    def spectrum(self, version, root, task, layout: ParamLayout, j: int):
        """Top eigenpairs of the loss Hessian at θ_{s_j} on the stage's first logged batches."""
        from scipy.sparse.linalg import LinearOperator, eigsh  # ~0.2 s to import: when used

        stage = version.stages[j]
        model = load_model(task, version, Path(root), stage.theta_start).eval()
        ids = [i for batch in (stage.batch_ids or [])[:self.batches] for i in batch]
        op = hessian_operator(LossModule(model, task), params_of(model),
                              task.batch(stage.id, ids), None, layout)
        size = layout.total
        rank = max(1, min(self.rank, size - 2))
        linear = LinearOperator((size, size), dtype=np.float64,
                                matvec=lambda v: op(torch.from_numpy(np.ascontiguousarray(
                                    v, dtype=np.float64).reshape(-1))).numpy())
        values, vectors = eigsh(linear, k=rank, which="LM", v0=np.ones(size) / np.sqrt(size))
        return torch.from_numpy(values), torch.from_numpy(np.ascontiguousarray(vectors))


def _uniform_sgd(coeffs: StageCoefficients) -> bool:
    if coeffs.kind != "sgd":
        return False
    active = sorted(set(coeffs.group_index.tolist()) - {coeffs.table["eta"].shape[1] - 1})
    return all(bool((table[:, active] == table[:, active[:1]]).all())
               for table in coeffs.table.values()) if active else False


def _stage_map(h0: H0Propagator, j: int, maps: torch.Tensor, basis: torch.Tensor,
               d: torch.Tensor, dm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(δ, δm) through stage j: each curvature mode by its 2×2 map, the rest with H = 0."""
    a, b = basis.T @ d, basis.T @ dm
    d_rest, dm_rest = h0.apply_stage(j, d - basis @ a, dm - basis @ b)
    a, b = maps[:, 0, 0] * a + maps[:, 0, 1] * b, maps[:, 1, 0] * a + maps[:, 1, 1] * b
    return d_rest + basis @ a, dm_rest + basis @ b


def _mode_maps(coeffs: StageCoefficients, curvature: torch.Tensor) -> torch.Tensor:
    """(rank, 2, 2): the stage's SGD map for each mode h, whose step has a = (λ + ν·h)·δ."""
    padding = coeffs.table["eta"].shape[1] - 1  # the column of coordinates in no group
    group = int(coeffs.group_index[coeffs.group_index < padding][0])
    col = {k: v[:, group].expand(len(curvature), -1) for k, v in coeffs.table.items()}
    col["lam_c"] = col["lam_c"] + coeffs.clip * curvature[:, None]
    col["active"] = torch.ones_like(col["lam_c"])
    return ordered_product(step_maps("sgd", coeffs.reset, col))
