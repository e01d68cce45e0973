"""The digest of what an item's scores depend on besides the lineage and the estimator
settings: the source of the task's and the behaviours' modules, and every behaviour's name,
direction and probe-data digest. It is part of an item's run config, so editing a behaviour's
probe data or code makes its stored scores stale: the planner recomputes them."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from typing import Any

from auditor.hashing import canonical_json


def module_source(spec: str) -> str:
    """The text of the module an entry point lives in ('' when it has no source file)."""
    module_name = spec.partition(":")[0]
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return ""


def inputs_digest(task: str, behaviours: str) -> str:
    """The digest; when the driver cannot load the task or behaviours, a digest of the error
    (the items are planned and fail in their workers, where the error is reported per item)."""
    from auditor.behaviours.library import load_behaviours

    try:
        loaded = load_behaviours(behaviours)
        sources = (module_source(task), module_source(behaviours))
    except Exception as exc:  # user code: anything it raises fails the items in the workers
        return _sha(f"unloadable {task} {behaviours}: {type(exc).__name__}")
    described = [[b.name, b.direction, b.probe_digest, _code_of(b.surrogate)] for b in loaded]
    blob = canonical_json({"task": task, "task_source": _sha(sources[0]),
                           "behaviours": behaviours, "behaviours_source": _sha(sources[1]),
                           "behaviour_list": described})
    return _sha(blob)


def behaviour_definitions(behaviours: str) -> list[dict[str, Any]] | None:
    """What each behaviour of a set measures, for the store (``Store.add_behaviour``): name,
    direction, description, metric, probe size and probe-data digest. None when the set
    cannot be loaded (its items fail in the workers, where the error is reported per item)."""
    from auditor.behaviours.library import load_behaviours

    try:
        loaded = load_behaviours(behaviours)
    except Exception:  # user code: reported by the items that use it
        return None
    return [{"name": b.name, "direction": b.direction, "description": b.description,
             "probe_digest": b.probe_digest, "metric": b.metric_name,
             "probe_size": b.probe_examples or None} for b in loaded]


def _code_of(fn) -> str:
    code = getattr(fn, "__code__", None)
    return _sha(repr((code.co_code, code.co_consts))) if code is not None else ""


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()
