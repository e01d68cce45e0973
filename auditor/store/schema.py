"""The store's tables, as named migrations applied in order.

A migration is never edited once released: a schema change is a new migration appended to
``MIGRATIONS``. The names applied to a file are recorded in ``schema_migrations``; a file that
records a name this code does not know was written by a newer auditor.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    # tables whose existing rows the migration changes (new columns, back-filled values): the
    # rows of each subject that still match the log get a replacing digest in the migration's
    # event, so the log keeps verifying; rows that did not match it stay flagged
    rehash: tuple[str, ...] = ()


_CORE = """
CREATE TABLE events (
    seq BIGINT NOT NULL, "at" TIMESTAMP NOT NULL, actor VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    subject VARCHAR, payload_json VARCHAR NOT NULL, rows_digest VARCHAR NOT NULL,
    prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL);
CREATE TABLE models (model VARCHAR NOT NULL, added_at TIMESTAMP NOT NULL);
CREATE TABLE versions (
    model VARCHAR NOT NULL, version VARCHAR NOT NULL, created_at TIMESTAMP, task VARCHAR,
    parameters BIGINT, description VARCHAR, licence VARCHAR, parent VARCHAR,
    stage_count INTEGER NOT NULL, lineage_json VARCHAR NOT NULL, lineage_sha256 VARCHAR NOT NULL,
    source VARCHAR, added_at TIMESTAMP NOT NULL);
CREATE TABLE stages (
    model VARCHAR NOT NULL, version VARCHAR NOT NULL, stage_index INTEGER NOT NULL,
    stage_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, started_at TIMESTAMP, ended_at TIMESTAMP,
    convention VARCHAR NOT NULL, theta_start_sha256 VARCHAR NOT NULL,
    theta_end_sha256 VARCHAR NOT NULL, optimizer_start_sha256 VARCHAR,
    optimizer_end_sha256 VARCHAR, optimizer_kind VARCHAR NOT NULL, steps INTEGER NOT NULL,
    replayable BOOLEAN NOT NULL, config_hash VARCHAR, code_commit VARCHAR);
CREATE TABLE datasets (
    model VARCHAR NOT NULL, version VARCHAR NOT NULL, stage_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL, digest VARCHAR NOT NULL, records BIGINT NOT NULL, licence VARCHAR,
    provenance VARCHAR, tags VARCHAR[]);
CREATE TABLE checkpoints (
    model VARCHAR NOT NULL, version VARCHAR NOT NULL, stage_id VARCHAR NOT NULL,
    role VARCHAR NOT NULL, uri VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, format VARCHAR NOT NULL);
"""

_RUNS_SCORES = """
CREATE TABLE runs (
    run_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, config_json VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL, status VARCHAR NOT NULL, actor VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP);
CREATE TABLE stage_scores (
    run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, version VARCHAR NOT NULL,
    stage_index INTEGER NOT NULL, stage_id VARCHAR NOT NULL, stage_kind VARCHAR,
    behaviour VARCHAR NOT NULL, direction VARCHAR NOT NULL, estimator VARCHAR NOT NULL,
    estimator_version VARCHAR, convention VARCHAR, config_hash VARCHAR NOT NULL,
    effect DOUBLE, share DOUBLE, metric_value DOUBLE);
CREATE TABLE behaviours (
    name VARCHAR NOT NULL, direction VARCHAR NOT NULL, description VARCHAR,
    probe_digest VARCHAR, added_at TIMESTAMP NOT NULL);
"""

_POLICY_REPORTS = """
CREATE TABLE policy_results (
    run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, version VARCHAR NOT NULL,
    policy_id VARCHAR NOT NULL, policy_version VARCHAR, policy_hash VARCHAR NOT NULL,
    rule_id VARCHAR NOT NULL, severity VARCHAR NOT NULL, behaviour VARCHAR, stage_id VARCHAR,
    metric VARCHAR, comparator VARCHAR, threshold DOUBLE, observed DOUBLE,
    outcome VARCHAR NOT NULL, reason VARCHAR, waiver_owner VARCHAR, waiver_reason VARCHAR,
    waiver_expiry DATE, estimator VARCHAR, config_hash VARCHAR);
CREATE TABLE verdicts (
    run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, version VARCHAR NOT NULL,
    policy_id VARCHAR NOT NULL, policy_hash VARCHAR NOT NULL, verdict VARCHAR NOT NULL,
    evaluated_at TIMESTAMP NOT NULL);
CREATE TABLE reports (
    report_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, signer VARCHAR, created_at TIMESTAMP NOT NULL);
"""

_FIDELITY = """
CREATE TABLE fidelity_checks (
    run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, version VARCHAR NOT NULL,
    estimator VARCHAR NOT NULL, config_hash VARCHAR NOT NULL, stages_checked INTEGER NOT NULL,
    behaviours_checked INTEGER NOT NULL, pearson DOUBLE, sign_agreement DOUBLE,
    max_abs_error DOUBLE, passed BOOLEAN NOT NULL, checked_at TIMESTAMP NOT NULL);
"""

# Certified verdicts (docs/certify.md): the evidence behind every stage effect — ``exact`` (a
# leave-stage-out replay, lo = hi = effect), ``estimate`` (an estimate with its calibrated band
# [lo, hi] and the calibration it came from) or ``uncalibrated`` (no band) — and the
# calibrations themselves. Rows stored before this migration get their estimator's evidence.
_CERTIFY = """
ALTER TABLE stage_scores ADD COLUMN evidence VARCHAR;
ALTER TABLE stage_scores ADD COLUMN lo DOUBLE;
ALTER TABLE stage_scores ADD COLUMN hi DOUBLE;
ALTER TABLE stage_scores ADD COLUMN calibration_id VARCHAR;
UPDATE stage_scores SET evidence = CASE WHEN estimator = 'replay' THEN 'exact'
                                        ELSE 'uncalibrated' END;
UPDATE stage_scores SET lo = effect, hi = effect WHERE estimator = 'replay';
ALTER TABLE policy_results ADD COLUMN evidence VARCHAR;
ALTER TABLE policy_results ADD COLUMN observed_lo DOUBLE;
ALTER TABLE policy_results ADD COLUMN observed_hi DOUBLE;
CREATE TABLE calibrations (
    calibration_id VARCHAR NOT NULL, estimator VARCHAR NOT NULL, config_hash VARCHAR NOT NULL,
    model VARCHAR, alpha DOUBLE NOT NULL, coverage_target DOUBLE NOT NULL, n INTEGER NOT NULL,
    n_units INTEGER NOT NULL, normalisation VARCHAR NOT NULL, pooling VARCHAR NOT NULL,
    strata VARCHAR NOT NULL, q DOUBLE, q_json VARCHAR NOT NULL, units_json VARCHAR NOT NULL,
    residuals_json VARCHAR NOT NULL, measured_coverage DOUBLE, coverage_json VARCHAR NOT NULL,
    median_relative_error DOUBLE, source VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL);
"""

# Behaviour definitions stored by the audit pipeline (docs/store.md): what each behaviour's
# metric is and how many probe examples it is measured on, beside its description and digest.
_BEHAVIOUR_DEFINITIONS = """
ALTER TABLE behaviours ADD COLUMN metric VARCHAR;
ALTER TABLE behaviours ADD COLUMN probe_size INTEGER;
"""

EVIDENCE = ("exact", "estimate", "uncalibrated")

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_core_lineage_and_events", _CORE),
    Migration("0002_runs_scores_behaviours", _RUNS_SCORES),
    Migration("0003_policy_results_verdicts_reports", _POLICY_REPORTS),
    Migration("0004_fidelity_checks", _FIDELITY),
    Migration("0005_certified_evidence_calibrations", _CERTIFY,
              rehash=("stage_scores", "policy_results")),
    Migration("0006_behaviour_definitions", _BEHAVIOUR_DEFINITIONS, rehash=("behaviours",)),
)

# How the rows of each logged table are grouped: one digest per (table, subject) in the log. A
# subject is its columns joined by "@" (``model@version``); they are left out of the row text,
# since a row whose subject changes leaves one subject and joins another.
_VERSION = ("model", "version")
SUBJECT_COLUMNS: dict[str, tuple[str, ...]] = {
    "schema_migrations": ("name",),
    "models": ("model",),
    "versions": _VERSION,
    "stages": _VERSION,
    "datasets": _VERSION,
    "checkpoints": _VERSION,
    "runs": ("run_id",),
    "stage_scores": ("run_id",),
    "behaviours": ("name",),
    "policy_results": ("run_id",),
    "verdicts": ("run_id",),
    "reports": ("report_id",),
    "fidelity_checks": ("run_id",),
    "calibrations": ("calibration_id",),
}


def subject_sql(table: str) -> str:
    return " || '@' || ".join(f'"{name}"' for name in SUBJECT_COLUMNS[table])


VERDICTS = ("PASS", "FAIL", "PASS-WITH-WAIVERS", "INDETERMINATE")
RUN_STATUSES = ("running", "complete", "failed")
