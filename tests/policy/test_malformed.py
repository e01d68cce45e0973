"""Malformed policies: every error names the file, the line and the key; the CLI exits 2."""

from __future__ import annotations

import pytest

from auditor.cli import main

VALID = """\
policy: p
version: '1'
behaviours:
  tox: {direction: harm}
rules:
  - id: r1
    rationale: why
    behaviours: [tox]
    metric: share
    comparator: '>'
    threshold: 0.5
    stages: {kinds: [fine-tune]}
    severity: block
waivers:
  - rule: r1
    version: m@v1
    owner: ana
    reason: ok
    expires: 2026-12-31
"""

SECOND_RULE = "  - id: r1\n    rationale: again\n    direction: harm\n    metric: share\n" \
              "    comparator: '>'\n    threshold: 0.5\n"


def replace(line: int, text: str) -> str:
    lines = VALID.splitlines()
    lines[line - 1] = text
    return "\n".join(lines) + "\n"


def insert(line: int, text: str) -> str:
    lines = VALID.splitlines()
    lines.insert(line - 1, text)
    return "\n".join(lines) + "\n"


# (case, policy text, line the error must name, key it must name)
CASES = [
    ("unknown top-level key", insert(3, "colour: red"), 3, "colour"),
    ("unknown rule key", insert(13, "    colour: red"), 13, "rules[0].colour"),
    ("unknown selector key", replace(12, "    stages: {kind: [fine-tune]}"), 12,
     "rules[0].stages.kind"),
    ("unknown waiver key", insert(19, "    approver: bob"), 19, "waivers[0].approver"),
    ("threshold of the wrong type", replace(11, "    threshold: high"), 11,
     "rules[0].threshold"),
    ("threshold given as a bool", replace(11, "    threshold: true"), 11, "rules[0].threshold"),
    ("threshold given as text", replace(11, "    threshold: '0.5'"), 11, "rules[0].threshold"),
    ("metric of the wrong type", replace(9, "    metric: [share]"), 9, "rules[0].metric"),
    ("share threshold above 1", replace(11, "    threshold: 1.5"), 11, "rules[0].threshold"),
    ("share threshold below 0", replace(11, "    threshold: -0.1"), 11, "rules[0].threshold"),
    ("NaN threshold", replace(11, "    threshold: .nan"), 11, "rules[0].threshold"),
    ("rank threshold 0", replace(9, "    metric: rank").replace("0.5", "0"), 11,
     "rules[0].threshold"),
    ("fractional rank threshold", replace(9, "    metric: rank").replace("0.5", "1.5"), 11,
     "rules[0].threshold"),
    ("negative materiality", insert(13, "    materiality: -1"), 13, "rules[0].materiality"),
    ("unknown behaviour", replace(8, "    behaviours: [toxic]"), 8, "rules[0].behaviours[0]"),
    ("unknown metric", replace(9, "    metric: volume"), 9, "rules[0].metric"),
    ("unknown comparator", replace(10, "    comparator: '=='"), 10, "rules[0].comparator"),
    ("unknown severity", replace(13, "    severity: fatal"), 13, "rules[0].severity"),
    ("unknown behaviour direction", replace(4, "  tox: {direction: bad}"), 4,
     "behaviours.tox.direction"),
    ("duplicate rule ids", VALID.replace("waivers:", SECOND_RULE + "waivers:"), 14,
     "rules[1].id"),
    ("rule id with spaces", replace(6, "  - id: r 1").replace("rule: r1", "rule: 'r 1'"), 6,
     "rules[0].id"),
    ("YAML syntax error", replace(7, "    rationale: [unclosed"), 8, None),
    ("bad date", replace(19, "    expires: 2026-13-45"), 19, "waivers[0].expires"),
    ("date that is not a date", replace(19, "    expires: next spring"), 19,
     "waivers[0].expires"),
    ("missing rationale", VALID.replace("    rationale: why\n", ""), 6, "rules[0].rationale"),
    ("missing rules", VALID.split("rules:")[0], 1, "rules"),
    ("empty rules", VALID.split("rules:")[0] + "rules: []\n", 5, "rules"),
    ("behaviours and direction both", insert(9, "    direction: harm"), 8,
     "rules[0].behaviours"),
    ("neither behaviours nor direction", replace(8, "    notes_free: true").replace(
        "    notes_free: true\n", ""), 6,
     "rules[0].behaviours"),
    ("empty kinds list", replace(12, "    stages: {kinds: []}"), 12, "rules[0].stages.kinds"),
    ("waiver of an unknown rule", replace(15, "  - rule: r9"), 15, "waivers[0].rule"),
    ("blanket waiver", replace(16, "    stage: null").replace("    stage: null\n", ""), 15,
     "waivers[0].rule"),
    ("waiver version without model", replace(16, "    version: v1"), 16,
     "waivers[0].version"),
    ("top level is a list", "- policy: p\n", 1, None),
]


def test_the_base_policy_is_valid(tmp_path, capsys):
    path = tmp_path / "valid.yaml"
    path.write_text(VALID)
    assert main(["policy", "check", str(path)]) == 0
    assert "valid policy p 1" in capsys.readouterr().out


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize(("case", "text", "line", "key"), CASES, ids=[c[0] for c in CASES])
def test_malformed_policy_names_file_line_and_key(tmp_path, capsys, case, text, line, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}" in err, err
    if key is not None:
        assert f": {key}:" in err, err


def test_gate_with_a_malformed_policy_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(replace(9, "    metric: volume"))
    code = main(["gate", "--version", "m@v1", "--policy", str(path),
                 "--db", str(tmp_path / "x.duckdb")])
    assert code == 2 and f"{path}:9" in capsys.readouterr().err


def test_missing_policy_file_exits_2(tmp_path, capsys):
    assert main(["policy", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
