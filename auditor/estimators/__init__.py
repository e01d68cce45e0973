"""Stage-attribution estimators: ``prepare`` → stage embeddings, ``score`` → stage effects.

Registered: ``replay`` (exact), ``aa`` (default), ``aa-hessian``, ``aa-ggn``, ``naive``,
``tracin``. See docs/estimators.md.
"""

from auditor.estimators.base import Estimator, StageEffects, StageEmbeddings
from auditor.estimators.embeddings import load_embeddings, save_embeddings
from auditor.estimators.fidelity import FidelityCheck, verify_by_replay
from auditor.estimators.registry import ESTIMATORS, attribute, get_estimator

__all__ = ["ESTIMATORS", "Estimator", "FidelityCheck", "StageEffects", "StageEmbeddings",
           "attribute", "get_estimator", "load_embeddings", "save_embeddings",
           "verify_by_replay"]
