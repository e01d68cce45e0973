"""StageEffects → score rows (the ``stage_scores`` columns of docs/contracts.md, less run_id)."""

from __future__ import annotations

import pyarrow as pa

from auditor.estimators.base import StageEffects

SCORE_SCHEMA = pa.schema([
    ("model", pa.string()), ("version", pa.string()), ("stage_index", pa.int32()),
    ("stage_id", pa.string()), ("stage_kind", pa.string()), ("behaviour", pa.string()),
    ("direction", pa.string()), ("estimator", pa.string()), ("estimator_version", pa.string()),
    ("convention", pa.string()), ("config_hash", pa.string()), ("effect", pa.float64()),
    ("share", pa.float64()), ("metric_value", pa.float64()),
])


def score_rows(effects: StageEffects) -> pa.Table:
    """One row per (stage, behaviour), stages in order, behaviours in the order given."""
    share = effects.share
    columns: dict[str, list] = {name: [] for name in SCORE_SCHEMA.names}
    for k, (stage_id, kind) in enumerate(zip(effects.stages, effects.stage_kinds)):
        for q, (behaviour, direction) in enumerate(zip(effects.behaviours, effects.directions)):
            values = (effects.model, effects.version, k, stage_id, kind, behaviour, direction,
                      effects.estimator, effects.estimator_version, effects.convention,
                      effects.config_hash, float(effects.effects[k, q]), float(share[k, q]),
                      float(effects.metric_values[q]))
            for name, value in zip(SCORE_SCHEMA.names, values):
                columns[name].append(value)
    return pa.table(columns, schema=SCORE_SCHEMA)
