"""The calibration sample: replay units drawn with a seeded RNG, stratified by stage kind.

``fraction`` of the audit's units (at least ``minimum``), allotted round-robin over the stage
kinds so that every kind present is sampled before any is sampled twice; within a kind the order
is a seeded permutation. Units whose replay would overrun ``max_steps`` are passed over (the
next unit of the same kind is taken instead), so calibration never spends more than its share of
the budget. Units that cost nothing (a last stage) are replayed anyway and do not count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from auditor.certify.table import Unit


def sample_units(units: Sequence[Unit], *, fraction: float = 0.2, minimum: int = 3,
                 seed: int = 0, max_steps: float = math.inf) -> list[Unit]:
    paid = [u for u in units if u.cost > 0]
    wanted = min(len(paid), max(minimum, math.ceil(fraction * len(paid))))
    rng = np.random.default_rng(seed)
    strata: dict[str, list[Unit]] = {}
    for unit in paid:
        strata.setdefault(unit.stage_kind, []).append(unit)
    queues = {kind: [members[i] for i in rng.permutation(len(members))]
              for kind, members in sorted(strata.items())}
    order = [kind for kind in rng.permutation(sorted(queues)).tolist()]
    chosen, spent = [], 0
    while len(chosen) < wanted and any(queues.values()):
        for kind in order:
            queue = queues[kind]
            while queue:
                unit = queue.pop(0)
                if spent + unit.cost <= max_steps:
                    chosen.append(unit)
                    spent += unit.cost
                    break
            if len(chosen) >= wanted:
                break
    free = [u for u in units if u.cost == 0]
    return free + chosen
