"""The audit spec (``audit.yaml``): what to audit, with which estimators, and where to run it.

Parsed strictly: an unknown key is an error naming the key and its line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from auditor.errors import InputError
from auditor.yamlio import read_document, validate

ENTRY_POINT = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
DEFAULT_ESTIMATOR = "aa"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionSelection(_Strict):
    ids: list[str] = Field(default_factory=list, description="model@version keys to audit")
    period: str | None = Field(None, description="every stored version created in it, e.g. 2026-Q4")
    models: list[str] = Field(default_factory=list,
                              description="only these models (default: all in the period)")


class ExecutorSettings(_Strict):
    kind: Literal["local", "ray"] = Field("local", description="in-process, or tasks on Ray")
    address: str | None = Field(None, description="Ray address: auto, host:port or ray://host:port;"
                                " none starts a local Ray instance")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray instance")
    num_gpus: float | None = Field(None, ge=0, description="GPUs per task; none: 1 when the "
                                   "cluster has GPUs, else 0")
    max_retries: int = Field(3, ge=0, description="retries of a task whose worker died")
    max_in_flight: int | None = Field(None, ge=1, description="tasks submitted at once "
                                      "(default: twice the cluster's CPUs or GPUs)")


class ReportSettings(_Strict):
    out: str | None = Field(None, description="where the report PDF goes")
    title: str | None = None
    sign: bool = False


class CalibrationSettings(_Strict):
    """Audit sampling (docs/certify.md): replay a seeded sample of units, stratified by stage
    kind, and build split-conformal bands at ``coverage``."""

    sample: float = Field(0.2, gt=0, le=1, description="share of the units sampled")
    min: int = Field(3, ge=0, description="fewest units sampled (paid ones; free ones always)")
    coverage: float = Field(0.9, gt=0, lt=1, description="nominal coverage of the bands")
    share: float = Field(0.2, gt=0, le=1, description="most of the full replay's steps the "
                         "sample may spend")
    normalisation: Literal["absolute", "relative", "behaviour"] = Field(
        "behaviour", description="scale of a band: behaviour (the largest |estimate| of the "
        "behaviour over the version's stages; chosen on bench/certify.py), relative (|estimate|) "
        "or absolute (1)")
    pooling: Literal["pair", "unit"] = "pair"
    strata: Literal["kind", "none"] = "kind"
    fallback: Literal["none", "pooled"] = Field(
        "none", description="a stage kind the sample did not reach: none (infinite band, its "
        "rows go to replay) or pooled (the other kinds' band; not calibrated for it)")
    seed: int = 0


class ReplaySettings(_Strict):
    """What to replay exactly (docs/certify.md)."""

    mode: Literal["decisive", "sample", "all", "none"] = Field(
        "decisive", description="decisive: the sample plus the units close rows need; sample: "
        "calibration only; all: every unit; none: no replay")
    budget: int | str | None = Field(
        None, description="training steps, or 'N%' of the version's own training; none: "
                          "no limit")
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)
    device: str = Field(
        "auto", description="where replay units retrain: auto (the GPU a Ray task was granted "
        "— one is requested only where the cluster has GPUs — else CPU), cpu (bitwise the "
        "recorded CPU run; no GPU requested), cuda or cuda:N")

    @model_validator(mode="after")
    def _check_budget(self) -> ReplaySettings:
        from auditor.errors import EstimatorError
        from auditor.estimators.device import check_device

        try:
            check_device(self.device)
        except EstimatorError as exc:
            raise ValueError(f"device: {exc}") from exc
        if isinstance(self.budget, str) and not re.fullmatch(r"\d+(\.\d+)?%", self.budget):
            raise ValueError(f"budget: {self.budget!r} must be a number of steps or 'N%'")
        if isinstance(self.budget, int) and self.budget < 0:
            raise ValueError("budget: must not be negative")
        return self

    def steps_budget(self, own_steps: int) -> float:
        """The budget in training steps for a version trained ``own_steps`` steps."""
        if self.budget is None:
            return float("inf")
        if isinstance(self.budget, str):
            return float(self.budget[:-1]) / 100.0 * own_steps
        return float(self.budget)


class AuditSpec(_Strict):
    name: str = Field("audit", description="a label for the audit run")
    model_factory: str | None = Field(None, pattern=ENTRY_POINT,
                                      description="module:function returning the TrainingTask; "
                                      "default: the task each lineage names")
    versions: VersionSelection
    behaviours: str | dict[str, str | list[str]] = Field(
        description="module:function returning behaviours, or per model (key '*' for the rest)")
    estimators: list[str] = Field(default_factory=lambda: [DEFAULT_ESTIMATOR], min_length=1)
    estimator_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    policy: str | None = Field(None, description="policy YAML the gate and report use")
    report: ReportSettings = Field(default_factory=ReportSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    replay: ReplaySettings | None = Field(None, description="certified verdicts: what to "
                                          "replay (absent: no replay, estimates only)")
    allow_tasks: list[str] = Field(default_factory=list, description="modules whose task entry "
                                   "points, named by a lineage, may run (docs/reliability.md)")

    def allowed_task_modules(self) -> tuple[str, ...]:
        """Modules a lineage's task may come from: the spec's own entry points and allow_tasks."""
        from auditor.task import allowed_modules

        return allowed_modules([self.model_factory or "", *_all_behaviour_specs(self.behaviours)],
                               self.allow_tasks)

    @model_validator(mode="after")
    def _check(self) -> AuditSpec:
        if not self.versions.ids and not self.versions.period:
            raise ValueError("versions: name ids, a period, or both")
        for spec in _all_behaviour_specs(self.behaviours):
            if not _is_entry_point(spec):
                raise ValueError(f"behaviours: {spec!r} must look like 'package.module:function'")
        unused = sorted(set(self.estimator_settings) - set(self.estimators))
        if unused:
            raise ValueError(f"estimator_settings: {', '.join(unused)} is not among the "
                             f"estimators ({', '.join(self.estimators)})")
        return self

    def behaviour_sets(self, model: str) -> list[str]:
        """The behaviour entry points audited for ``model``."""
        return behaviour_sets(self.behaviours, model)


def behaviour_sets(behaviours: str | dict[str, str | list[str]] | None, model: str) -> list[str]:
    if behaviours is None:
        raise InputError(f"no behaviours given for {model}: name a module:function returning "
                         "the behaviours (e.g. --behaviours auditor.demo.digits:behaviours)")
    if isinstance(behaviours, str):
        return [behaviours]
    chosen = behaviours.get(model, behaviours.get("*"))
    if chosen is None:
        raise InputError(f"the audit spec names no behaviours for model {model!r}: add "
                         f"'{model}: module:function' (or '*') under behaviours")
    return [chosen] if isinstance(chosen, str) else list(chosen)


def _all_behaviour_specs(behaviours: str | dict[str, str | list[str]]) -> list[str]:
    if isinstance(behaviours, str):
        return [behaviours]
    specs: list[str] = []
    for chosen in behaviours.values():
        specs.extend([chosen] if isinstance(chosen, str) else chosen)
    return specs


def _is_entry_point(spec: str) -> bool:
    return re.match(ENTRY_POINT, spec) is not None


def load_spec(path: str | Path) -> AuditSpec:
    """Read and validate an audit.yaml; errors name the file, line and key."""
    data, lines = read_document(path)
    return validate(AuditSpec, data, path, lines)


def spec_from_options(period: str | None, behaviours: str | None,
                      estimator: str = DEFAULT_ESTIMATOR,
                      settings: dict[str, Any] | None = None) -> AuditSpec:
    """An audit of a period given on the command line (no audit.yaml)."""
    if not period or not behaviours:
        raise InputError("give an audit spec (audit.yaml), or --period and --behaviours")
    return one_estimator_spec({"period": period}, behaviours, estimator, settings)


def one_estimator_spec(versions: dict[str, Any], behaviours: str, estimator: str,
                       settings: dict[str, Any] | None = None, **fields: Any) -> AuditSpec:
    """An audit spec of one estimator built from options (a command line, an API call)."""
    try:
        return AuditSpec(versions=versions, behaviours=behaviours, estimators=[estimator],
                         estimator_settings={estimator: settings} if settings else {}, **fields)
    except ValueError as exc:  # pydantic's ValidationError
        raise InputError(f"bad audit options: {exc}") from None
