"""Tamper cases: change a store, a checkpoint or a signed report behind auditor's back, and
check that the matching command notices (exit 1 for tampered evidence, 2 for a refused input).

Shared by tests/reliability/test_tamper.py and bench/faults.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from auditor.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))  # tinyaudit
PASSPHRASE_ENV = "AUDITOR_TAMPER_PASSPHRASE"
BEHAVIOURS = "tinyaudit:behaviours"


@dataclass(frozen=True)
class Evidence:
    """A scored, gated, reported tiny version: the store, its lineage folder, a signed report."""

    db: Path
    lineage: Path
    report: Path
    root: Path  # the CA certificate that signed the report


@dataclass(frozen=True)
class TamperCase:
    name: str
    tamper: Callable[[Evidence], None]
    check: Callable[[Evidence], list[str]]  # the auditor command that must notice
    exit_code: int
    expect: str  # a fragment of its output


TAMPERS: list[TamperCase] = []


def tamper_case(check: Callable[[Evidence], list[str]], exit_code: int = 1,
                expect: str = ""):
    def register(tamper: Callable[[Evidence], None]):
        TAMPERS.append(TamperCase(tamper.__name__.replace("_", "-"), tamper, check, exit_code,
                                  expect or ("TAMPERED" if check is _log_verify else "INVALID")))
        return tamper
    return register


def make_evidence(folder: Path) -> Evidence:
    """Record, attribute, gate and sign a report for one tiny version (real components)."""
    from tinyaudit import record_tiny

    lineage = folder / "tiny-v001"
    record_tiny(lineage, 1)
    db = folder / "auditor.duckdb"
    os.environ[PASSPHRASE_ENV] = "tamper-test-passphrase"
    for argv in (["lineage", "add", str(lineage)],
                 ["attribute", "--version", "tiny@v001", "--behaviours", BEHAVIOURS,
                  "--estimator", "naive"],
                 ["gate", "--version", "tiny@v001"],
                 ["keys", "init", str(folder / "keys"), "--passphrase-env", PASSPHRASE_ENV],
                 ["report", "--version", "tiny@v001", "--out", str(folder / "reports"),
                  "--p12", str(folder / "keys" / "signer.p12"),
                  "--passphrase-env", PASSPHRASE_ENV]):
        code, output = run(argv + (["--db", str(db)] if argv[0] != "keys" else []))
        assert code in (0, 1), output  # the gate may fail; anything else is a broken fixture
    report = next((folder / "reports").glob("*.pdf"))
    return Evidence(db, lineage, report, folder / "keys" / "root.pem")


def copy_evidence(evidence: Evidence, folder: Path) -> Evidence:
    """A private copy of the store and the report a case may damage (the lineage folder is
    shared: the store names its path, and ``detected`` puts its files back)."""
    folder.mkdir(parents=True, exist_ok=True)
    db, report = folder / "auditor.duckdb", folder / evidence.report.name
    shutil.copy(evidence.db, db)
    shutil.copy(evidence.report, report)
    return Evidence(db, evidence.lineage, report, evidence.root)


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


def detected(case: TamperCase, evidence: Evidence) -> tuple[bool, str]:
    files = {path: path.read_bytes() for path in evidence.lineage.rglob("*") if path.is_file()}
    try:
        case.tamper(evidence)
        code, output = run(case.check(evidence))
    finally:
        for path, data in files.items():
            path.write_bytes(data)
    return code == case.exit_code and case.expect in output, output


def _sql(evidence: Evidence, statement: str) -> None:
    with duckdb.connect(str(evidence.db)) as conn:
        conn.execute(statement)


def _log_verify(evidence: Evidence) -> list[str]:
    return ["log", "verify", "--db", str(evidence.db)]


def _verify_report(evidence: Evidence) -> list[str]:
    return ["verify", str(evidence.report), "--trust", str(evidence.root), "--db",
            str(evidence.db)]


def _reattribute(evidence: Evidence) -> list[str]:
    return ["attribute", "--version", "tiny@v001", "--behaviours", BEHAVIOURS,
            "--estimator", "aa", "--db", str(evidence.db)]


# --- the store -----------------------------------------------------------------------------

@tamper_case(_log_verify)
def score_row_edited_with_sql(evidence):
    _sql(evidence, "UPDATE stage_scores SET effect = effect + 0.25 WHERE stage_index = 1")


@tamper_case(_log_verify)
def score_row_deleted(evidence):
    _sql(evidence, "DELETE FROM stage_scores WHERE stage_index = 0")


@tamper_case(_log_verify)
def score_row_forged(evidence):
    _sql(evidence, "INSERT INTO stage_scores SELECT * FROM stage_scores LIMIT 1")


@tamper_case(_log_verify)
def verdict_flipped_to_pass(evidence):
    _sql(evidence, "UPDATE verdicts SET verdict = CASE verdict WHEN 'PASS' THEN 'FAIL' "
                   "ELSE 'PASS' END")


@tamper_case(_log_verify)
def policy_threshold_edited(evidence):
    _sql(evidence, "UPDATE policy_results SET threshold = threshold * 10")


@tamper_case(_log_verify)
def lineage_edited(evidence):
    _sql(evidence, "UPDATE stages SET steps = steps + 1 WHERE stage_index = 0")


@tamper_case(_log_verify)
def event_deleted(evidence):
    _sql(evidence, "DELETE FROM events WHERE seq = (SELECT max(seq) - 2 FROM events)")


@tamper_case(_log_verify)
def event_payload_edited(evidence):
    _sql(evidence, "UPDATE events SET actor = 'someone else' WHERE seq = 3")


@tamper_case(_verify_report)
def score_edited_then_report_checked_against_store(evidence):
    _sql(evidence, "UPDATE stage_scores SET effect = -effect")


# --- checkpoints ---------------------------------------------------------------------------

@tamper_case(_reattribute, exit_code=2, expect="CheckpointError")
def checkpoint_swapped_on_disk(evidence):
    files = sorted((evidence.lineage / "checkpoints").glob("model-*.safetensors"))
    files[-1].write_bytes(files[0].read_bytes())


@tamper_case(_reattribute, exit_code=2, expect="CheckpointError")
def checkpoint_truncated_on_disk(evidence):
    files = sorted((evidence.lineage / "checkpoints").glob("model-*.safetensors"))
    files[-1].write_bytes(files[-1].read_bytes()[:100])


# --- signed reports ------------------------------------------------------------------------

def _rewrite(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(change(path.read_bytes()))


@tamper_case(_verify_report)
def report_one_byte_flipped(evidence):
    def flip(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]
    _rewrite(evidence.report, flip)


@tamper_case(_verify_report)
def report_incremental_update_appended(evidence):
    from pyhanko.pdf_utils.generic import pdf_string
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    with open(evidence.report, "rb") as handle:
        writer = IncrementalPdfFileWriter(handle)
        writer.root["/Lang"] = pdf_string("de")
        writer.update_root()
        out = io.BytesIO()
        writer.write(out)
    evidence.report.write_bytes(out.getvalue())


@tamper_case(_verify_report)
def report_truncated(evidence):
    _rewrite(evidence.report, lambda data: data[: len(data) - 2048])


@tamper_case(_verify_report)
def report_text_replaced(evidence):
    _rewrite(evidence.report, lambda data: data.replace(b"/Producer", b"/Producex", 1))


@tamper_case(lambda evidence: ["verify", str(evidence.report), "--trust",
                               str(evidence.report.parent / "other-root.pem")])
def report_checked_against_a_foreign_root(evidence):
    from auditor.report.keys import init_keys

    other = init_keys(evidence.report.parent / "other-keys")
    shutil.copy(other.root, evidence.report.parent / "other-root.pem")


# --- issue 16: the gate and the report refuse a store that does not verify -------------------

def _gate(evidence: Evidence) -> list[str]:
    return ["gate", "--version", "tiny@v001", "--db", str(evidence.db)]


def _report(evidence: Evidence) -> list[str]:
    return ["report", "--version", "tiny@v001", "--out", str(evidence.report.parent / "new"),
            "--db", str(evidence.db)]


REFUSED = "does not verify"


@tamper_case(_gate, exit_code=2, expect=REFUSED)
def score_effect_lowered_then_gated(evidence):
    _sql(evidence, "UPDATE stage_scores SET effect = 0.001")


@tamper_case(_report, exit_code=2, expect=REFUSED)
def score_effect_lowered_then_reported(evidence):
    _sql(evidence, "UPDATE stage_scores SET effect = 0.001 WHERE stage_index = 2")


@tamper_case(_gate, exit_code=2, expect=REFUSED)
def score_row_deleted_then_gated(evidence):
    _sql(evidence, "DELETE FROM stage_scores WHERE stage_index = 2")


@tamper_case(_gate, exit_code=2, expect=REFUSED)
def dataset_tag_edited_then_gated(evidence):
    _sql(evidence, "UPDATE datasets SET tags = ['first-party']")


@tamper_case(_report, exit_code=2, expect=REFUSED)
def verdict_forged_then_reported(evidence):
    _sql(evidence, "INSERT INTO verdicts SELECT * FROM verdicts LIMIT 1")


@tamper_case(_gate, exit_code=2, expect=REFUSED)
def stage_kind_edited_then_gated(evidence):
    _sql(evidence, "UPDATE stage_scores SET stage_kind = 'pretrain'")


# --- structural tampering: every command refuses a store whose schema is not the expected one

SCHEMA = "does not have the schema"


@tamper_case(_log_verify, exit_code=2, expect="table reports is missing")
def reports_table_dropped(evidence):
    _sql(evidence, "DROP TABLE reports")


@tamper_case(_log_verify, exit_code=2, expect="table verdicts is missing")
def verdicts_table_renamed(evidence):
    _sql(evidence, "ALTER TABLE verdicts RENAME TO verdicts_old")


@tamper_case(_gate, exit_code=2, expect="table policy_results is missing")
def policy_results_table_dropped_then_gated(evidence):
    _sql(evidence, "DROP TABLE policy_results")


@tamper_case(_gate, exit_code=2, expect="table events is missing")
def events_table_dropped_then_gated(evidence):
    _sql(evidence, "DROP TABLE events")


@tamper_case(_log_verify, exit_code=2, expect="missing column(s) threshold")
def policy_column_dropped(evidence):
    _sql(evidence, "ALTER TABLE policy_results DROP COLUMN threshold")


@tamper_case(_report, exit_code=2, expect="unexpected column(s) note")
def score_column_added_then_reported(evidence):
    _sql(evidence, "ALTER TABLE stage_scores ADD COLUMN note VARCHAR")


@tamper_case(lambda evidence: ["lineage", "show", "tiny@v001", "--db", str(evidence.db)],
             exit_code=2, expect=SCHEMA)
def stages_column_renamed_then_shown(evidence):
    _sql(evidence, "ALTER TABLE stages RENAME COLUMN kind TO stage_kind")


# --- signed reports: what the signature alone cannot say -----------------------------------

@tamper_case(_verify_report, expect="after the signed bytes")
def report_bytes_appended_after_eof(evidence):
    _rewrite(evidence.report, lambda data: data + b"\n% appended by someone\n")


@tamper_case(lambda evidence: ["verify", str(evidence.report)], expect="signer NOT verified")
def report_resigned_by_a_look_alike_ca_checked_without_trust(evidence):
    _resign_with_look_alike_ca(evidence)


@tamper_case(_verify_report, expect="INVALID")
def report_resigned_by_a_look_alike_ca_checked_with_trust(evidence):
    _resign_with_look_alike_ca(evidence)


@tamper_case(lambda evidence: ["verify", str(evidence.report), "--trust", str(evidence.root)],
             expect="did NOT verify when it was made")
def report_made_from_unverified_evidence(evidence):
    _report_bypassing_the_check(evidence, verified=False)


@tamper_case(lambda evidence: ["verify", str(evidence.report), "--trust", str(evidence.root)],
             expect="not a JSON object")
def report_whose_evidence_is_a_list(evidence):
    _report_bypassing_the_check(evidence, verified=True, evidence_bytes=b"[1, 2, 3]\n")


def _resign_with_look_alike_ca(evidence: Evidence) -> None:
    """An attacker's CA that copies our names signs a report with a flipped verdict."""
    from auditor.report.keys import init_keys

    keys = init_keys(evidence.report.parent / "attacker", name="auditor signer",
                     organisation="auditor", passphrase=None)
    _report_bypassing_the_check(evidence, verified=True, p12=keys.p12)


def _report_bypassing_the_check(evidence: Evidence, *, verified: bool,
                                evidence_bytes: bytes | None = None, p12: Path | None = None):
    """What a forger (or an old auditor) could make: a report rendered and signed from the
    store without the verification the report command now insists on."""
    from dataclasses import replace as copy

    from auditor.report.context import build_context
    from auditor.report.render import embedded_files, html_to_pdf, render_html
    from auditor.report.sign import SignerSettings, load_signer, sign_pdf
    from auditor.store import Store

    with Store.open(evidence.db, read_only=True) as store:
        context = build_context(store, version="tiny@v001")
    context.log_head["verified"] = verified
    signer = load_signer(SignerSettings(
        p12=p12 or evidence.root.parent / "signer.p12",
        passphrase_env=None if p12 else PASSPHRASE_ENV))
    files = embedded_files(context)
    if evidence_bytes is not None:
        files = [copy(f, data=evidence_bytes) if f.name == "evidence.json" else f for f in files]
    html = render_html(context, files)
    evidence.report.write_bytes(sign_pdf(html_to_pdf(html, files, context.report_id), signer))
