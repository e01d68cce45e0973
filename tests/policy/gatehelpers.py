"""Helpers of the policy tests: fake lineages with tags, score rows with hand-set effects,
policy texts."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from auditor.lineage.models import ModelVersion
from auditor.store import Store
from tests.support.factories import make_version

CONFIG = "cfg-a"


def tagged_version(model: str = "m", version: str = "v1", *, day: int = 1,
                   third_party: tuple[int, ...] = (1,), stages: int = 3) -> ModelVersion:
    """A fake lineage (stages s0 pretrain, s1 fine-tune, s2 alignment, …) whose listed stages
    train on data tagged third-party."""
    base = make_version(model, version, stages=stages,
                        created_at=datetime(2026, 11, day, tzinfo=timezone.utc))
    tagged = []
    for index, stage in enumerate(base.stages):
        if index in third_party:
            datasets = [d.model_copy(update={"tags": ["third-party"]}) for d in stage.datasets]
            stage = stage.model_copy(update={"datasets": datasets})
        tagged.append(stage)
    return base.model_copy(update={"stages": tagged})


def score_table(version: ModelVersion, effects: dict[str, list[float]], *,
                directions: dict[str, str] | None = None, estimator: str = "naive",
                config_hash: str = CONFIG) -> pa.Table:
    """Rows of the stage_scores contract: ``effects[behaviour][k]`` for stage k."""
    rows = []
    for behaviour, values in effects.items():
        direction = (directions or {}).get(behaviour, "harm")
        for index, effect in enumerate(values):
            stage = version.stages[index]
            rows.append({"model": version.model, "version": version.version,
                         "stage_index": index, "stage_id": stage.id, "stage_kind": stage.kind,
                         "behaviour": behaviour, "direction": direction,
                         "estimator": estimator, "estimator_version": "1",
                         "convention": "reset", "config_hash": config_hash,
                         "effect": float(effect), "share": np.nan, "metric_value": 0.0})
    return pa.Table.from_pylist(rows)


def add_scored(store: Store, version: ModelVersion, effects: dict[str, list[float]],
               **kwargs) -> str:
    with store.transaction():
        store.add_version(version)
    return store.record_run("audit", {"version": version.key},
                            scores=score_table(version, effects, **kwargs))


def one_rule(rule: str, *, extra: str = "", behaviours: str = "") -> str:
    """A policy text with one rule (indented YAML mapping lines, without the leading dash)."""
    body = textwrap.indent(textwrap.dedent(rule).strip(), "    ").lstrip()
    return (f"policy: test\nversion: '1'\n{behaviours}rules:\n  - id: r1\n"
            f"    rationale: because\n    {body}\n{extra}")
