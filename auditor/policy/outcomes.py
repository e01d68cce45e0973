"""What a gate returns: the verdict, one row per (rule, behaviour, stage), and the exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

EXIT_PASS, EXIT_FAIL = 0, 1

RESULT_SCHEMA = pa.schema([
    ("model", pa.string()), ("version", pa.string()), ("policy_id", pa.string()),
    ("policy_version", pa.string()), ("policy_hash", pa.string()), ("rule_id", pa.string()),
    ("severity", pa.string()), ("behaviour", pa.string()), ("stage_id", pa.string()),
    ("metric", pa.string()), ("comparator", pa.string()), ("threshold", pa.float64()),
    ("observed", pa.float64()), ("outcome", pa.string()), ("reason", pa.string()),
    ("waiver_owner", pa.string()), ("waiver_reason", pa.string()),
    ("waiver_expiry", pa.date32()), ("estimator", pa.string()), ("config_hash", pa.string()),
    ("evidence", pa.string()), ("observed_lo", pa.float64()), ("observed_hi", pa.float64()),
])


def verdict_of(results: pa.Table) -> str:
    """FAIL on an unwaived block failure; else INDETERMINATE when a block rule could not be
    decided; else PASS-WITH-WAIVERS when a waiver turned a block failure; else PASS."""
    pairs = set(zip(results.column("severity").to_pylist(), results.column("outcome").to_pylist()))
    if ("block", "fail") in pairs:
        return "FAIL"
    if ("block", "indeterminate") in pairs:
        return "INDETERMINATE"
    if ("block", "waived") in pairs:
        return "PASS-WITH-WAIVERS"
    return "PASS"


# Row outcomes, worst first: a rule's outcome is the worst of its rows'.
OUTCOME_ORDER = ("fail", "indeterminate", "waived", "warn", "info", "pass")


def worst_outcome(outcomes) -> str:
    """The worst of ``outcomes`` ("pass" when there are none)."""
    return min(outcomes, key=OUTCOME_ORDER.index, default="pass")


def rows_by_rule(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Result rows grouped by rule, rules in order of first appearance."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["rule_id"], []).append(row)
    return grouped


@dataclass(frozen=True)
class GateResult:
    key: str
    policy_id: str
    policy_version: str
    policy_hash: str
    policy_path: str
    estimator: str | None
    config_hash: str | None
    previous: str | None
    verdict: str
    results: pa.Table  # RESULT_SCHEMA
    run_id: str | None = None
    expired_waivers: tuple[dict[str, Any], ...] = ()
    allow_indeterminate: bool = False
    evaluated_on: str = ""

    @property
    def exit_code(self) -> int:
        if self.verdict == "FAIL":
            return EXIT_FAIL
        if self.verdict == "INDETERMINATE" and not self.allow_indeterminate:
            return EXIT_FAIL
        return EXIT_PASS

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_PASS

    def rows(self) -> list[dict[str, Any]]:
        return self.results.to_pylist()

    def to_json(self) -> dict[str, Any]:
        """The machine-readable verdict (``auditor gate --json``)."""
        rows = [{k: (str(v) if k == "waiver_expiry" and v is not None else v)
                 for k, v in row.items()} for row in self.rows()]
        return {"version": self.key, "verdict": self.verdict, "exit_code": self.exit_code,
                "policy": {"id": self.policy_id, "version": self.policy_version,
                           "hash": self.policy_hash, "path": self.policy_path},
                "estimator": self.estimator, "config_hash": self.config_hash,
                "previous_version": self.previous, "run_id": self.run_id,
                "evaluated_on": self.evaluated_on,
                "allow_indeterminate": self.allow_indeterminate,
                "expired_waivers": list(self.expired_waivers), "results": rows}
