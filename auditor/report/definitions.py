"""What the report's rules and behaviours mean: each rule's policy rationale (from the policy
text stored with the gate run) and the behaviours it was evaluated on, as rows the rule tables
print. Policy text is vendor input: parsed with the safe loader, size-limited, never markup."""

from __future__ import annotations

from typing import Any

import yaml

POLICY_TEXT_LIMIT = 256 * 1024


def rationales(runs: list[dict[str, Any]], gate_run_ids: list[str]) -> dict[str, str]:
    """Rule id → the policy's rationale text, from the policy stored with the gate run(s)."""
    found: dict[str, str] = {}
    for run in runs:
        if run.get("run_id") not in gate_run_ids:
            continue
        text = (run.get("config") or {}).get("policy_text")
        if not isinstance(text, str) or len(text) > POLICY_TEXT_LIMIT:
            continue
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        rules = doc.get("rules") if isinstance(doc, dict) else None
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, dict) and isinstance(rule.get("rationale"), str):
                found[str(rule.get("id"))] = " ".join(rule["rationale"].split())
    return found


def rule_rows(version) -> list[dict[str, Any]]:
    """One row per rule of a version's policy evaluation: every behaviour it was evaluated on
    (failing ones first), its outcome counts and the policy's rationale ("not stated in the
    stored policy" when the gate run kept no policy text)."""
    why = rationales(version.runs, version.runs_by_table.get("verdicts", []) +
                     version.runs_by_table.get("policy_results", []))
    rows = []
    for rule in version.policy["rules"]:
        evaluated = [r for r in version.policy["rows"] if r["rule_id"] == rule["rule_id"]]
        failing = [r["behaviour"] for r in evaluated
                   if r["outcome"] in ("fail", "indeterminate") and r["behaviour"]]
        behaviours = list(dict.fromkeys(failing + [r["behaviour"] for r in evaluated
                                                   if r["behaviour"]]))
        rows.append(rule | {"behaviours": behaviours or ["(model level)"],
                            "failing_behaviours": list(dict.fromkeys(failing)),
                            "rationale": why.get(rule["rule_id"])
                            or "not stated in the stored policy"})
    return rows
