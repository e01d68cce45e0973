"""``SketchSpec``: how the recorder (and ``aa-ggn``'s projection) sketch Gauss–Newton factors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from auditor.errors import EstimatorError

Samples = int | Literal["exact"]


@dataclass(frozen=True)
class SketchSpec:
    """How curvature factors are sketched: buckets per parameter tensor, samples per step, seed."""

    dim: int = 1024
    samples: Samples = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise EstimatorError(f"projection must be a positive number of coordinates per "
                                 f"parameter tensor, not {self.dim!r}")
        if self.samples != "exact" and (isinstance(self.samples, bool)
                                        or not isinstance(self.samples, int) or self.samples < 1):
            raise EstimatorError(f"samples must be a positive integer or 'exact', "
                                 f"not {self.samples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise EstimatorError(f"sketch_seed must be a non-negative integer, not {self.seed!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "samples": self.samples, "seed": self.seed}
