"""Stage-attribution estimators: ``prepare`` → stage embeddings, ``score`` → stage effects.

One module per registered estimator at the top (``ESTIMATORS`` lists them; docs/estimators.md);
helpers by role in ``propagation/`` (the step maps and how a displacement travels through later
steps), ``curvature/`` (curvature products and the random projection) and ``scoring/``
(gradients, the plug-in form, probe families).
"""

from auditor.estimators.base import Estimator, EstimatorState, StageEffects, StageEmbeddings
from auditor.estimators.embeddings import load_embeddings, save_embeddings
from auditor.estimators.fidelity import FidelityCheck, verify_by_replay
from auditor.estimators.registry import DEFAULT, ESTIMATORS, attribute, get_estimator
from auditor.estimators.settings import EstimatorSettings

__all__ = ["DEFAULT", "ESTIMATORS", "Estimator", "EstimatorSettings", "EstimatorState",
           "FidelityCheck", "StageEffects", "StageEmbeddings", "attribute", "get_estimator",
           "load_embeddings", "save_embeddings", "verify_by_replay"]
