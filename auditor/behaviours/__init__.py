"""Behaviour definitions: differentiable surrogates for the estimators plus reported metrics."""

from auditor.behaviours.base import Behaviour, Direction

__all__ = ["Behaviour", "Direction"]
