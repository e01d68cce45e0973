

def test_clip_factors_match_the_per_step_factor():
    from auditor.lineage.models import StepLog

    log = StepLog(lr=[[0.1]] * 5, weight_decay=[[0.0]] * 5,
                  max_grad_norm=[1.0, None, 1.0, 1.0, 2.0], grad_norm=[4.0, 3.0, None, 0.5, 2.0])
    assert log.clip_factors().tolist() == [log.clip_factor(t) for t in range(5)]
    unclipped = StepLog(lr=[[0.1]] * 3, weight_decay=[[0.0]] * 3)
    assert unclipped.clip_factors().tolist() == [1.0, 1.0, 1.0]
