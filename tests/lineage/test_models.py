"""StepLog helpers."""

from auditor.lineage.models import StepLog


def test_clip_factors_are_max_norm_over_norm_capped_at_one():
    log = StepLog(lr=[[0.1]] * 5, weight_decay=[[0.0]] * 5,
                  max_grad_norm=[1.0, None, 1.0, 1.0, 2.0], grad_norm=[4.0, 3.0, None, 0.5, 2.0])
    assert log.clip_factors().tolist() == [1.0 / (4.0 + 1e-6), 1.0, 1.0, 1.0,
                                           2.0 / (2.0 + 1e-6)]
    unclipped = StepLog(lr=[[0.1]] * 3, weight_decay=[[0.0]] * 3)
    assert unclipped.clip_factors().tolist() == [1.0, 1.0, 1.0]
