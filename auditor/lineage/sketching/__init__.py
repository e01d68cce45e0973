"""Sketched Gauss–Newton factors and the flat parameter views they are taken in.

Part of the lineage room: the recorder logs the factors during training
(``Recorder(..., sketch=SketchSpec(...))``, ``log``), and ``aa-ggn`` with ``projection=`` reads
them back (auditor.estimators.curvature.projection); nothing here imports the estimators.
``layout`` (flat float64 views of parameters and checkpoints, stage displacements D_k, M_k),
``loss`` (the task's loss as a module, split at the model's outputs), ``spec``, ``countsketch``,
``factors`` (docs/maths.md#sketched-gauss-newton) and ``log``.
"""

from auditor.lineage.sketching.spec import Samples, SketchSpec

__all__ = ["Samples", "SketchSpec"]
