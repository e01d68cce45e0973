"""Stage embeddings on disk, the plug-in form, and the replay spot check."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.behaviours.library import example_losses, probe_loss
from auditor.errors import CheckpointError, EstimatorError
from auditor.estimators import attribute, get_estimator
from auditor.estimators.embeddings import load_embeddings, save_embeddings
from auditor.estimators.fidelity import verify_by_replay
from auditor.estimators.scoring.gradients import score_by_gradients
from auditor.estimators.scoring.plugin import score_by_plugin
from auditor.lineage.counterfactual import final_model
from tests.support.linreg import linear_behaviours, record_linreg
from tests.support.recorded import record_sgd


def test_saved_embeddings_score_a_new_behaviour_identically(tmp_path):
    task, rec = record_sgd(tmp_path)
    estimator = get_estimator("aa")
    embeddings = estimator.prepare(rec.lineage, tmp_path, task)
    saved = save_embeddings(embeddings, tmp_path / "emb" / "aa.safetensors")
    loaded = load_embeddings(saved.path, saved.sha256)
    assert loaded.config_hash == embeddings.config_hash and loaded.stages == embeddings.stages
    model = final_model(rec.lineage, tmp_path, task)
    new = [probe_loss("later-question", task.x[:5], task.y[:5])]
    direct = score_by_gradients(embeddings, new, model).effects
    assert np.array_equal(score_by_gradients(loaded, new, model).effects, direct)


def test_tampered_embeddings_are_refused(tmp_path):
    task, rec = record_sgd(tmp_path)
    embeddings = get_estimator("naive").prepare(rec.lineage, tmp_path, task)
    saved = save_embeddings(embeddings, tmp_path / "e.safetensors")
    data = bytearray(saved.path.read_bytes())
    data[-3] ^= 0xFF
    saved.path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_embeddings(saved.path)


def test_reverse_mode_has_no_embeddings_to_save(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    embeddings = get_estimator("aa-hessian", mode="reverse").prepare(version, tmp_path, task)
    with pytest.raises(EstimatorError, match="forward"):
        save_embeddings(embeddings, tmp_path / "x.safetensors")


def test_plugin_is_exact_for_linear_behaviours_and_scores_metrics(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    behaviours = linear_behaviours(task, 3)
    estimator = get_estimator("aa-hessian")
    embeddings = estimator.prepare(version, tmp_path, task)
    model = final_model(version, tmp_path, task)
    plug = score_by_plugin(embeddings, behaviours, model).effects
    grad = score_by_gradients(embeddings, behaviours, model).effects
    assert np.allclose(plug, grad, rtol=1e-9, atol=1e-12)
    task2, rec = record_sgd(tmp_path / "sgd")
    accuracy_like = [probe_loss("errors", task2.x, task2.y)]  # metric: error rate (a step function)
    emb2 = get_estimator("aa").prepare(rec.lineage, tmp_path / "sgd", task2)
    metric_effects = score_by_plugin(emb2, accuracy_like,
                                     final_model(rec.lineage, tmp_path / "sgd", task2),
                                     use_metric=True).effects
    assert metric_effects.shape == (3, 1)
    assert np.all(np.abs(metric_effects * len(task2.y) - np.round(metric_effects * len(task2.y)))
                  < 1e-6)  # differences of error counts


def test_verify_by_replay_passes_exact_and_fails_a_wrong_estimate(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    behaviours = linear_behaviours(task)
    effects = attribute(version, tmp_path, task, behaviours, "aa-hessian")
    check = verify_by_replay(version, tmp_path, task, behaviours, effects, stages=["vendor", 2])
    assert check.passed and check.stages_checked == 2 and check.behaviours_checked == 6
    assert check.pearson > 0.999999 and check.max_abs_error < 1e-9
    assert set(check.row()) == {"estimator", "config_hash", "stages_checked",
                                "behaviours_checked", "pearson", "sign_agreement",
                                "max_abs_error", "passed"}
    effects.effects = -effects.effects
    assert not verify_by_replay(version, tmp_path, task, behaviours, effects).passed


def test_replay_of_chosen_stages_only(tmp_path):
    task, rec = record_sgd(tmp_path)
    behaviours = example_losses("ex", task.x[:2], task.y[:2])
    partial = attribute(rec.lineage, tmp_path, task, behaviours, "replay", stages=[1])
    assert np.isnan(partial.effects[0]).all() and np.isfinite(partial.effects[1]).all()


def test_fidelity_check_is_stored_and_read_back(tmp_path):
    from auditor.store import Store

    task, version = record_linreg(tmp_path, "reset")
    behaviours = linear_behaviours(task, 3)
    effects = attribute(version, tmp_path, task, behaviours, "aa")
    check = verify_by_replay(version, tmp_path, task, behaviours, effects, stages=[2, 3])
    with Store.open(tmp_path / "audit.duckdb") as store:
        store.record_run("fidelity", {"estimator": "aa"},
                         fidelity_checks=check.table(version.model, version.version))
        rows = store.fidelity_checks(version.model, version.version, "aa").to_pylist()
    assert len(rows) == 1 and rows[0]["passed"] == check.passed
    assert rows[0]["config_hash"] == effects.config_hash and rows[0]["stages_checked"] == 2
