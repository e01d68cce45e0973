"""The registry, the typed settings and every list of estimator names held to it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from auditor.errors import EstimatorError
from auditor.estimators import ESTIMATORS, Estimator, get_estimator
from auditor.estimators.catalogue import BEGIN, END, settings_table

DOCS = Path(__file__).resolve().parents[2] / "docs"

# computed at the commit before the estimators were restructured (f9408bb): stored results
# stay valid only while these hold
KNOWN_HASHES = [
    ("replay", {}, "a143db884d3ef214"),
    ("replay", {"stages": [1]}, "a143db884d3ef214"),
    ("aa", {}, "c7f7947df0c85754"),
    ("aa", {"plugin": True}, "501a8f59eabe25c5"),
    ("naive", {}, "92fd4887d75cdc42"),
    ("tracin", {}, "5142a5d4a2428b81"),
    ("tracin", {"checkpoints": 3}, "e8e01ef8ab6b10ff"),
    ("aa-hessian", {}, "ca92cf68129d9d83"),
    ("aa-hessian", {"plugin": True}, "ba2e754170f42341"),
    ("aa-hessian", {"adam": "fixed", "mode": "reverse"}, "40d6edf28389d954"),
    ("aa-ggn", {}, "5a6f9977bb4ee32d"),
    ("aa-ggn", {"curvature": "fisher"}, "a7a3044d29ce538e"),
    ("aa-ggn", {"projection": 1024}, "f54c188e0aa4bd4c"),
    ("aa-ggn", {"projection": 64, "samples": "exact", "sketch_seed": 3}, "edf10d4b3a525b78"),
    ("aa-ggn", {"projection": 64, "samples": 2}, "ff1128268059fc4c"),
    ("aa-ggn", {"adam": "jacobian", "device": "cpu"}, "426ec43dc305b907"),
]


@pytest.mark.parametrize(("name", "settings", "expected"), KNOWN_HASHES)
def test_config_hashes_are_those_of_earlier_releases(name, settings, expected):
    assert get_estimator(name, **settings).config_hash == expected


def test_the_registry_is_the_named_subclasses():
    assert set(ESTIMATORS) == {"replay", "aa", "aa-hessian", "aa-ggn", "naive", "tracin"}
    for name, cls in ESTIMATORS.items():
        assert issubclass(cls, Estimator) and cls.name == name


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_settings_are_frozen_typed_and_explained(name):
    cls = ESTIMATORS[name]
    settings = cls.Settings()
    assert dataclasses.is_dataclass(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.device = "cpu"
    for item in dataclasses.fields(settings):
        assert item.metadata["help"].strip(), f"{name}.{item.name} has no help text"
    assert "device" not in settings.hashed() and "mode" not in settings.hashed()
    # device changes rounding, not the estimate: it is outside the hash
    assert get_estimator(name, device="cpu").config_hash == get_estimator(name).config_hash


def test_an_estimator_takes_a_settings_object_or_keywords():
    cls = ESTIMATORS["tracin"]
    assert cls(cls.Settings(checkpoints=3)).config_hash == cls(checkpoints=3).config_hash
    with pytest.raises(EstimatorError, match="not both"):
        cls(cls.Settings(), checkpoints=3)
    with pytest.raises(EstimatorError, match="takes a TracInSettings, not a AASettings"):
        cls(ESTIMATORS["aa"].Settings())


def test_an_unknown_setting_is_named_with_the_valid_ones():
    with pytest.raises(EstimatorError) as raised:
        get_estimator("tracin", checkpoint=3)
    message = str(raised.value)
    assert "'checkpoint'" in message and "device, checkpoints" in message
    with pytest.raises(EstimatorError, match="no setting 'rank'.*mode, queries, plugin, adam"):
        get_estimator("aa-hessian", rank=4)


@pytest.mark.parametrize(("name", "settings", "message"), [
    ("tracin", {"checkpoints": 0}, "checkpoints per stage must be ≥ 1"),
    ("aa", {"plugin": "yes"}, "plugin must be true or false"),
    ("aa-hessian", {"mode": "sideways"}, "mode must be auto, forward or reverse"),
    ("aa-hessian", {"adam": "exact"}, "adam must be one of"),
    ("aa-ggn", {"curvature": "kfac"}, "curvature must be one of"),
    ("replay", {"stages": ["a"]}, "stages must be stage indices"),
    ("naive", {"device": "tpu"}, "device must be one of"),
])
def test_settings_validate_in_post_init(name, settings, message):
    with pytest.raises(EstimatorError, match=message):
        get_estimator(name, **settings)


def test_the_cli_help_lists_the_registry():
    from auditor.cli.audit import ESTIMATOR_HELP, ESTIMATOR_NAMES

    assert sorted(ESTIMATOR_NAMES) == sorted(ESTIMATORS)
    assert all(name in ESTIMATOR_HELP for name in ESTIMATORS)


def test_docs_estimators_holds_the_generated_settings_table():
    page = (DOCS / "estimators.md").read_text()
    block = page[page.index(BEGIN) + len(BEGIN):page.index(END)]
    assert block.strip() == settings_table().strip(), \
        "run: python -m auditor.estimators.catalogue --write docs/estimators.md"
    registry = re.findall(r"^\| `([\w-]+)`", page.split("## The registry")[1].split("\n## ")[0],
                          re.MULTILINE)
    assert sorted(set(registry)) == sorted(ESTIMATORS)


def test_docs_contracts_names_the_registry():
    page = (DOCS / "contracts.md").read_text()
    sentence = page.split("Registered names:")[1].split("(tested")[0]
    assert sorted(re.findall(r"`([\w-]+)`", sentence)) == sorted(ESTIMATORS)


def test_docs_architecture_names_the_registry():
    page = (DOCS / "architecture.md").read_text()
    sentence = page.split("Registry:")[1].split("- **Executor**")[0]
    assert sorted(set(re.findall(r"`([\w-]+)`", sentence))) == sorted(ESTIMATORS)
