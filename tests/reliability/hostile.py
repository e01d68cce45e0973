"""Hostile inputs of the outside test (issue 16), as more corpus cases: code-execution attempts,
resource-exhaustion attempts, duplicate keys, look-alike and absurd lineage values, special
files. Each must meet exit 2, one line naming the problem, an unchanged store and no payload
run (tests/reliability/harness.py); resource-exhaustion cases must also be fast
(``test_hostile_inputs.py`` times them).

Registered into ``corpus.CASES`` by importing this module (corpus.py does at its end).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from corpus import AUDIT, LINEAGE, POLICY, _audit, _edit, _import, case, write_lineage

# --- code execution: a lineage (vendor data) naming code ------------------------------------

CODE = "code-execution"
ALIAS_BOMB = ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
              "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
              "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
              "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n")


def _with_task(task: str) -> str:
    return _edit("model: imported", f"model: imported\ntask: {json.dumps(task)}").replace(
        "version: v9", "version: v7")


def _attribute_lineage_task(work: Path, db: Path, task: str, *extra: str) -> list[str]:
    """Import a lineage naming ``task`` (the import itself succeeds: a name is only data), then
    ask to attribute it: the task must be refused before its module is imported."""
    from auditor.cli import main

    assert main(_import(work, db, _with_task(task))) == 0
    return ["attribute", "--version", "imported@v7", "--behaviours", "payload:behaviours",
            "--estimator", "naive", *extra, "--db", str(db)]


@case(CODE, "is not allowed to run")
def bad_lineage_task_os_abort(work, db):
    return _attribute_lineage_task(work, db, "os:abort")


@case(CODE, "is not allowed to run")
def bad_lineage_task_tempfile_mkdtemp(work, db):
    return _attribute_lineage_task(work, db, "tempfile:mkdtemp")


@case(CODE, "is not allowed to run")
def bad_lineage_task_module_with_import_time_payload(work, db):
    return _attribute_lineage_task(work, db, "payload_on_import:task")


@case(CODE, "is not allowed to run")
def bad_lineage_task_in_a_submodule_look_alike(work, db):
    return _attribute_lineage_task(work, db, "payloadx.sub:task")


@case(CODE, "not a Python function or class")
def bad_allowed_module_but_a_builtin(work, db):
    return _attribute_lineage_task(work, db, "os:abort", "--allow-task", "os")


@case(CODE, "not a TrainingTask")
def bad_allowed_module_declared_return_is_not_a_task(work, db):
    return _attribute_lineage_task(work, db, "payload:touch_pwned", "--allow-task", "payload")


@case(CODE, "needs arguments")
def bad_allowed_module_function_needs_arguments(work, db):
    return _attribute_lineage_task(work, db, "payload:touch_pwned_with", "--allow-task",
                                   "payload")


@case(CODE, "is not allowed to run")
def bad_remediation_of_a_lineage_naming_os_system(work, db):
    from auditor.cli import main

    assert main(_import(work, db, _with_task("os:system"))) == 0
    return ["remediate", "--version", "imported@v7", "--stage", "sft", "--behaviours",
            "payload:behaviours", "--db", str(db)]


@case(CODE, "not a Python function or class")
def bad_behaviours_entry_point_is_a_builtin(work, db):
    from auditor.cli import main

    assert main(_import(work, db, _with_task("tests.support.tinytask:tiny_task"))) == 0
    return ["attribute", "--version", "imported@v7", "--behaviours", "os:getcwd",
            "--db", str(db)]


@case(CODE, "must look like")
def bad_lineage_task_with_shell_text(work, db):
    return _attribute_lineage_task(work, db, "os:system; touch PWNED")


# --- resource exhaustion -----------------------------------------------------------------

RES = "resource-exhaustion"


@case(RES, "alias bomb")
def bad_lineage_alias_bomb(work, db):
    return _import(work, db, LINEAGE + "notes_bomb:\n" + "".join(
        "  " + line + "\n" for line in ALIAS_BOMB.splitlines()))


@case(RES, "alias bomb")
def bad_policy_alias_bomb(work, db):
    (work / "policy.yaml").write_text(POLICY + "x:\n" + "".join(
        "  " + line + "\n" for line in ALIAS_BOMB.splitlines()))
    return ["policy", "check", str(work / "policy.yaml")]


@case(RES, "alias bomb")
def bad_audit_spec_alias_bomb(work, db):
    return _audit(work, db, AUDIT + ALIAS_BOMB)


@case(RES, "nested deeper")
def bad_lineage_nested_20000_deep(work, db):
    return _import(work, db, LINEAGE + "deep: " + "[" * 20000 + "]" * 20000 + "\n")


@case(RES, "nested deeper")
def bad_policy_nested_mappings(work, db):
    text = POLICY + "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n"
    (work / "policy.yaml").write_text(text)
    return ["policy", "check", str(work / "policy.yaml")]


@case(RES, "nested too deeply")
def bad_recorded_lineage_json_nested_deep(work, db):
    folder = work / "run"
    folder.mkdir()
    (folder / "lineage.json").write_text('{"model": ' + "[" * 3_000_000 + "]" * 3_000_000 + "}")
    return ["lineage", "add", str(folder), "--db", str(db)]


@case(RES, "recursive alias")
def bad_policy_recursive_alias(work, db):
    (work / "policy.yaml").write_text(POLICY + "loop: &loop [*loop]\n")
    return ["policy", "check", str(work / "policy.yaml")]


@case(RES, "larger than")
def bad_lineage_file_of_3_mib(work, db):
    return _import(work, db, LINEAGE + ("# padding " + "x" * 90 + "\n") * 32_000)


@case(RES, "not a regular file")
def bad_lineage_file_is_dev_zero(work, db):
    os.symlink("/dev/zero", work / "lineage.yaml")
    return ["lineage", "import", str(work / "lineage.yaml"), "--db", str(db)]


@case(RES, "special file")
def bad_checkpoint_links_to_proc_self_mem(work, db):
    write_lineage(work)
    (work / "ckpt/sft.safetensors").unlink()
    os.symlink("/proc/self/mem", work / "ckpt/sft.safetensors")
    return ["lineage", "import", str(work / "lineage.yaml"), "--db", str(db)]


@case(RES, "special file")
def bad_checkpoint_links_to_dev_zero(work, db):
    write_lineage(work)
    (work / "ckpt/pretrain.safetensors").unlink()
    os.symlink("/dev/zero", work / "ckpt/pretrain.safetensors")
    return ["lineage", "import", str(work / "lineage.yaml"), "--db", str(db)]


@case(RES, "not a regular file")
def bad_checkpoint_is_a_fifo(work, db):
    write_lineage(work)
    (work / "ckpt/sft.safetensors").unlink()
    os.mkfifo(work / "ckpt/sft.safetensors")
    return ["lineage", "import", str(work / "lineage.yaml"), "--db", str(db)]


@case(RES, "not a regular file")
def bad_schedule_csv_is_dev_zero(work, db):
    os.symlink("/dev/zero", work / "lr.csv")
    return _import(work, db, _edit("schedule: {kind: constant, lr: 0.001}",
                                   "schedule: {kind: csv, path: lr.csv}"))


@case(RES, "FIFO")
def bad_database_is_a_fifo(work, db):
    os.mkfifo(work / "fifo.duckdb")
    return ["log", "verify", "--db", str(work / "fifo.duckdb")]


@case(RES, "character device")
def bad_database_links_to_dev_zero(work, db):
    os.symlink("/dev/zero", work / "zero.duckdb")
    return ["gate", "--version", "imported@v1", "--db", str(work / "zero.duckdb")]


@case(RES, "not a regular file")
def bad_report_links_to_dev_zero(work, db):
    os.symlink("/dev/zero", work / "report.pdf")
    return ["verify", str(work / "report.pdf")]


@case(RES, "steps")
def bad_steps_four_hundred_million(work, db):
    return _import(work, db, _edit("steps: 10", "steps: 4e8"))


# --- duplicate keys, in every YAML auditor reads -----------------------------------------

DUP = "duplicate key"


@case("policy", "again at line")
def bad_policy_second_rules_key(work, db):
    (work / "policy.yaml").write_text(POLICY + "rules: []\n")
    return ["gate", "--version", "imported@v1", "--policy", str(work / "policy.yaml"),
            "--db", str(db)]


@case("policy", DUP + " 'threshold'")
def bad_policy_repeated_threshold(work, db):
    (work / "policy.yaml").write_text(POLICY.replace("threshold: 0.5",
                                                     "threshold: 0.5\n    threshold: 0.99"))
    return ["policy", "check", str(work / "policy.yaml")]


@case("policy", DUP + " 'owner'")
def bad_policy_waiver_repeated_owner(work, db):
    (work / "policy.yaml").write_text(POLICY + "waivers:\n  - {rule: share, version: m@v1, "
                                      "owner: ana, owner: eve, reason: r, expires: 2030-01-01}\n")
    return ["policy", "check", str(work / "policy.yaml")]


@case("lineage", DUP + " 'model'")
def bad_lineage_repeated_model(work, db):
    return _import(work, db, LINEAGE + "model: other\n")


@case("lineage", DUP + " 'kind'")
def bad_lineage_repeated_stage_kind(work, db):
    return _import(work, db, _edit("kind: fine-tune", "kind: fine-tune\n    kind: pretrain"))


@case("audit", DUP + " 'versions'")
def bad_audit_repeated_versions(work, db):
    return _audit(work, db, AUDIT + "versions: {ids: [imported@v1]}\n")


# --- absurd and non-finite lineage values --------------------------------------------------

@case("lineage", "stages[1].schedule.lr")
def bad_constant_learning_rate_infinite(work, db):
    return _import(work, db, _edit("lr: 0.001", "lr: .inf"))


@case("lineage", "stages[0].schedule.lr")
def bad_cosine_learning_rate_nan(work, db):
    return _import(work, db, _edit("lr: 0.1", "lr: .nan"))


@case("lineage", "not a learning rate")
def bad_csv_schedule_with_nan(work, db):
    (work / "lr.csv").write_text("lr\n0.1\nnan\n0.1\n0.1\n")
    return _import(work, db, _edit("schedule: {kind: constant, lr: 0.001}",
                                   "schedule: {kind: csv, path: lr.csv}"))


@case("lineage", "betas")
def bad_beta_of_one(work, db):
    return _import(work, db, _edit("betas: [0.9, 0.95]", "betas: [0.9, 1.0]"))


@case("lineage", "betas")
def bad_negative_beta(work, db):
    return _import(work, db, _edit("betas: [0.9, 0.95]", "betas: [-0.1, 0.95]"))


@case("lineage", "warm-up")
def bad_warmup_longer_than_stage(work, db):
    return _import(work, db, _edit("warmup_steps: 2", "warmup_steps: 50"))


@case("lineage", "records")
def bad_dataset_records_1e23(work, db):
    return _import(work, db, _edit(
        "steps: 4\n", f"steps: 4\n    datasets: [{{name: d, digest: '{'0' * 64}', "
                      "records: 1e23}]\n"))


@case("lineage", "eps")
def bad_eps_infinite(work, db):
    return _import(work, db, _edit("betas: [0.9, 0.95]", "betas: [0.9, 0.95], eps: .inf"))


@case("checkpoint", "changes dtype")
def bad_checkpoint_dtype_changes(work, db):
    import torch
    from safetensors.torch import load_file, save_file

    write_lineage(work)
    path = work / "ckpt/sft.safetensors"
    save_file({k: v.to(torch.float64) for k, v in load_file(str(path)).items()}, str(path))
    return ["lineage", "import", str(work / "lineage.yaml"), "--db", str(db)]


@case("checkpoint", "not a readable safetensors")
def bad_checkpoint_all_zero_bytes(work, db):
    write_lineage(work)
    path = work / "ckpt/sft.safetensors"
    path.write_bytes(bytes(path.stat().st_size))
    return ["lineage", "import", str(work / "lineage.yaml"), "--db", str(db)]


# --- look-alike identifiers that cannot be normalised --------------------------------------

@case("lineage", "U+0435 CYRILLIC SMALL LETTER IE")
def bad_stage_kind_with_a_cyrillic_letter(work, db):
    return _import(work, db, _edit("kind: fine-tune", "kind: fine-tun\u0435"))


@case("lineage", "must be lower-case ASCII")
def bad_dataset_tag_with_a_space_inside(work, db):
    return _import(work, db, _edit(
        "steps: 4\n", f"steps: 4\n    datasets: [{{name: d, digest: '{'0' * 64}', "
                      "records: 3, tags: [third party]}]\n"))


@case("policy", "U+0441 CYRILLIC SMALL LETTER ES")
def bad_policy_selector_kind_with_a_cyrillic_letter(work, db):
    (work / "policy.yaml").write_text(POLICY.replace(
        "severity: block", "severity: block\n    stages: {kinds: [\u0441ft]}"))
    return ["policy", "check", str(work / "policy.yaml")]


# --- a damaged store ---------------------------------------------------------------------

@case("store", "cannot")
def bad_database_half_truncated(work, db):
    half = work / "half.duckdb"
    data = db.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    return ["log", "verify", "--db", str(half)]


@case("keys", "passphrase is empty")
def bad_keys_init_with_empty_passphrase(work, db):
    os.environ["AUDITOR_CORPUS_EMPTY"] = ""
    return ["keys", "init", str(work / "keys"), "--passphrase-env", "AUDITOR_CORPUS_EMPTY"]


@case("keys", "--no-passphrase")
def bad_keys_init_without_any_passphrase(work, db):
    return ["keys", "init", str(work / "keys")]


@case(RES, "not a regular file")
def bad_policy_is_a_fifo(work, db):
    os.mkfifo(work / "policy.yaml")
    return ["policy", "check", str(work / "policy.yaml")]


@case(RES, "not a regular file")
def bad_report_is_a_fifo(work, db):
    os.mkfifo(work / "report.pdf")
    return ["verify", str(work / "report.pdf"), "--integrity-only"]
