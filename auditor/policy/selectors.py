"""Which (behaviour, stage) rows a rule looks at, as boolean masks over the metric table."""

from __future__ import annotations

from fnmatch import fnmatchcase

import numpy as np

from auditor.identifiers import match_key
from auditor.policy.model import Rule, StageSelector


def stage_matches(selector: StageSelector, stage_id: str, kind: str | None,
                  tags: set[str]) -> bool:
    """Fields combine with AND, the items of one field with OR. Both sides are compared in
    their normal form (auditor.identifiers: NFKC, dashes, invisible characters, case), so a
    look-alike kind, id or tag read from the store selects what it looks like."""
    if selector.kinds is not None and match_key(kind) not in _keys(selector.kinds):
        return False
    stage = match_key(stage_id) or ""
    if selector.ids is not None and stage not in _keys(selector.ids):
        return False
    if selector.names is not None and not any(fnmatchcase(stage, match_key(g))
                                              for g in selector.names):
        return False
    return selector.dataset_tags is None or bool(_keys(tags) & _keys(selector.dataset_tags))


def _keys(values) -> set[str]:
    return {match_key(v) for v in values}


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
