"""A small demo-like store for the dashboard tests: two models, five versions (a passing, a
failing, a remediated one scored by exact replay, a waived one with vendor text holding markup,
one never audited), gated by the real policy engine, with one signed release-gate report."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa

from auditor import api
from tests.support.factories import fake_sha, make_version

HOSTILE = "<script>alert('x')</script>"
POLICY = textwrap.dedent(f"""\
    policy: serve-test
    version: "1"
    behaviours:
      toxicity: {{direction: harm}}
      accuracy: {{direction: benefit}}
    rules:
      - id: toxicity-share
        rationale: No single stage may cause most of the model's toxicity.
        behaviours: [toxicity]
        metric: share
        comparator: ">"
        threshold: 0.6
        materiality: 0.05
        severity: block
      - id: accuracy-loss
        rationale: A stage that costs more than 0.2 accuracy is reviewed.
        behaviours: [accuracy]
        metric: contribution
        comparator: "<"
        threshold: -0.2
        severity: warn
    waivers:
      - rule: toxicity-share
        version: tox@v1
        owner: ana@example.org
        reason: "vendor retrains the data in Q1 {HOSTILE}"
        expires: 2027-03-31
    """)
TODAY = date(2026, 12, 15)
# (model, version, created, estimator, toxicity effects, accuracy effects)
VERSIONS = (
    ("clf", "v1", datetime(2026, 10, 5), "aa", [0.01, 0.02, 0.015], [0.3, 0.1, 0.02]),
    ("clf", "v2", datetime(2026, 11, 10), "aa", [0.02, 0.45, 0.03], [0.3, -0.25, 0.02]),
    ("clf", "v3", datetime(2026, 12, 1), "replay", [0.01, 0.02], [0.3, 0.03]),
    ("tox", "v1", datetime(2026, 11, 15), "aa", [0.05, 0.6, 0.01], [0.2, 0.05, 0.01]),
)
UNAUDITED = ("tox", "v2", datetime(2027, 1, 10))
FAILING, REMEDIATED, WAIVED = "clf@v2", "clf@v3", "tox@v1"


@dataclass
class Built:
    db: Path
    policy: Path
    keys: object          # api.init_keys result: .root, .p12
    report_pdf: Path
    report_id: str
    tampered_pdf: Path


def _version(model, name, created, stages):
    version = make_version(model, name, stages=stages,
                           created_at=created.replace(tzinfo=timezone.utc),
                           description=f"{model} classifier {name}")
    if model != "tox":
        return version
    hostile = []
    for stage in version.stages:  # vendor-supplied text that holds markup
        # kinds and tags are identifiers (docs/lineage-import.md: markup cannot be one); the
        # free-text fields are where a vendor's markup can stand
        data = [d.model_copy(update={"provenance": f"vendor {HOSTILE}"})
                for d in stage.datasets]
        update = {"datasets": data}
        if stage.id == "s1":
            update["notes"] = f"vendor notes {HOSTILE}"
        hostile.append(stage.model_copy(update=update))
    return version.model_copy(update={"stages": hostile})


def _scores(version, estimator, effects) -> pa.Table:
    rows = []
    for behaviour, direction, values, metric in (
            ("toxicity", "harm", effects[0], 0.1 + sum(effects[0])),
            ("accuracy", "benefit", effects[1], 0.6 + sum(effects[1]) / 2)):
        for k, effect in enumerate(values):
            stage = version.stages[k]
            rows.append({"model": version.model, "version": version.version, "stage_index": k,
                         "stage_id": stage.id, "stage_kind": stage.kind, "behaviour": behaviour,
                         "direction": direction, "estimator": estimator,
                         "estimator_version": "1", "convention": "reset",
                         "config_hash": "cfg-serve", "effect": effect, "share": None,
                         "metric_value": metric})
    return pa.Table.from_pylist(rows)


def build(folder: Path) -> Built:
    db, policy = folder / "serve.duckdb", folder / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    with api.open_store(db) as store, store.transaction():
        store.add_behaviour("toxicity", "harm", "share of toxic completions", fake_sha("tox"))
        store.add_behaviour("accuracy", "benefit", "held-out accuracy", fake_sha("acc"))
        for model, name, created, estimator, tox, acc in VERSIONS:
            version = _version(model, name, created, len(tox))
            store.add_version(version, source=str(folder))
            store.record_run("audit", {"estimator": estimator, "version": version.key},
                             scores=_scores(version, estimator, (tox, acc)))
        store.add_version(_version(UNAUDITED[0], UNAUDITED[1], UNAUDITED[2], 3),
                          source=str(folder))
        store.record_run("remediation", {"from": FAILING, "to": REMEDIATED,
                                         "dropped_stage": "s1",
                                         "before": {"toxicity": 0.52, "accuracy": 0.71},
                                         "after": {"toxicity": 0.04, "accuracy": 0.83}})
    for model, name, *_ in VERSIONS:
        api.gate(f"{model}@{name}", db=db, policy=policy, today=TODAY)
    keys = api.init_keys(folder / "keys", demo=True)
    made = api.make_report(db=db, out_dir=folder / "reports", version=FAILING,
                           signing=api.signer_settings(p12=keys.p12),
                           html=False)
    tampered = folder / "tampered.pdf"
    data = bytearray(made.pdf.read_bytes())
    at = data.index(b"/Producer") if b"/Producer" in data else len(data) // 3
    data[at + 12] ^= 0x01  # one bit inside the signed bytes
    tampered.write_bytes(bytes(data))
    return Built(db, policy, keys, made.pdf, made.report_id, tampered)
