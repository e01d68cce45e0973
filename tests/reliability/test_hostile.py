"""Issue 16 beyond the corpus: refusals leave the store and the report folder as they were,
resource-exhaustion attempts are fast, look-alike text is normalised everywhere, user text is
never console markup, report files are written all-or-nothing, attachments are found by role,
and verify without --trust is not VALID. One scored, gated, reported store per module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from corpus import CASES, LINEAGE, write_lineage
from harness import run_case, store_state
from tamper import PASSPHRASE_ENV, copy_evidence, make_evidence, run

from auditor.cli import main


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    return make_evidence(tmp_path_factory.mktemp("hostile"))


def _one_line_error(output: str) -> bool:
    lines = [line for line in output.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("auditor: error: ")


# --- refusals: one line, exit 2, the log head unchanged, nothing (half-)written -------------

TAMPERING = [
    "UPDATE stage_scores SET effect = 0.001",
    "DELETE FROM stage_scores WHERE stage_index = 0",
    "UPDATE datasets SET tags = ['first-party']",
    "UPDATE events SET actor = 'x' WHERE seq = 2",
    "DROP TABLE verdicts",
    "ALTER TABLE reports RENAME TO reports_old",
    "ALTER TABLE stage_scores DROP COLUMN share",
]


@pytest.mark.parametrize("statement", TAMPERING)
@pytest.mark.parametrize("command", ["gate", "report"])
def test_a_refusal_changes_nothing(evidence, tmp_path, statement, command):
    copy = copy_evidence(evidence, tmp_path / "copy")
    with duckdb.connect(str(copy.db)) as conn:
        conn.execute(statement)
    before = copy.db.read_bytes()
    out = tmp_path / "reports"
    argv = ["gate", "--version", "tiny@v001"] if command == "gate" else \
        ["report", "--version", "tiny@v001", "--out", str(out)]
    code, output = run([*argv, "--db", str(copy.db)])
    assert code == 2 and _one_line_error(output), output
    assert copy.db.read_bytes() == before  # no event, no verdict, no report row: not a byte
    assert not out.exists() or not any(out.iterdir())


def test_an_intact_store_still_gates_and_reports(evidence, tmp_path):
    copy = copy_evidence(evidence, tmp_path / "copy")
    head = store_state(copy.db)
    code, output = run(["gate", "--version", "tiny@v001", "--db", str(copy.db)])
    assert code in (0, 1), output
    assert store_state(copy.db) != head  # the verdict was recorded


# --- resource exhaustion: refused before the parser or reader commits to the work -----------

@pytest.mark.parametrize("case", [c for c in CASES if c.room == "resource-exhaustion"],
                         ids=lambda c: c.name)
def test_resource_exhaustion_is_refused_fast(case, template_db, tmp_path):
    started = time.perf_counter()
    outcome = run_case(case, template_db, tmp_path / "work")
    took = time.perf_counter() - started
    assert outcome.clean and case.expect in outcome.message, outcome
    assert took < 10, f"{case.name} took {took:.1f} s"


# --- look-alike text ---------------------------------------------------------------------

LOOK_ALIKES = ["fine\u2010tune", "FINE-TUNE", "\uff46\uff49\uff4e\uff45-tune", "fine-\u200btune",
               "fine-tune ", "fine\u2212tune", "\ufefffine\u00adtune", "Fine\u2013Tune"]
TAGS = ["third\u2010party", "THIRD-PARTY", "\uff54\uff48\uff49\uff52\uff44-party",
        "third-\u200bparty", " third-party", "third\u2212party", "\ufeffthird\u00adparty",
        "Third\u2013Party"]


@pytest.mark.parametrize(("kind", "tag"), list(zip(LOOK_ALIKES, TAGS)))
def test_imported_look_alike_kinds_and_tags_are_stored_normalised(kind, tag, tmp_path):
    from auditor.api import import_lineage, open_store

    text = LINEAGE.replace("kind: fine-tune", f"kind: \"{kind}\"\n    datasets: [{{name: d, "
                           f"digest: '{'0' * 64}', records: 3, tags: [\"{tag}\"]}}]")
    db = tmp_path / "store.duckdb"
    import_lineage(write_lineage(tmp_path, text), db=db)
    with open_store(db, read_only=True) as store:
        kinds = [r["kind"] for r in store.query("SELECT kind FROM stages ORDER BY stage_index")]
        tags = store.query("SELECT tags FROM datasets")[0]["tags"]
    assert kinds == ["pretrain", "fine-tune"]
    assert tags == ["third-party"]


@pytest.mark.parametrize(("kind", "tag"), list(zip(LOOK_ALIKES, TAGS)))
def test_policy_selectors_match_look_alikes_both_ways(kind, tag):
    from auditor.policy.model import StageSelector
    from auditor.policy.selectors import stage_matches

    assert StageSelector(kinds=[kind]).kinds == ["fine-tune"]
    assert stage_matches(StageSelector(kinds=["fine-tune"]), "sft", kind, set())
    assert StageSelector(dataset_tags=[tag]).dataset_tags == ["third-party"]
    assert stage_matches(StageSelector(dataset_tags=["third-party"]), "sft", "x", {tag})
    assert stage_matches(StageSelector(ids=["SFT"]), "sft\u200b", "x", set())


def test_the_recorder_normalises_identifiers(tmp_path):
    import torch

    from auditor import Recorder
    from tests.support.tinytask import TinyTask

    task = TinyTask()
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="tiny\u2010model", version="v1 ")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with rec.stage("sft\u200b", kind="Fine\u2011Tune", optimizer=opt):
        rec.batch(torch.arange(4))
        task.loss(model, task.batch("sft", torch.arange(4))).backward()
        opt.step()
    version = rec.lineage
    assert (version.model, version.version) == ("tiny-model", "v1")
    assert (version.stages[0].id, version.stages[0].kind) == ("sft", "fine-tune")


# --- console output never reads user text as markup ----------------------------------------

MARKUP = ["[/2026/11]", "[/bold]", "[red]x[/red]", "[link=file:///etc/passwd]y[/link]"]


@pytest.mark.parametrize("text", MARKUP)
def test_waiver_reasons_print_as_themselves(evidence, tmp_path, text):
    copy = copy_evidence(evidence, tmp_path / "copy")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "policy: markup\nversion: '1'\nrules:\n  - id: any\n    rationale: r\n"
        "    direction: harm\n    metric: share\n    comparator: '>='\n    threshold: 0.0\n"
        "    severity: block\nwaivers:\n  - rule: any\n    version: tiny@v001\n"
        f"    owner: ana\n    reason: {text!r}\n    expires: 2099-12-31\n")
    code, output = run(["gate", "--version", "tiny@v001", "--policy", str(policy),
                        "--db", str(copy.db)])
    assert code in (0, 1), output  # never the console's crash
    verdict = "PASS-WITH-WAIVERS" if code == 0 else "FAIL"
    assert verdict in output and "Traceback" not in output
    if code == 0:
        assert _flat(text) in _flat(output), output


@pytest.mark.parametrize("text", MARKUP)
def test_dataset_names_print_as_themselves(tmp_path, text):
    db = tmp_path / "store.duckdb"
    lineage = write_lineage(tmp_path, LINEAGE.replace(
        "kind: fine-tune", f"kind: fine-tune\n    datasets: [{{name: {text!r}, "
                           f"digest: '{'0' * 64}', records: 3}}]"))
    assert main(["lineage", "import", str(lineage), "--db", str(db)]) == 0
    code, output = run(["lineage", "show", "imported@v9", "--db", str(db)])
    assert code == 0, output
    assert _flat(text)[:5] in _flat(output), output  # a narrow table cuts the rest with "…"
    code, output = run(["lineage", "export", "imported@v9", "--db", str(db)])
    assert code == 0 and text in output, output


def _flat(text: str) -> str:
    """Text without whitespace and table rules: a table cell may wrap a long value."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│┃")


# --- report files: all or nothing ----------------------------------------------------------

def _report_argv(copy, out: Path) -> list[str]:
    return ["report", "--version", "tiny@v001", "--out", str(out), "--p12",
            str(copy.root.parent / "signer.p12"), "--passphrase-env", PASSPHRASE_ENV,
            "--db", str(copy.db)]


def test_a_failed_write_keeps_the_previous_report_and_records_nothing(evidence, tmp_path):
    copy = copy_evidence(evidence, tmp_path / "copy")
    out = tmp_path / "reports"
    code, output = run(_report_argv(copy, out))
    assert code == 0, output
    pdf = next(out.glob("*.pdf"))
    old = pdf.read_bytes()
    html = pdf.with_suffix(".html")
    html.unlink()
    html.mkdir()  # the HTML twin cannot be replaced: the write fails
    before = store_state(copy.db)
    code, output = run(_report_argv(copy, out))
    assert code == 2 and _one_line_error(output) and "nothing was replaced" in output, output
    assert pdf.read_bytes() == old
    assert store_state(copy.db) == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_leaves_no_truncated_pdf(evidence, tmp_path):
    copy = copy_evidence(evidence, tmp_path / "copy")
    out = tmp_path / "reports"
    code, output = run(_report_argv(copy, out))
    assert code == 0, output
    pdf = next(out.glob("*.pdf"))
    old = pdf.read_bytes()
    before = store_state(copy.db)
    limit = 64 * 1024  # bytes a process may write to any file: the PDF is larger
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
              "from auditor.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, *_report_argv(copy, out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 2, done.stderr
    assert _one_line_error(done.stderr), done.stderr
    assert pdf.read_bytes() == old
    assert store_state(copy.db) == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# --- verify: attachments by role, trust by default -----------------------------------------

@pytest.mark.parametrize("name", ["evidence.json", "a;b=c.yaml", "scores.csv",
                                  "policy=1;evidence.json=00.yaml"])
def test_a_policy_file_cannot_pose_as_another_attachment(evidence, tmp_path, name):
    copy = copy_evidence(evidence, tmp_path / "copy")
    policy = tmp_path / name
    policy.write_text("[1, 2, 3]\n")
    out = tmp_path / "reports"
    code, output = run([*_report_argv(copy, out)[:-2], "--policy", str(policy),
                        "--db", str(copy.db)])
    assert code == 0, output
    pdf = next(out.glob("*.pdf"))
    code, output = run(["verify", str(pdf), "--trust", str(copy.root), "--db", str(copy.db)])
    assert code == 0 and ": VALID" in output, output


def test_verify_without_trust_is_not_valid_unless_integrity_only(evidence, tmp_path):
    copy = copy_evidence(evidence, tmp_path / "copy")
    code, output = run(["verify", str(copy.report)])
    assert code == 1 and "signer NOT verified" in output and "INVALID" in output, output
    code, output = run(["verify", str(copy.report), "--integrity-only"])
    assert code == 0 and "INTACT" in output and "signer NOT verified" in output, output
    code, output = run(["verify", str(copy.report), "--trust", str(copy.root)])
    assert code == 0 and ": VALID" in output, output


def test_garbage_evidence_in_a_store_check_is_invalid_not_a_crash(evidence, tmp_path):
    from tamper import _report_bypassing_the_check

    copy = copy_evidence(evidence, tmp_path / "copy")
    for garbage in (b"[1, 2, 3]", b'{"event_log": 5, "versions": [7]}', b"\xff\xfe",
                    b'{"event_log": {"verified": true, "seq": "x"}, "versions": [{"key": 1}]}'):
        _report_bypassing_the_check(copy, verified=True, evidence_bytes=garbage)
        code, output = run(["verify", str(copy.report), "--trust", str(copy.root),
                            "--db", str(copy.db)])
        assert code == 1 and "INVALID" in output and "Traceback" not in output, output


def test_the_store_schema_is_derived_from_the_migrations():
    from auditor.store.digests import expected_schema
    from auditor.store.migrations import BOOKKEEPING
    from auditor.store.schema import MIGRATIONS, Migration

    base = expected_schema(MIGRATIONS, BOOKKEEPING)
    assert {"events", "stage_scores", "reports", "schema_migrations"} <= set(base)
    extra = Migration("9999_test_extra", "ALTER TABLE stage_scores ADD COLUMN test_extra DOUBLE;"
                      "CREATE TABLE extras (x INTEGER);")
    grown = expected_schema((*MIGRATIONS, extra), BOOKKEEPING)
    assert ("test_extra", "DOUBLE") in grown["stage_scores"] and "extras" in grown


def test_a_store_from_a_newer_migration_set_opens_when_the_code_knows_it(tmp_path):
    from auditor.store import Store
    from auditor.store.schema import MIGRATIONS, Migration

    extra = Migration("9999_test_extra", "ALTER TABLE stage_scores ADD COLUMN test_extra DOUBLE")
    with Store.open(tmp_path / "s.duckdb", migrations=(*MIGRATIONS, extra)) as store:
        assert store.verify_log().ok
    with Store.open(tmp_path / "s.duckdb", read_only=True,
                    migrations=(*MIGRATIONS, extra)) as store:
        assert store.verify_log().ok
    shutil.rmtree(tmp_path)
