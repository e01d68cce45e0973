"""Sketched Gauss–Newton factors and the flat parameter views they are taken in.

The recorder logs the factors during training (``Recorder(..., sketch=SketchSpec(...))``,
``log``); ``aa-ggn`` with ``projection=`` reads them back (auditor.estimators.curvature). Both
rooms import this one, and it imports neither: ``layout`` (flat float64 views, stage
displacements), ``loss`` (the task's loss as a module, split at the model's outputs), ``spec``,
``countsketch``, ``factors`` (docs/maths.md#sketched-gauss-newton) and ``log``.
"""

from auditor.sketching.spec import Samples, SketchSpec

__all__ = ["Samples", "SketchSpec"]
