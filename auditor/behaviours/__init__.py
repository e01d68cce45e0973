"""Behaviour definitions: differentiable surrogates for the estimators plus reported metrics."""

from auditor.behaviours.base import Behaviour, Direction, ProbeFamily

__all__ = ["Behaviour", "Direction", "ProbeFamily"]
