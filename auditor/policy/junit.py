"""JUnit XML of a gate: one test case per rule, failed when it blocks, skipped when undecided.

CI systems (GitHub Actions test reporters, GitLab ``artifacts:reports:junit``) show each rule
with its offending (behaviour, stage) rows in the failure message.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from auditor.policy.outcomes import GateResult, rows_by_rule


def _describe(row: dict) -> str:
    observed = "n/a" if row["observed"] is None else f"{row['observed']:.6g}"
    where = f"{row['behaviour'] or '-'} @ {row['stage_id'] or '-'}"
    rule = f"{row['metric']} {row['comparator']} {row['threshold']:g}"
    reason = row["reason"] if row["reason"] and row["reason"] != rule else ""
    return f"{row['outcome'].upper()} {where}: observed {observed} ({rule}) {reason}".rstrip()


def junit_xml(result: GateResult) -> str:
    by_rule = rows_by_rule(result.rows())
    suite = ET.Element("testsuite", name=f"auditor gate {result.key}",
                       tests=str(len(by_rule)))
    counts = {"failures": 0, "skipped": 0}
    for rule_id, rows in by_rule.items():
        _case(suite, result, rule_id, rows, counts)
    suite.set("failures", str(counts["failures"]))
    suite.set("skipped", str(counts["skipped"]))
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", result.verdict), ("policy_hash", result.policy_hash),
                        ("estimator", result.estimator or ""),
                        ("config_hash", result.config_hash or "")):
        ET.SubElement(props, "property", name=name, value=value)
    suites = ET.Element("testsuites", name="auditor gate")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def _case(suite: ET.Element, result: GateResult, rule_id: str, rows: list[dict],
          counts: dict[str, int]) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"{result.policy_id}.{result.key}",
                         name=rule_id)
    failed = [r for r in rows if r["outcome"] == "fail"]
    undecided = [r for r in rows if r["outcome"] == "indeterminate"]
    blocking = rows[0]["severity"] == "block"
    if failed or (undecided and blocking and not result.allow_indeterminate):
        counts["failures"] += 1
        shown = failed + undecided
        ET.SubElement(case, "failure", message=_describe(shown[0]),
                      type="indeterminate" if not failed else "policy").text = \
            "\n".join(_describe(r) for r in shown)
    elif undecided:
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", message=_describe(undecided[0]))
    noted = [r for r in rows if r["outcome"] in ("warn", "info", "waived")]
    if noted:
        ET.SubElement(case, "system-out").text = "\n".join(_describe(r) for r in noted)


def write_junit(result: GateResult, path: str | Path) -> None:
    Path(path).write_text(junit_xml(result), encoding="utf-8")
