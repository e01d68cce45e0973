"""``auditor demo``: the whole pipeline on the built-in scenarios, end to end.

record (Recorder) → store → attribute (Ray or in-process) → gate (default policy) → remediate
the blamed stage → attribute and gate the fix → sign a quarterly and a gate report → verify them.
Every step reuses what a previous run left in the demo folder, so a second run is quick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from auditor.demo.plans import digits_versions, toxicity_versions
from auditor.demo.record import VersionPlan, record_version

PERIOD = "2026-Q4"
ESTIMATOR = "aa"
BEHAVIOURS = {"digits": "auditor.demo.digits:behaviours",
              "toxicity": "auditor.demo.toxicity:behaviours"}
PLANS: dict[str, Callable[[], list[VersionPlan]]] = {"digits": digits_versions,
                                                       "toxicity": toxicity_versions}
FIXED_VERSION = "v3"
Step = Callable[[str], None]  # announces the step about to run


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo keeps its files under one folder."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "auditor.duckdb"

    def lineage(self, model: str, version: str) -> Path:
        return self.root / "lineage" / f"{model}-{version}"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


@dataclass
class DemoSummary:
    layout: DemoLayout
    verdicts: dict[str, str] = field(default_factory=dict)  # key -> verdict
    blamed: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (stage, behaviour)
    remediations: list = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    verified: dict[Path, bool] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.reports) and all(self.verified.values())


def record_scenarios(layout: DemoLayout, announce: Step) -> list[str]:
    """Train every planned version under the Recorder (or reuse it) and add it to the store."""
    from auditor import api

    keys = []
    for model, plans in PLANS.items():
        for plan in plans():
            announce(f"record {model}@{plan.version}")
            folder = layout.lineage(model, plan.version)
            version = record_version(plan, folder)
            api.add_version(version, folder, db=layout.db)
            keys.append(version.key)
    return keys


def run_demo(root: str | Path = "auditor-demo", *, executor: str = "ray",
             announce: Step | None = None) -> DemoSummary:
    started = time.perf_counter()
    layout = DemoLayout(Path(root))
    layout.root.mkdir(parents=True, exist_ok=True)
    announce = announce or (lambda _: None)
    summary = DemoSummary(layout)
    record_scenarios(layout, announce)
    summary.seconds = time.perf_counter() - started
    return summary
