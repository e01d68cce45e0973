"""Numerical faults: NaN or Inf in gradients, checkpoints or scores is flagged in results and
reports and never passes the gate.

(a) a diverging training run: the Recorder logs the non-finite gradient norm and refuses to
    record the NaN checkpoint; a folder holding one is refused by ``lineage add`` and by
    ``attribute`` (exit 2, nothing scored);
(b) a behaviour whose surrogate is NaN or Inf at the model: the estimators store NaN effects, the
    gate is INDETERMINATE (exit 1) under a policy that passes finite numbers, and the report
    spells the cells out;
(c) NaN / ±Inf effects written through the store API as a run of their own: INDETERMINATE.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import sys
import textwrap
from html import unescape
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parents[1]
for folder in (TESTS / "execution", TESTS / "policy"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from gatehelpers import add_scored, tagged_version  # noqa: E402
from tinyaudit import record_tiny  # noqa: E402

from auditor import Recorder  # noqa: E402
from auditor.api import add_version  # noqa: E402
from auditor.cli import main  # noqa: E402
from auditor.errors import LineageError  # noqa: E402
from auditor.lineage.checkpoints import save_tensors  # noqa: E402
from auditor.lineage.io import write_lineage_json  # noqa: E402
from auditor.lineage.recorder import LINEAGE_FILE, load_lineage  # noqa: E402
from auditor.store import Store  # noqa: E402
from tests.support.tinytask import TinyTask  # noqa: E402

# Every rule passes on finite numbers of any size: only non-finite ones can stop the release.
LENIENT = textwrap.dedent("""\
    policy: lenient
    version: '1'
    rules:
      - id: huge-contribution
        rationale: no finite effect is this large
        direction: harm
        metric: contribution
        comparator: '>'
        threshold: 1.0e+30
        severity: block
      - id: total-share
        rationale: a share never exceeds one
        direction: harm
        metric: share
        comparator: '>'
        threshold: 1.0
        severity: block
      - id: rank-any
        rationale: every stage has a rank of at least one
        direction: harm
        metric: rank
        comparator: '<'
        threshold: 1
        severity: block
    """)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def gate(db: Path, key: str, policy: Path, *extra: str) -> tuple[int, dict]:
    code, out, err = cli("gate", "--version", key, "--policy", policy, "--db", db, "--json",
                         *extra)
    assert code in (0, 1), err
    return code, json.loads(out)


@pytest.fixture
def lenient(tmp_path) -> Path:
    path = tmp_path / "lenient.yaml"
    path.write_text(LENIENT)
    return path


# --- (a) gradients and checkpoints ------------------------------------------------------------

def _train(rec, task, model, opt, steps, poison_step=None, norms=None):
    """A few steps through the Recorder; the logged gradient norms are appended to ``norms``."""
    for step in range(steps):
        ids = list(range(8 * step, 8 * step + 8))
        rec.batch(ids)
        x, y = task.batch("", ids)
        if step == poison_step:
            x = x * math.inf  # a poisoned batch
        loss = task.loss(model, (x, y))
        opt.zero_grad()
        loss.backward()
        norm = rec.clip_grad_norm_(1e30)
        if norms is not None:
            norms.append(norm)
        opt.step()


def test_recorder_refuses_a_diverged_checkpoint(tmp_path, caplog):
    task = TinyTask()
    torch.manual_seed(0)
    model = task.build_model()
    rec = Recorder(tmp_path / "run", model, model_name="tiny", version="v1",
                   task="tests.support.tinytask:tiny_task")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with rec.stage("pretrain", kind="pretrain", optimizer=opt):
        _train(rec, task, model, opt, 3)
    recorded = sorted((tmp_path / "run" / "checkpoints").iterdir())
    norms: list[float] = []
    blowup = torch.optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(LineageError, match=r"stage 'blowup': .*model weights hold NaN or Inf "
                                           r".*diverged"):
        with rec.stage("blowup", kind="fine-tune", optimizer=blowup):
            _train(rec, task, model, blowup, 4, poison_step=1, norms=norms)
    assert math.isfinite(norms[0]) and all(math.isnan(n) for n in norms[1:]), norms
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == ["stage 'blowup', step 4: the gradient norm is nan; training is diverging"]
    # Nothing of the diverged stage was recorded: same checkpoints, lineage of the good stage.
    assert sorted((tmp_path / "run" / "checkpoints").iterdir()) == recorded
    assert [s.id for s in load_lineage(tmp_path / "run").stages] == ["pretrain"]
    assert [s.id for s in rec.lineage.stages] == ["pretrain"]


def _poisoned_folder(tmp_path, value: float) -> Path:
    """A recorded version whose last checkpoint holds ``value`` (NaN or Inf; hash consistent:
    a diverged run that an older recorder wrote down)."""
    folder = tmp_path / "v000"
    version = record_tiny(folder, 0, steps=2)
    weights = {name: torch.full((2, 2), value) for name in ("0.weight", "0.bias")}
    bad = save_tensors(weights, folder / "checkpoints", folder, prefix="model")
    last = version.stages[-1].model_copy(update={"theta_end": bad})
    write_lineage_json(version.model_copy(update={"stages": [*version.stages[:-1], last]}),
                       folder / LINEAGE_FILE)
    return folder


@pytest.mark.parametrize("value", [math.nan, -math.inf])
def test_nonfinite_checkpoint_is_refused_by_lineage_add_and_attribute(tmp_path, lenient, value):
    folder = _poisoned_folder(tmp_path, value)
    db = tmp_path / "audit.duckdb"
    code, _, err = cli("lineage", "add", folder, "--db", db)
    assert code == 2 and "holds NaN or Inf" in err and err.count("\n") == 1, err
    assert not db.exists() or Store.open(db, read_only=True).list_versions() == []
    # Added behind the checks (the API's add_version takes the lineage as it is): the audit
    # refuses the checkpoint when it loads it and scores nothing.
    add_version(load_lineage(folder), folder, db=db)
    code, _, err = cli("attribute", "--version", "tiny@v000", "--estimator", "naive",
                       "--behaviours", "tinyaudit:behaviours", "--db", db)
    assert code == 2 and "holds NaN or Inf" in err, err
    with Store.open(db, read_only=True) as store:
        assert store.scores(model="tiny").num_rows == 0
    code, verdict = gate(db, "tiny@v000", lenient)
    assert (code, verdict["verdict"]) == (1, "INDETERMINATE")


# --- (b) a behaviour that is not finite at the model ------------------------------------------

@pytest.fixture(scope="module")
def nan_audit(tmp_path_factory):
    """One recorded version attributed with a finite and a NaN behaviour (naive), and with NaN
    and Inf behaviours under aa."""
    work = tmp_path_factory.mktemp("nan-audit")
    db = work / "audit.duckdb"
    add_version(record_tiny(work / "v000", 0, steps=2), work / "v000", db=db)
    runs = [("naive", "faultybehaviours:mixed_behaviours"),
            ("aa", "faultybehaviours:nan_behaviours"),
            ("aa", "faultybehaviours:inf_behaviours")]
    outputs = []
    for estimator, behaviours in runs:
        code, out, err = cli("attribute", "--version", "tiny@v000", "--estimator", estimator,
                             "--behaviours", behaviours, "--db", db)
        assert code == 0, err
        outputs.append(" ".join(out.split()))
    # The summary flags the behaviour instead of blaming a stage for it.
    assert "warning: NaN or infinite stage effects for nan-loss: a gate on them is " \
           "INDETERMINATE" in outputs[0]
    assert "nan-loss │ - │ - │ NaN" in outputs[0] and "inf-loss │ - │ - │ NaN" in outputs[2]
    return work, db


def test_nonfinite_behaviour_is_stored_as_nan(nan_audit):
    _, db = nan_audit
    with Store.open(db, read_only=True) as store:
        rows = store.scores(model="tiny").to_pylist()
    by = {(r["estimator"], r["behaviour"]): [] for r in rows}
    for row in rows:
        by[(row["estimator"], row["behaviour"])].append(row["effect"])
    assert set(by) == {("naive", "probe-loss"), ("naive", "nan-loss"), ("aa", "nan-loss"),
                       ("aa", "inf-loss")}
    assert all(math.isfinite(e) for e in by[("naive", "probe-loss")])
    for key in (("naive", "nan-loss"), ("aa", "nan-loss"), ("aa", "inf-loss")):
        assert len(by[key]) == 3 and all(math.isnan(e) for e in by[key]), (key, by[key])


@pytest.mark.parametrize("estimator", ["replay", "aa-hessian", "aa-ggn", "tracin"])
def test_every_other_estimator_stores_nan_too(nan_audit, tmp_path, estimator):
    work, _ = nan_audit
    db = tmp_path / "audit.duckdb"
    add_version(load_lineage(work / "v000"), work / "v000", db=db)
    code, _, err = cli("attribute", "--version", "tiny@v000", "--estimator", estimator,
                       "--behaviours", "faultybehaviours:inf_behaviours", "--db", db)
    assert code == 0, err
    with Store.open(db, read_only=True) as store:
        effects = store.scores(model="tiny").column("effect").to_pylist()
    assert len(effects) == 3 and all(math.isnan(e) for e in effects), effects


@pytest.mark.parametrize("estimator", ["naive", "aa"])
def test_nonfinite_behaviour_never_passes_the_gate(nan_audit, lenient, estimator):
    _, db = nan_audit
    code, verdict = gate(db, "tiny@v000", lenient, "--estimator", estimator)
    assert (code, verdict["verdict"]) == (1, "INDETERMINATE")
    outcomes = {(r["behaviour"], r["outcome"]) for r in verdict["results"]}
    bad = {"nan-loss"} if estimator == "naive" else {"inf-loss"}  # aa: the latest run
    assert {o for b, o in outcomes if b in bad} == {"indeterminate"}
    if estimator == "naive":  # the aa run scored only the non-finite behaviours
        assert {o for b, o in outcomes if b == "probe-loss"} == {"pass"}
    assert all("NaN" in r["reason"] for r in verdict["results"] if r["behaviour"] in bad)
    code, verdict = gate(db, "tiny@v000", lenient, "--estimator", estimator,
                         "--allow-indeterminate")
    assert verdict["verdict"] == "INDETERMINATE" and code == 0  # let through only when asked
    code, out, err = cli("gate", "--version", "tiny@v000", "--estimator", estimator,
                         "--db", db, "--json")  # the shipped default policy
    assert (code, json.loads(out)["verdict"]) == (1, "INDETERMINATE"), err


def test_report_flags_the_nonfinite_cells(nan_audit, lenient):
    work, db = nan_audit
    gate(db, "tiny@v000", lenient, "--estimator", "naive")
    code, out, err = cli("report", "--version", "tiny@v000", "--out", work / "reports",
                         "--db", db)
    assert code == 0, err
    pdf = next((work / "reports").glob("*.pdf"))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    html = re.sub(r"<[^>]+>", " ", next((work / "reports").glob("*.html")).read_text())
    for shown in (text, unescape(html)):
        assert "Overall verdict: INDETERMINATE" in " ".join(shown.split())
        assert shown.count("NaN (not a number)") >= 4  # three stage cells and the total
        assert "a stage effect is NaN or infinite" in " ".join(shown.split())
    nan_lines = [line for line in text.splitlines() if "nan-loss" in line]
    assert not any("none adds harm" in line for line in nan_lines)
    # The quarterly report (trend charts across versions) renders with the NaN totals too.
    code, out, err = cli("report", "--period", "2026-Q4", "--out", work / "quarterly",
                         "--db", db)
    assert code == 0, err
    html = unescape(re.sub(r"<[^>]+>", " ", next((work / "quarterly").glob("*.html")).read_text()))
    assert "NaN (not a number)" in html


# --- (c) non-finite scores written through the store API --------------------------------------

@pytest.mark.parametrize("effect", [math.nan, math.inf, -math.inf])
def test_stored_nonfinite_effect_is_indeterminate(tmp_path, lenient, effect):
    db = tmp_path / "audit.duckdb"
    version = tagged_version()
    with Store.open(db) as store:
        add_scored(store, version, {"tox": [0.01, 0.02, 0.03], "bias": [0.01, 0.02, 0.03]})
    code, verdict = gate(db, version.key, lenient)
    assert (code, verdict["verdict"]) == (0, "PASS")  # the finite control passes
    with Store.open(db) as store:  # a new, complete run: one stage's effect is not finite
        add_scored(store, version, {"tox": [0.01, effect, 0.03], "bias": [0.01, 0.02, 0.03]})
        assert store.verify_log().ok
    code, verdict = gate(db, version.key, lenient)
    assert (code, verdict["verdict"]) == (1, "INDETERMINATE")
    tox = {(r["rule_id"], r["stage_id"]): r["outcome"] for r in verdict["results"]
           if r["behaviour"] == "tox"}
    assert tox[("huge-contribution", "s1")] == "indeterminate"
    assert {tox[("total-share", s)] for s in ("s0", "s1", "s2")} == {"indeterminate"}
    assert {r["outcome"] for r in verdict["results"] if r["behaviour"] == "bias"} == {"pass"}
