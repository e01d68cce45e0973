"""The policy file as strict pydantic models: unknown keys and wrong types are errors.

A rule *fires* when ``observed <comparator> threshold`` holds for a selected (behaviour, stage);
what firing means is its severity: ``block`` fails the gate, ``warn`` and ``info`` are reported.
Checks that need the whole document (duplicate ids, thresholds in the metric's range, declared
behaviours, waivers naming real rules) live in ``auditor.policy.load`` so they can name a line.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditor.identifiers import identifier, label, normalise

Metric = Literal["contribution", "share", "rank", "delta_vs_previous"]
Comparator = Literal[">", ">=", "<", "<="]
Severity = Literal["block", "warn", "info"]
Direction = Literal["harm", "benefit"]

METRICS: tuple[str, ...] = get_args(Metric)
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BehaviourDecl(Strict):
    """A behaviour the policy knows by name (rules may only name declared behaviours)."""

    direction: Direction
    description: str = ""


class StageSelector(Strict):
    """Which stages a rule looks at. Fields combine with AND, the items of a list with OR;
    an empty selector selects every stage."""

    kinds: list[str] | None = Field(None, min_length=1, description="stage kinds")
    ids: list[str] | None = Field(None, min_length=1, description="exact stage ids")
    names: list[str] | None = Field(None, min_length=1, description="globs on stage ids")
    dataset_tags: list[str] | None = Field(
        None, min_length=1, description="a stage matches when one of its datasets has a tag")

    @field_validator("kinds", "dataset_tags", mode="before")
    @classmethod
    def _labels(cls, value):
        """Normal form, as lineages store them (auditor.identifiers)."""
        return [label(v, "selector value") for v in value] if isinstance(value, list) else value

    @field_validator("ids", mode="before")
    @classmethod
    def _ids(cls, value):
        return [identifier(v, "stage id") for v in value] if isinstance(value, list) else value

    @field_validator("names", mode="before")
    @classmethod
    def _globs(cls, value):
        return [normalise(v) if isinstance(v, str) else v for v in value] \
            if isinstance(value, list) else value


class Requirement(Strict):
    """What the scores must come from for a rule to be decided (else INDETERMINATE)."""

    estimators: list[str] | None = Field(None, min_length=1,
                                         description="estimators whose scores are accepted")
    fidelity: Literal["passed"] | None = Field(
        None, description="'passed': a replay fidelity spot check of the same estimator "
                          "configuration must have passed for the version")


class Rule(Strict):
    id: str = Field(pattern=_ID)
    rationale: str = Field(min_length=1)
    behaviours: list[str] | None = Field(None, min_length=1,
                                         description="declared behaviour names")
    direction: Direction | None = Field(None, description="every scored behaviour of it")
    metric: Metric
    comparator: Comparator
    threshold: float
    materiality: float = Field(0.0, ge=0.0, description=(
        "the rule applies only where the behaviour's total harm (sum of the positive harmful "
        "stage effects) exceeds this floor"))
    stages: StageSelector = StageSelector()
    severity: Severity = "block"
    requires: Requirement | None = None


class Waiver(Strict):
    rule: str
    version: str | None = Field(None, description="MODEL@VERSION the waiver covers")
    stage: str | None = Field(None, description="stage id the waiver covers")
    owner: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: date = Field(strict=False, description="last day the waiver applies (YYYY-MM-DD)")


class Policy(Strict):
    policy: str = Field(pattern=_ID, description="policy id")
    version: str = Field(min_length=1)
    description: str = ""
    estimator: str | None = Field(None, description="estimator whose scores are gated")
    requires: Requirement | None = Field(None, description="default requirement of every rule")
    confirm_fail_by_replay: bool = Field(False, description=(
        "certified gates (auditor gate --certify): confirm a blocking failure decided by an "
        "estimate by replaying the stage it blames, when the task can replay and the budget "
        "allows (docs/certify.md)"))
    behaviours: dict[str, BehaviourDecl] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)
    waivers: list[Waiver] = Field(default_factory=list)

    def requirement(self, rule: Rule) -> Requirement | None:
        return rule.requires or self.requires
