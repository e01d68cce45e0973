"""The report settings file: strict parsing, and "not provided" for every missing field."""

from __future__ import annotations

import pytest

from auditor.report.settings import (
    NOT_PROVIDED,
    ReportSettingsError,
    load_settings,
    responsibilities,
)

FULL = """\
report:
  provider: Example Labs GmbH, Berlin
  accountable_owner: Dr. A. Owner (Head of ML)
  independent_reviewer: B. Reviewer, QA department
  approval: {by: C. Approver, date: 2026-12-01, reference: CAB-42}
  intended_users: [internal QA engineers]
  intended_uses: [digit recognition on scanned forms]
  out_of_scope_uses: [medical or legal decisions, biometric identification]
  contact: audit@example.org
  model_licence: Apache-2.0
"""


def test_full_settings_fill_every_row(tmp_path):
    path = tmp_path / "auditor.yaml"
    path.write_text(FULL)
    rows = responsibilities(load_settings(folder=tmp_path))
    values = {r.label: r.value for r in rows}
    assert all(r.provided for r in rows)
    assert values["Approval"] == "C. Approver, 2026-12-01 (ref. CAB-42)"
    assert values["Out-of-scope uses"] == "medical or legal decisions; biometric identification"


def test_missing_fields_read_not_provided(tmp_path):
    path = tmp_path / "auditor.yaml"
    path.write_text("report:\n  provider: Example Labs\n")
    rows = {r.label: r for r in responsibilities(load_settings(path))}
    assert rows["Provider"].provided
    missing = [r for r in rows.values() if not r.provided]
    assert len(missing) == 8 and {r.value for r in missing} == {NOT_PROVIDED}
    # no file at all: nothing guessed
    assert {r.value for r in responsibilities(load_settings(folder=tmp_path / "none"))} == {
        NOT_PROVIDED}


def test_pyproject_section(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.auditor.report]\nprovider = "P"\nintended_uses = "one use"\n')
    settings = load_settings(path)
    assert settings.provider == "P" and settings.intended_uses == ["one use"]


@pytest.mark.parametrize("text, where", [
    ("report:\n  provider: P\n  licence: MIT\n", "yaml:3:"),            # unknown key
    ("report:\n  approval: {by: X, when: today}\n", "yaml:2:"),        # unknown nested key
    ("report:\n  contact: '  '\n", "yaml:2:"),                          # blank
    ("report: [1, 2]\n", "yaml:1:"),
    ("report:\n  provider: [unclosed\n", "syntax error"),                      # syntax error
])
def test_bad_settings_name_the_line(tmp_path, text, where):
    path = tmp_path / "auditor.yaml"
    path.write_text(text)
    with pytest.raises(ReportSettingsError) as info:
        load_settings(path)
    assert where in str(info.value) and "auditor.yaml" in str(info.value)


def test_signing_defaults(tmp_path):
    from auditor.report.settings import load_document

    path = tmp_path / "auditor.yaml"
    path.write_text("signing:\n  tsa_url: http://127.0.0.1:3161/tsa\n  crl: keys/root.crl\n")
    document = load_document(folder=tmp_path)
    assert document.signing.tsa_url.startswith("http://")
    assert document.signing.crl == [str(tmp_path / "keys/root.crl")]
    path.write_text("signing:\n  tsa_url: ftp://x\n")
    with pytest.raises(ReportSettingsError, match="yaml:2:"):
        load_document(path)
