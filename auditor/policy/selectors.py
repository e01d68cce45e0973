"""Which (behaviour, stage) rows a rule looks at, as boolean masks over the metric table."""

from __future__ import annotations

from fnmatch import fnmatchcase

import numpy as np

from auditor.policy.model import Rule, StageSelector


def stage_matches(selector: StageSelector, stage_id: str, kind: str | None,
                  tags: set[str]) -> bool:
    """Fields combine with AND, the items of one field with OR."""
    if selector.kinds is not None and kind not in selector.kinds:
        return False
    if selector.ids is not None and stage_id not in selector.ids:
        return False
    if selector.names is not None and not any(fnmatchcase(stage_id, g) for g in selector.names):
        return False
    return selector.dataset_tags is None or bool(tags & set(selector.dataset_tags))


def stage_mask(selector: StageSelector, stage_ids: np.ndarray, kinds: np.ndarray,
               tags: dict[str, set[str]]) -> np.ndarray:
    """Which of the (distinct) stages ``stage_ids``, of kinds ``kinds``, the selector picks."""
    return np.fromiter((stage_matches(selector, stage, kind, tags.get(stage, set()))
                        for stage, kind in zip(stage_ids.tolist(), kinds.tolist())),
                       dtype=bool, count=len(stage_ids))


def selected_behaviours(rule: Rule, scored: dict[str, str]) -> list[str]:
    """Behaviour names the rule covers; ``scored`` maps each scored behaviour to its direction.
    Named behaviours are kept even when not scored (they become INDETERMINATE)."""
    if rule.behaviours is not None:
        return list(rule.behaviours)
    return sorted(name for name, direction in scored.items() if direction == rule.direction)
