"""The bad-input corpus: each case writes one bad input under a work folder and says which
``auditor`` command meets it and what the one-line error must say.

Cases are data, so ``tests/reliability/test_bad_inputs.py`` and ``bench/faults.py`` share them.
A case's ``make(work, db)`` returns the command's arguments (``--db`` included where the command
takes one); the harness checks exit 2, the message, an unchanged store and no pickle side effect.
"""

from __future__ import annotations

import pickle
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

PWNED = "PWNED"  # the file a malicious pickle would create in the work folder


@dataclass(frozen=True)
class Case:
    name: str
    room: str
    make: Callable[[Path, Path], list[str]]
    expect: str  # a fragment of the one-line error


CASES: list[Case] = []


def case(room: str, expect: str):
    def register(make: Callable[[Path, Path], list[str]]):
        CASES.append(Case(make.__name__.removeprefix("bad_").replace("_", "-"), room, make,
                          expect))
        return make
    return register


# --- lineage files -------------------------------------------------------------------------

LINEAGE = textwrap.dedent("""\
    model: imported
    version: v9
    created_at: 2026-10-05T12:00:00Z
    stages:
      - id: pretrain
        kind: pretrain
        checkpoint_in: ckpt/init.safetensors
        checkpoint_out: ckpt/pretrain.safetensors
        optimizer: {kind: sgd, momentum: 0.9, weight_decay: 0.0001}
        steps: 10
        schedule: {kind: cosine, lr: 0.1, warmup_steps: 2}
      - id: sft
        kind: fine-tune
        checkpoint_in: ckpt/pretrain.safetensors
        checkpoint_out: ckpt/sft.safetensors
        optimizer: {kind: adamw, betas: [0.9, 0.95], weight_decay: 0.01}
        steps: 4
        schedule: {kind: constant, lr: 0.001}
    """)


def _weights(seed: int, rows: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"0.weight": torch.randn(rows, 3, generator=gen),
            "0.bias": torch.randn(rows, generator=gen)}


def write_lineage(work: Path, text: str = LINEAGE) -> Path:
    (work / "ckpt").mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(("init", "pretrain", "sft")):
        save_file(_weights(seed), str(work / f"ckpt/{name}.safetensors"))
    path = work / "lineage.yaml"
    path.write_text(text)
    return path


def _import(work: Path, db: Path, text: str = LINEAGE) -> list[str]:
    return ["lineage", "import", str(write_lineage(work, text)), "--db", str(db)]


def _edit(old: str, new: str) -> str:
    assert old in LINEAGE, old
    return LINEAGE.replace(old, new, 1)


@case("lineage", "line")
def bad_yaml_syntax(work, db):
    return _import(work, db, _edit("steps: 10", "steps: [10"))


@case("lineage", "colour")
def bad_unknown_top_level_key(work, db):
    return _import(work, db, _edit("model: imported", "model: imported\ncolour: red"))


@case("lineage", "version")
def bad_missing_version(work, db):
    return _import(work, db, _edit("version: v9\n", ""))


@case("lineage", "stages[0].steps")
def bad_steps_not_a_number(work, db):
    return _import(work, db, _edit("steps: 10", "steps: ten"))


@case("lineage", "stages[0].optimizer.kind")
def bad_unknown_optimizer(work, db):
    return _import(work, db, _edit("kind: sgd", "kind: lion"))


@case("lineage", "created_at")
def bad_date(work, db):
    return _import(work, db, _edit("2026-10-05T12:00:00Z", "last tuesday"))


@case("lineage", "duplicate stage ids")
def bad_duplicate_stage_ids(work, db):
    return _import(work, db, _edit("id: sft", "id: pretrain"))


@case("lineage", "stages[0].optimizer.momentum")
def bad_momentum_out_of_range(work, db):
    return _import(work, db, _edit("momentum: 0.9", "momentum: 1.5"))


@case("lineage", "mapping")
def bad_top_level_is_a_list(work, db):
    return _import(work, db, "- model: imported\n")


@case("lineage", "mapping")
def bad_empty_lineage_file(work, db):
    return _import(work, db, "")


@case("lineage", "file not found")
def bad_lineage_file_missing(work, db):
    return ["lineage", "import", str(work / "nowhere.yaml"), "--db", str(db)]


@case("lineage", "stages[1].convention")
def bad_unknown_convention(work, db):
    return _import(work, db, _edit("kind: fine-tune", "kind: fine-tune\n    convention: maybe"))


@case("lineage", "not in the store")
def bad_unknown_version_shown(work, db):
    return ["lineage", "show", "imported@nope", "--db", str(db)]


# --- checkpoints ---------------------------------------------------------------------------

def _import_after(work: Path, db: Path, damage: Callable[[Path], None]) -> list[str]:
    argv = _import(work, db)
    damage(work / "ckpt/pretrain.safetensors")
    return argv


@case("checkpoint", "does not exist")
def bad_checkpoint_missing(work, db):
    return _import_after(work, db, Path.unlink)


@case("checkpoint", "not a readable safetensors")
def bad_checkpoint_truncated(work, db):
    return _import_after(work, db, lambda p: p.write_bytes(p.read_bytes()[:40]))


@case("checkpoint", "not a readable safetensors")
def bad_checkpoint_empty(work, db):
    return _import_after(work, db, lambda p: p.write_bytes(b""))


@case("checkpoint", "sha256")
def bad_checkpoint_hash_mismatch(work, db):
    return _import(work, db, _edit("checkpoint_out: ckpt/pretrain.safetensors",
                                   "checkpoint_out: {path: ckpt/pretrain.safetensors, sha256: '"
                                   + "0" * 64 + "'}"))


@case("checkpoint", "changes shape")
def bad_checkpoint_wrong_shapes(work, db):
    return _import_after(work, db, lambda p: save_file(_weights(5, rows=6), str(p)))


@case("checkpoint", "NaN")
def bad_checkpoint_nan_weights(work, db):
    def poison(path: Path) -> None:
        weights = _weights(1)
        weights["0.weight"][0, 0] = float("nan")
        save_file(weights, str(path))
    return _import_after(work, db, poison)


class _Payload:
    """Unpickling this would run ``touch PWNED`` in the current folder."""

    def __reduce__(self):
        import os

        return (os.system, (f"touch {PWNED}",))


@case("checkpoint", "refused")
def bad_checkpoint_pickle_payload(work, db):
    argv = _import(work, db, _edit("checkpoint_out: ckpt/sft.safetensors",
                                   "checkpoint_out: ckpt/sft.pt"))
    (work / "ckpt/sft.pt").write_bytes(pickle.dumps({"0.weight": _Payload()}))
    return argv


@case("checkpoint", "refused")
def bad_checkpoint_is_random_bytes_named_pt(work, db):
    argv = _import(work, db, _edit("checkpoint_out: ckpt/sft.safetensors",
                                   "checkpoint_out: ckpt/sft.pt"))
    (work / "ckpt/sft.pt").write_bytes(bytes(range(256)) * 4)
    return argv


# --- the store -----------------------------------------------------------------------------

@case("store", "newer")
def bad_database_from_a_newer_schema(work, db):
    import duckdb

    with duckdb.connect(str(db)) as conn:
        conn.execute("INSERT INTO schema_migrations (name, applied_at) "
                     "VALUES ('0999_from_the_future', now())")
    return ["log", "verify", "--db", str(db)]


@case("store", "cannot open the store")
def bad_database_is_not_duckdb(work, db):
    fake = work / "fake.duckdb"
    fake.write_bytes(b"SQLite format 3\x00" + bytes(4000))
    return ["log", "show", "--db", str(fake)]


@case("store", "holds")
def bad_locked_database(work, db):
    from lockholder import hold

    hold(db)
    return _import(work, db)


@case("store", "no store at")
def bad_database_path_does_not_exist(work, db):
    return ["lineage", "show", "imported@v1", "--db", str(work / "missing" / "auditor.duckdb")]


@case("store", "cannot open the store")
def bad_database_path_is_a_folder(work, db):
    (work / "folder.duckdb").mkdir()
    return ["log", "verify", "--db", str(work / "folder.duckdb")]


# --- more lineage mistakes -----------------------------------------------------------------

@case("lineage", "stages[1].id")
def bad_stage_id_with_spaces(work, db):
    return _import(work, db, _edit("id: sft", "id: 's f t'"))


@case("lineage", "stages[0].schedule.kind")
def bad_unknown_schedule(work, db):
    return _import(work, db, _edit("kind: cosine", "kind: wiggly"))


@case("lineage", "lr.csv")
def bad_schedule_csv_missing(work, db):
    return _import(work, db, _edit("schedule: {kind: constant, lr: 0.001}",
                                   "schedule: {kind: csv, path: lr.csv}"))


@case("lineage", "stages")
def bad_stages_not_chained(work, db):
    return _import(work, db, _edit("checkpoint_in: ckpt/pretrain.safetensors",
                                   "checkpoint_in: ckpt/init.safetensors"))


@case("lineage", "stages[1].optimizer.betas")
def bad_betas_not_a_pair(work, db):
    return _import(work, db, _edit("betas: [0.9, 0.95]", "betas: [0.9]"))


@case("lineage", "stages[0].schedule")
def bad_negative_learning_rate(work, db):
    return _import(work, db, _edit("lr: 0.1,", "lr: -0.1,"))


@case("lineage", "model@version")
def bad_version_key_without_at(work, db):
    return ["lineage", "show", "imported-v1", "--db", str(db)]


@case("remediation", "names no training task")
def bad_remediate_a_version_without_task(work, db):
    return ["remediate", "--version", "imported@v1", "--stage", "nope",
            "--behaviours", "auditor.demo.digits:behaviours", "--db", str(db)]


@case("remediation", "not in the store")
def bad_remediate_unknown_version(work, db):
    return ["remediate", "--version", "imported@v7", "--stage", "sft",
            "--behaviours", "auditor.demo.digits:behaviours", "--db", str(db)]


@case("lineage", "stages[1].colour")
def bad_unknown_key_inside_a_stage(work, db):
    return _import(work, db, _edit("kind: fine-tune", "kind: fine-tune\n    colour: red"))


@case("lineage", "stages[0].datasets[0].digest")
def bad_dataset_without_digest(work, db):
    return _import(work, db, _edit("schedule: {kind: cosine, lr: 0.1, warmup_steps: 2}",
                                   "schedule: {kind: cosine, lr: 0.1, warmup_steps: 2}\n"
                                   "    datasets: [{name: web, records: 10}]"))


@case("lineage", "stages[0].checkpoint_out.format")
def bad_checkpoint_format(work, db):
    return _import(work, db, _edit("checkpoint_out: ckpt/pretrain.safetensors",
                                   "checkpoint_out: {path: ckpt/pretrain.safetensors, "
                                   "format: onnx}"))


@case("lineage", "stages[0].steps")
def bad_zero_steps(work, db):
    return _import(work, db, _edit("steps: 10", "steps: 0"))


@case("lineage", "stages[0].optimizer.weight_decay")
def bad_negative_weight_decay(work, db):
    return _import(work, db, _edit("weight_decay: 0.0001", "weight_decay: -1"))


def _recorded(work: Path) -> Path:
    from tests.support.recorded import record_sgd

    folder = work / "run"
    record_sgd(folder)
    return folder


@case("checkpoint", "sha256")
def bad_recorded_checkpoint_swapped_on_disk(work, db):
    folder = _recorded(work)
    files = sorted((folder / "checkpoints").glob("model-*.safetensors"))
    files[1].write_bytes(files[0].read_bytes())  # a valid file, but not the recorded one
    return ["lineage", "add", str(folder), "--db", str(db)]


@case("lineage", "lineage.json")
def bad_recorded_folder_without_lineage(work, db):
    (work / "empty-run").mkdir()
    return ["lineage", "add", str(work / "empty-run"), "--db", str(db)]


# --- audit specs ---------------------------------------------------------------------------

AUDIT = textwrap.dedent("""\
    name: quarterly
    versions: {period: 2026-Q4}
    behaviours: {imported: "auditor.demo.digits:behaviours"}
    estimators: [aa]
    executor: {kind: local}
    """)


def _audit(work: Path, db: Path, text: str) -> list[str]:
    spec = work / "audit.yaml"
    spec.write_text(text)
    return ["audit", str(spec), "--db", str(db)]


def _audit_edit(old: str, new: str) -> str:
    assert old in AUDIT, old
    return AUDIT.replace(old, new, 1)


@case("audit", "colour")
def bad_audit_unknown_key(work, db):
    return _audit(work, db, AUDIT + "colour: red\n")


@case("audit", "executor.kind")
def bad_audit_unknown_executor(work, db):
    return _audit(work, db, _audit_edit("kind: local", "kind: cloud"))


@case("audit", "versions")
def bad_audit_without_versions(work, db):
    return _audit(work, db, _audit_edit("versions: {period: 2026-Q4}\n", ""))


@case("audit", "syntax error")
def bad_audit_yaml_syntax(work, db):
    return _audit(work, db, _audit_edit("estimators: [aa]", "estimators: [aa"))


@case("audit", "module:function")
def bad_audit_behaviours_not_an_entry_point(work, db):
    return _audit(work, db, _audit_edit('"auditor.demo.digits:behaviours"', "digits"))


@case("audit", "unknown estimator")
def bad_audit_unknown_estimator(work, db):
    return _audit(work, db, _audit_edit("estimators: [aa]", "estimators: [magic]"))


@case("audit", "2026-Q5")
def bad_audit_period(work, db):
    return _audit(work, db, _audit_edit("2026-Q4", "2026-Q5"))


# --- policies ------------------------------------------------------------------------------

POLICY = textwrap.dedent("""\
    policy: corpus
    version: "1"
    rules:
      - id: share
        rationale: no late stage may own most of the harm
        direction: harm
        metric: share
        comparator: ">"
        threshold: 0.5
        severity: block
    """)


def _gate(work: Path, db: Path, old: str, new: str) -> list[str]:
    assert old in POLICY, old
    path = work / "policy.yaml"
    path.write_text(POLICY.replace(old, new, 1))
    return ["gate", "--version", "imported@v1", "--policy", str(path), "--db", str(db)]


@case("policy", "rules[0].metric")
def bad_policy_unknown_metric(work, db):
    return _gate(work, db, "metric: share", "metric: vibes")


@case("policy", "rules[0].threshold")
def bad_policy_threshold_not_a_number(work, db):
    return _gate(work, db, "threshold: 0.5", "threshold: half")


@case("policy", "rules[0].severity")
def bad_policy_unknown_severity(work, db):
    return _gate(work, db, "severity: block", "severity: fatal")


@case("policy", "duplicate")
def bad_policy_duplicate_rule_ids(work, db):
    rule = POLICY[POLICY.index("  - id: share"):]
    return _gate(work, db, "severity: block\n", "severity: block\n" + rule)


@case("policy", "rules[0].colour")
def bad_policy_unknown_rule_key(work, db):
    return _gate(work, db, "severity: block", "severity: block\n    colour: red")


@case("policy", "rules[0].threshold")
def bad_policy_share_above_one(work, db):
    return _gate(work, db, "threshold: 0.5", "threshold: 1.5")


# --- signing keys --------------------------------------------------------------------------

def _report(work: Path, db: Path, *signing: str) -> list[str]:
    return ["report", "--version", "imported@v1", "--out", str(work / "reports"), *signing,
            "--db", str(db)]


def _keys(work: Path, passphrase: str) -> Path:
    from auditor.report.keys import init_keys

    init_keys(work / "keys", passphrase=passphrase.encode())
    return work / "keys"


@case("keys", "wrong passphrase")
def bad_signing_key_wrong_passphrase(work, db):
    import os

    keys = _keys(work, "correct horse")
    os.environ["AUDITOR_CORPUS_PASSPHRASE"] = "battery staple"
    return _report(work, db, "--p12", str(keys / "signer.p12"),
                   "--passphrase-env", "AUDITOR_CORPUS_PASSPHRASE")


@case("keys", "expired")
def bad_signing_certificate_expired(work, db):
    key, cert = expired_identity(work / "expired")
    return _report(work, db, "--key", str(key), "--cert", str(cert))


@case("keys", "is not set")
def bad_signing_passphrase_variable_unset(work, db):
    keys = _keys(work, "correct horse")
    return _report(work, db, "--p12", str(keys / "signer.p12"),
                   "--passphrase-env", "AUDITOR_CORPUS_UNSET_VARIABLE")


@case("keys", "not a key/certificate file")
def bad_signing_p12_is_garbage(work, db):
    (work / "junk.p12").write_bytes(b"\x30\x82 not pkcs12")
    return _report(work, db, "--p12", str(work / "junk.p12"))


def expired_identity(folder: Path) -> tuple[Path, Path]:
    """A self-signed signing certificate whose validity ended yesterday."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired signer")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30)).not_valid_after(now - timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "key.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    return folder / "key.pem", folder / "cert.pem"


# --- "PDFs" --------------------------------------------------------------------------------

@case("pdf", "not a PDF")
def bad_report_is_not_a_pdf(work, db):
    (work / "report.pdf").write_text("<html>a report, honestly</html>")
    return ["verify", str(work / "report.pdf"), "--db", str(db)]


@case("pdf", "not a PDF")
def bad_report_is_empty(work, db):
    (work / "report.pdf").write_bytes(b"")
    return ["verify", str(work / "report.pdf")]


@case("pdf", "cannot read")
def bad_report_missing(work, db):
    return ["verify", str(work / "nowhere.pdf")]


import hostile  # noqa: E402,F401 - registers the hostile-input cases of issue 16
