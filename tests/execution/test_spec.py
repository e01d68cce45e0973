"""The audit spec is parsed strictly: unknown keys and bad entry points name the key and line."""

from __future__ import annotations

import pytest

from auditor.errors import InputError
from auditor.execution.spec import AuditSpec, behaviour_sets, load_spec

GOOD = """\
name: quarterly
versions:
  period: 2026-Q4
  models: [digits]
behaviours:
  digits: auditor.demo.digits:behaviours
  "*": [auditor.demo.toxicity:behaviours, tinyaudit:behaviours]
executor:
  kind: ray
  address: auto
  num_gpus: 0.5
"""


def test_good_spec_and_defaults(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert spec.estimators == ["aa"]
    assert spec.executor.kind == "ray" and spec.executor.num_gpus == 0.5
    assert spec.executor.max_retries == 3
    assert spec.behaviour_sets("digits") == ["auditor.demo.digits:behaviours"]
    assert spec.behaviour_sets("other") == ["auditor.demo.toxicity:behaviours",
                                            "tinyaudit:behaviours"]


def test_unknown_key_names_key_and_line(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text(GOOD.replace("  num_gpus: 0.5", "  num_gpu: 0.5"))
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.line == 11 and info.value.key == "executor.num_gpu"
    assert "unknown key" in str(info.value)


def test_versions_must_select_something(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text("versions: {}\nbehaviours: a.b:c\n")
    with pytest.raises(InputError, match="ids, a period"):
        load_spec(path)


def test_bad_entry_point_and_executor(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text("versions: {ids: [m@v]}\nbehaviours: not-an-entry-point\n")
    with pytest.raises(InputError, match="package.module:function"):
        load_spec(path)
    path.write_text("versions: {ids: [m@v]}\nbehaviours: a.b:c\nexecutor: {kind: dask}\n")
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.key == "executor.kind" and info.value.line == 3


def test_behaviours_missing_for_a_model():
    spec = AuditSpec(versions={"ids": ["m@v"]}, behaviours={"digits": "a.b:c"})
    with pytest.raises(InputError, match="no behaviours for model 'toxicity'"):
        spec.behaviour_sets("toxicity")
    with pytest.raises(InputError, match="no behaviours given for tiny"):
        behaviour_sets(None, "tiny")
