"""Typed estimator settings: one frozen dataclass per estimator, help text per field.

A field made with ``setting(default, help)`` is part of the config hash unless
``hashed=False`` (``device``, the unrolled estimators' ``mode``: they change the cost, not the
numbers) or ``hashed="..."`` (a settings class whose ``hashed()`` folds the field in under
another key, named by the string). ``__post_init__`` validates; ``from_values`` turns user keys (``--setting k=v``,
audit.yaml ``estimator_settings``) into settings, naming an unknown key and the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

from auditor.errors import EstimatorError
from auditor.estimators.device import check_device

S = TypeVar("S", bound="EstimatorSettings")


def setting(default: Any, help: str, *, hashed: bool | str = True) -> Any:
    """A settings field: its default, one line of help, and whether it enters the hash."""
    return field(default=default, metadata={"help": help, "hashed": hashed})


def spill_setting() -> Any:
    """``spill_above_mb`` of the streamed estimators (``aa``, ``naive``)."""
    return setting(
        None, "streamed: keep the stage embeddings on disk, one chunk at a time, when K of "
        "them would take more than this many MiB (None, the default: more than the "
        "workspace; 0: always); below it they stay in memory "
        "(docs/scaling.md#what-streams); not in the config hash", hashed=False)


def workspace_setting() -> Any:
    """``workspace_mb`` of the streamed estimators (``aa``, ``naive``)."""
    return setting(0.0, "streamed: MiB of working memory; a tensor larger than it is computed "
                   "in chunks of rows (0: auto, a quarter of the float32 model, 1 to 256 MiB; "
                   "docs/scaling.md); not in the config hash", hashed=False)


@dataclass(frozen=True)
class EstimatorSettings:
    """Settings every estimator takes."""

    device: str = setting("auto", "where it computes: auto (CUDA when available), cpu, cuda or "
                          "cuda:N; not in the config hash (the same numbers up to rounding)",
                          hashed=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", check_device(self.device))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name → its help text."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    @classmethod
    def from_values(cls: type[S], estimator: str, values: Mapping[str, Any]) -> S:
        unknown = [name for name in values if name not in cls.names()]
        if unknown:
            raise EstimatorError(f"estimator {estimator!r} has no setting {unknown[0]!r}; its "
                                 f"settings are {', '.join(cls.names())} (docs/estimators.md)")
        return cls(**values)

    def hashed(self) -> dict[str, Any]:
        """The settings that change the numbers (what the config hash covers)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("hashed", True) is True}


def replace_setting(settings: S, name: str, value: Any) -> None:
    """Normalise a field of a frozen settings object inside its ``__post_init__``."""
    object.__setattr__(settings, name, value)


def check_bool(estimator: str, name: str, value: Any) -> bool:
    """``value`` as a bool (True/False, or 1/0 as YAML and ``--setting`` may give them)."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise EstimatorError(f"{estimator}: {name} must be true or false, not {value!r}")


def check_mib(estimator: str, name: str, value: Any, note: str = "") -> None:
    """``value`` is a number of MiB ≥ 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise EstimatorError(f"{estimator}: {name} must be a number of MiB ≥ 0{note}")


def check_streaming(estimator: str, settings: Any, precisions: Any) -> None:
    """The streamed estimators' common settings (``aa``, ``naive``): ``stream`` a bool, the two
    MiB settings ≥ 0, ``precision`` one of ``precisions``, and float32 only when streamed."""
    replace_setting(settings, "stream", check_bool(estimator, "stream", settings.stream))
    if settings.spill_above_mb is not None:  # None: the workspace
        check_mib(estimator, "spill_above_mb", settings.spill_above_mb, " or None")
    check_mib(estimator, "workspace_mb", settings.workspace_mb, " (0: auto)")
    if settings.precision not in precisions:
        raise EstimatorError(f"{estimator}: precision must be float64 or float32, not "
                             f"{settings.precision!r}")
    if settings.precision != "float64" and not settings.stream:
        raise EstimatorError(f"{estimator}: precision float32 needs stream=True")
