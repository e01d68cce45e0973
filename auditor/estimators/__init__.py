"""Stage-attribution estimators: ``prepare`` → stage embeddings, ``score`` → stage effects."""

from auditor.estimators.base import Estimator, StageEffects, StageEmbeddings
from auditor.estimators.registry import ESTIMATORS, attribute, get_estimator

__all__ = ["ESTIMATORS", "Estimator", "StageEffects", "StageEmbeddings", "attribute",
           "get_estimator"]
