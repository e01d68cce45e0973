"""Behaviours whose numbers are not finite at the final model, for the numerical-fault tests
(``module:function`` entry points, importable by the CLI and by Ray workers)."""

from __future__ import annotations

from auditor.behaviours.base import Behaviour
from auditor.behaviours.library import probe_loss
from tests.support.tinytask import TinyTask


def _scaled(name: str, factor: float) -> Behaviour:
    """The probe loss times ``factor``: NaN or Inf wherever it is evaluated."""
    task = TinyTask()
    base = probe_loss("base", task.x[:16], task.y[:16])
    return Behaviour(name=name, direction="harm",
                     surrogate=lambda model: base.surrogate(model) * factor,
                     description=f"probe loss times {factor}", probe_digest=base.probe_digest)


def nan_behaviours() -> list[Behaviour]:
    return [_scaled("nan-loss", float("nan"))]


def inf_behaviours() -> list[Behaviour]:
    return [_scaled("inf-loss", float("inf"))]


def mixed_behaviours() -> list[Behaviour]:
    """One finite behaviour beside a NaN one."""
    task = TinyTask()
    return [probe_loss("probe-loss", task.x[:16], task.y[:16]), *nan_behaviours()]
