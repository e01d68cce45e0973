"""W3C PROV-JSON export of a model version's lineage.

Stages are activities; checkpoints and datasets are entities; each stage *used* its start
checkpoint and datasets and *generated* its end checkpoint, which *was derived from* the start.
"""

from __future__ import annotations

from typing import Any

from auditor.lineage.models import CheckpointRef, ModelVersion, Stage

NAMESPACE = "urn:auditor:"


def to_prov_json(version: ModelVersion) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "prefix": {"auditor": NAMESPACE},
        "entity": {}, "activity": {}, "agent": {}, "used": {}, "wasGeneratedBy": {},
        "wasDerivedFrom": {}, "wasInformedBy": {}, "wasAssociatedWith": {},
    }
    agent = f"auditor:code/{version.model}"
    doc["agent"][agent] = {"prov:type": "prov:SoftwareAgent", "auditor:task": version.task or ""}
    previous = None
    for stage in version.stages:
        _add_stage(doc, version, stage, agent)
        if previous is not None:
            doc["wasInformedBy"][f"_:inf-{stage.id}"] = {
                "prov:informed": _activity(version, stage),
                "prov:informant": _activity(version, previous)}
        previous = stage
    doc["entity"][f"auditor:model/{version.key}"] = {
        "prov:type": "auditor:ModelVersion", "auditor:parameters": version.parameters or 0,
        "auditor:final_checkpoint": version.stages[-1].theta_end.sha256}
    return doc


def _activity(version: ModelVersion, stage: Stage) -> str:
    return f"auditor:stage/{version.key}/{stage.id}"


def _entity(ref: CheckpointRef) -> str:
    return f"auditor:checkpoint/{ref.sha256}"


def _add_stage(doc: dict, version: ModelVersion, stage: Stage, agent: str) -> None:
    act = _activity(version, stage)
    doc["activity"][act] = {
        "prov:type": f"auditor:{stage.kind}",
        "prov:startTime": stage.started_at.isoformat() if stage.started_at else None,
        "prov:endTime": stage.ended_at.isoformat() if stage.ended_at else None,
        "auditor:optimizer": stage.optimizer.kind, "auditor:steps": stage.steps,
        "auditor:convention": stage.convention, "auditor:code_commit": stage.code_commit or "",
        "auditor:config_hash": stage.config_hash or "",
    }
    for ref in (stage.theta_start, stage.theta_end):
        doc["entity"][_entity(ref)] = {"prov:type": "auditor:Checkpoint",
                                       "auditor:sha256": ref.sha256, "auditor:uri": ref.uri}
    doc["used"][f"_:use-{stage.id}-in"] = {"prov:activity": act,
                                           "prov:entity": _entity(stage.theta_start)}
    for ds in stage.datasets:
        ent = f"auditor:dataset/{ds.name}/{ds.digest[:16]}"
        doc["entity"][ent] = {"prov:type": "auditor:Dataset", "auditor:digest": ds.digest,
                              "auditor:records": ds.records, "auditor:licence": ds.licence,
                              "auditor:provenance": ds.provenance, "auditor:tags": ds.tags}
        doc["used"][f"_:use-{stage.id}-{ds.name}"] = {"prov:activity": act, "prov:entity": ent}
    doc["wasGeneratedBy"][f"_:gen-{stage.id}"] = {"prov:entity": _entity(stage.theta_end),
                                                  "prov:activity": act}
    doc["wasDerivedFrom"][f"_:der-{stage.id}"] = {
        "prov:generatedEntity": _entity(stage.theta_end),
        "prov:usedEntity": _entity(stage.theta_start), "prov:activity": act}
    doc["wasAssociatedWith"][f"_:assoc-{stage.id}"] = {"prov:activity": act, "prov:agent": agent}
