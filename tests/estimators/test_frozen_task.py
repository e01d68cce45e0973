"""No silent zeros: the estimators attribute the parameters the lineage trained, not those the
task's fresh model leaves trainable (an adapter setup freezes the base model in build_model)."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.behaviours.library import probe_loss
from auditor.estimators import attribute
from tests.support.recorded import record_adamw, record_sgd
from tests.support.tinytask import TinyTask


class FrozenTask(TinyTask):
    """The same task, but its fresh model has every parameter frozen."""

    def build_model(self):
        model = super().build_model()
        for param in model.parameters():
            param.requires_grad_(False)
        return model


def _frozen_copy(task: TinyTask) -> FrozenTask:
    frozen = FrozenTask.__new__(FrozenTask)
    frozen.__dict__.update(task.__dict__)
    return frozen


@pytest.mark.parametrize("estimator", ["aa", "naive", "tracin", "aa-hessian"])
def test_a_frozen_fresh_model_scores_earlier_stages_as_the_lineage_trained_them(
        tmp_path, estimator):
    task, rec = record_sgd(tmp_path)
    behaviour = probe_loss("probe", task.x[:16], task.y[:16])
    trainable = attribute(rec.lineage, tmp_path, task, [behaviour], estimator)
    frozen = attribute(rec.lineage, tmp_path, _frozen_copy(task), [behaviour], estimator)
    assert np.all(trainable.effects[:-1] != 0.0)
    assert np.array_equal(frozen.effects, trainable.effects)


def test_adamw_lineage_with_a_frozen_fresh_model_is_not_silently_zero(tmp_path):
    task, rec = record_adamw(tmp_path)
    behaviour = probe_loss("probe", task.x[:16], task.y[:16])
    frozen = attribute(rec.lineage, tmp_path, _frozen_copy(task), [behaviour], "aa")
    trainable = attribute(rec.lineage, tmp_path, task, [behaviour], "aa")
    assert np.all(frozen.effects != 0.0)
    assert np.array_equal(frozen.effects, trainable.effects)


def test_trained_parameters_leave_out_what_every_stage_froze(tmp_path):
    task, rec = record_sgd(tmp_path)
    names = {name for name, _ in task.build_model().named_parameters()}
    assert rec.lineage.trained_parameters() == names
    group = rec.lineage.stages[0].optimizer.groups[0]
    frozen_everywhere = rec.lineage.model_copy(deep=True)
    for stage in frozen_everywhere.stages:
        for g in stage.optimizer.groups:
            g.frozen = [group.params[0]]
    assert frozen_everywhere.trained_parameters() == names - {group.params[0]}
