"""What to audit, as plain data the estimators receive: the user's training task.

A lineage names its task as ``module:function``; the function returns a ``TrainingTask``.
The estimators rebuild the architecture with ``build_model()``, take weights from checkpoints,
fetch logged batches with ``batch(ids)`` and evaluate ``loss``. Nothing here imports the store,
Ray or the report.

A lineage is data that may come from a vendor, so the entry point it names is code the user has
not chosen: it is resolved only when its module is allowed (``check_task_allowed``) — the
modules of the entry points the user wrote (the audit spec's ``model_factory`` and
``behaviours``, ``--behaviours``), the spec's ``allow_tasks``, ``--allow-task MODULE``, the
``AUDITOR_ALLOW_TASKS`` variable, and auditor's own demo package. Any entry point must name a
Python function or class that takes no required argument; a declared return type that is not a
``TrainingTask`` is refused before anything is called (docs/reliability.md).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, get_type_hints, runtime_checkable

import torch

from auditor.errors import InputError


@runtime_checkable
class TrainingTask(Protocol):
    def build_model(self) -> torch.nn.Module:
        """A fresh model of the audited architecture (weights are loaded afterwards)."""

    def batch(self, stage_id: str, ids: Sequence[int]) -> Any:
        """The training batch with these example ids, as logged for ``stage_id``."""

    def loss(self, model: torch.nn.Module, batch: Any, reduction: str = "mean") -> torch.Tensor:
        """Training loss of ``model`` on ``batch``; ``reduction="none"`` gives per-example losses."""


ALLOW_ENV = "AUDITOR_ALLOW_TASKS"
BUILTIN_MODULES = ("auditor.demo",)  # shipped with auditor: as trusted as auditor itself
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", re.ASCII)
_TASK_METHODS = ("build_model", "batch", "loss")


def entry_module(spec: str) -> str:
    if not isinstance(spec, str) or not _ENTRY_POINT.match(spec):
        raise InputError(f"entry point {spec!r} must look like 'package.module:function'")
    return spec.partition(":")[0]


def allowed_modules(entry_points: Iterable[str] = (), extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The modules whose task entry points may be resolved: those of the entry points the user
    wrote, ``extra`` (``--allow-task``, a spec's ``allow_tasks``), the ``AUDITOR_ALLOW_TASKS``
    variable (comma or space separated) and auditor's demo package. A module allows its
    submodules."""
    named = [entry_module(spec) for spec in entry_points if spec]
    env = [m for m in re.split(r"[,\s]+", os.environ.get(ALLOW_ENV, "")) if m]
    return tuple(dict.fromkeys([*named, *extra, *env, *BUILTIN_MODULES]))


def check_task_allowed(spec: str, allowed: Iterable[str], *, source: str) -> None:
    """InputError unless ``spec``'s module is in ``allowed``: checked before its module is
    imported, since importing runs code too."""
    module = entry_module(spec)
    if not any(module == a or module.startswith(a + ".") for a in allowed):
        raise InputError(
            f"{source} names the task {spec!r}, and its module {module!r} is not allowed to "
            f"run: a lineage is data and cannot choose code; if you trust it, pass --allow-task "
            f"{module} or set {ALLOW_ENV}={module}")


def vet_task(spec: str, allowed: Iterable[str], *, source: str) -> None:
    """Everything that can be checked about a lineage's task without calling it: its module is
    allowed, it names a plain no-argument function or class, its declared return type (if any)
    is a TrainingTask. Run by the planner, so a refusal comes before any work starts."""
    check_task_allowed(spec, allowed, source=source)
    _check_declared_return(spec, load_entry_point(spec))


def load_entry_point(spec: str) -> Callable[..., Any]:
    """Resolve ``module:function`` to the callable, with a clear error when it does not exist,
    is not a Python function or class, or needs arguments."""
    entry_module(spec)
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import {module_name!r} for entry point {spec!r}: {exc}") from exc
    target = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise InputError(f"{module_name!r} has no attribute {attr!r} (entry point {spec!r})")
    _require_plain_callable(spec, target)
    return target


def _require_plain_callable(spec: str, target: Any) -> None:
    target = inspect.unwrap(target) if callable(target) else target  # lru_cache, wraps
    if not (inspect.isfunction(target) or inspect.isclass(target)):
        raise InputError(f"entry point {spec!r} is not a Python function or class "
                         f"({type(target).__name__}); auditor calls only those")
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        raise InputError(f"entry point {spec!r} has no readable signature") from None
    required = [p.name for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise InputError(f"entry point {spec!r} needs arguments ({', '.join(required)}); "
                         "it must be callable with none")


def _declared_return(target: Any) -> Any:
    target = inspect.unwrap(target)
    if inspect.isclass(target):
        return target
    try:
        return get_type_hints(target).get("return")
    except Exception:  # an annotation that cannot be resolved: checked after the call instead
        return None


def _is_task_type(kind: Any) -> bool:
    return inspect.isclass(kind) and all(callable(getattr(kind, m, None)) for m in _TASK_METHODS)


def _check_declared_return(spec: str, factory: Any) -> None:
    declared = _declared_return(factory)
    if declared is not None and not _is_task_type(declared):
        raise InputError(f"entry point {spec!r} is declared to return {declared!r}, not a "
                         "TrainingTask (build_model, batch, loss); it was not called")


def load_task(spec: str, *, allowed: Iterable[str] | None = None,
              source: str = "the lineage") -> TrainingTask:
    """The TrainingTask ``spec`` returns. With ``allowed``, its module must be among them."""
    if allowed is not None:
        check_task_allowed(spec, allowed, source=source)
    factory = load_entry_point(spec)
    _check_declared_return(spec, factory)
    task = factory()
    if not isinstance(task, TrainingTask):
        raise InputError(f"{spec!r} did not return a TrainingTask (build_model, batch, loss)")
    return task
