"""A worker function for Ray tasks in tests: what the task was granted and what it can see."""


def granted(item) -> tuple[list, bool, str]:
    """(GPU ids Ray assigned to this task, whether torch sees CUDA, where ``auto`` resolves)."""
    import ray
    import torch

    from auditor.estimators.device import resolve_device

    return ray.get_gpu_ids(), torch.cuda.is_available(), str(resolve_device(item.device))
