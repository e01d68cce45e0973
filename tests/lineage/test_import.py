"""Import of a lineage trained elsewhere: good files import, bad ones give located errors."""

from __future__ import annotations

import pickle
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from auditor.errors import CheckpointError, LineageError
from auditor.hashing import sha256_file
from auditor.lineage.importer import import_lineage
from auditor.lineage.prov import to_prov_json


def _weights(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"0.weight": torch.randn(4, 3, generator=gen), "0.bias": torch.randn(4, generator=gen)}


GOOD = textwrap.dedent("""\
    model: imported
    version: v1
    created_at: 2026-10-05T12:00:00Z
    stages:
      - id: pretrain
        kind: pretrain
        checkpoint_in: ckpt/init.safetensors
        checkpoint_out: ckpt/pretrain.safetensors
        optimizer: {kind: sgd, momentum: 0.9, weight_decay: 0.0001}
        steps: 10
        schedule: {kind: cosine, lr: 0.1, warmup_steps: 2}
        datasets:
          - {name: web, digest: "abc", records: 1000, licence: cc-by-4.0, provenance: crawl}
      - id: sft
        kind: fine-tune
        checkpoint_in: ckpt/pretrain.safetensors
        checkpoint_out: ckpt/sft.pt
        optimizer: {kind: adamw, betas: [0.9, 0.95], weight_decay: 0.01}
        steps: 4
        schedule: {kind: csv, path: lr.csv}
    """)


@pytest.fixture
def lineage_dir(tmp_path):
    (tmp_path / "ckpt").mkdir()
    save_file(_weights(0), str(tmp_path / "ckpt/init.safetensors"))
    save_file(_weights(1), str(tmp_path / "ckpt/pretrain.safetensors"))
    torch.save(_weights(2), tmp_path / "ckpt/sft.pt")
    (tmp_path / "lr.csv").write_text("lr\n0.001\n0.001\n0.0005\n0.0001\n")
    (tmp_path / "lineage.yaml").write_text(GOOD)
    return tmp_path


def test_good_file_imports_with_hashes_and_schedules(lineage_dir):
    version = import_lineage(lineage_dir / "lineage.yaml")
    assert version.key == "imported@v1" and version.parameters == 16
    pre, sft = version.stages
    assert pre.theta_end.sha256 == sha256_file(lineage_dir / "ckpt/pretrain.safetensors")
    assert sft.theta_end.format == "torch"
    assert pre.optimizer.steps.lr[0] == [0.05] and pre.optimizer.steps.lr[1] == [0.1]
    assert sft.optimizer.steps.lr[2] == [0.0005]
    assert sft.optimizer.steps.adam_step[-1] == [4]
    prov = to_prov_json(version)
    assert len(prov["activity"]) == 2 and any("dataset/web" in k for k in prov["entity"])


BAD = [
    ("unknown top-level key", ("model: imported", "model: imported\ncolour: red"), "colour", 2),
    ("missing version", ("version: v1\n", ""), "version", None),
    ("wrong type for steps", ("steps: 10", "steps: ten"), "stages[0].steps", 10),
    ("negative steps", ("steps: 10", "steps: -3"), "stages[0].steps", 10),
    ("unknown optimizer", ("kind: sgd, momentum", "kind: lion, momentum"),
     "stages[0].optimizer.kind", 9),
    ("momentum out of range", ("momentum: 0.9", "momentum: 1.5"),
     "stages[0].optimizer.momentum", 9),
    ("unknown schedule kind", ("kind: cosine", "kind: wiggly"), "stages[0].schedule.kind", 11),
    ("step schedule without step_size", ("kind: cosine, lr: 0.1, warmup_steps: 2",
                                         "kind: step, lr: 0.1"), "stages[0].schedule", 11),
    ("bad date", ("2026-10-05T12:00:00Z", "yesterday"), "created_at", 3),
    ("yaml syntax error", ("steps: 10", "steps: [10"), None, None),
    ("bad stage id", ("id: sft", "id: 's f t'"), "stages[1].id", 14),
    ("unknown convention", ("kind: fine-tune", "kind: fine-tune\n    convention: maybe"),
     "stages[1].convention", 16),
    ("carry without optimizer state", ("kind: fine-tune", "kind: fine-tune\n    convention: carry"),
     "stages[1].optimizer_state_in", None),
    ("csv with wrong number of rates", ("0.0001\n", "0.0001\n0.0001\n"), None, None),
    ("stages not chained", ("checkpoint_in: ckpt/pretrain.safetensors",
                            "checkpoint_in: ckpt/init.safetensors"), "stages", None),
    ("empty stages", None, "stages", None),
    ("top level is a list", "list", None, None),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_malformed_lineage_gives_located_error(lineage_dir, case):
    name, change, key, line = case
    path = lineage_dir / "lineage.yaml"
    if change is None:
        path.write_text("model: m\nversion: v\nstages: []\n")
    elif change == "list":
        path.write_text("- model: m\n")
    elif name.startswith("csv"):
        (lineage_dir / "lr.csv").write_text("0.1\n0.1\n")
    else:
        path.write_text(GOOD.replace(*change, 1))
    with pytest.raises(LineageError) as info:
        import_lineage(path)
    message = str(info.value)
    assert str(lineage_dir) in message
    if key:
        assert key in message, message
    if line:
        assert info.value.line == line, message


def _replace_checkpoint(lineage_dir, content: bytes | None):
    target = lineage_dir / "ckpt/pretrain.safetensors"
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("kind,fragment", [
    ("missing", "does not exist"),
    ("truncated", "not a readable safetensors"),
    ("garbage", "not a readable safetensors"),
    ("hash mismatch", "sha256"),
    ("pickle payload", "refused"),
    ("shape change", "changes shape"),
])
def test_bad_checkpoints_are_caught(lineage_dir, kind, fragment, monkeypatch):
    monkeypatch.chdir(lineage_dir)
    path = lineage_dir / "lineage.yaml"
    good = (lineage_dir / "ckpt/pretrain.safetensors").read_bytes()
    if kind == "missing":
        _replace_checkpoint(lineage_dir, None)
    elif kind == "truncated":
        _replace_checkpoint(lineage_dir, good[: len(good) // 2])
    elif kind == "garbage":
        _replace_checkpoint(lineage_dir, b"not a checkpoint at all")
    elif kind == "hash mismatch":
        path.write_text(GOOD.replace(
            "checkpoint_out: ckpt/pretrain.safetensors",
            "checkpoint_out: {path: ckpt/pretrain.safetensors, sha256: '" + "0" * 64 + "'}"))
    elif kind == "pickle payload":
        (lineage_dir / "ckpt/sft.pt").write_bytes(pickle.dumps({"w": _Payload()}))
    elif kind == "shape change":
        save_file({"0.weight": torch.zeros(5, 3), "0.bias": torch.zeros(4)},
                  str(lineage_dir / "ckpt/pretrain.safetensors"))
    with pytest.raises(CheckpointError) as info:
        import_lineage(path)
    assert fragment in str(info.value)
    assert "lineage.yaml:" in str(info.value)
    assert not (lineage_dir / "PWNED").exists()


def _head(db):
    from auditor.store import Store

    if not db.exists():
        return None
    with Store.open(db, read_only=True) as store:
        return store.head_hash()


def test_cli_import_show_export_and_bad_import_writes_nothing(lineage_dir, capsys):
    from auditor.cli import main

    db = lineage_dir / "a.duckdb"
    assert main(["lineage", "import", str(lineage_dir / "lineage.yaml"), "--db", str(db)]) == 0
    head = _head(db)
    assert main(["lineage", "show", "imported@v1", "--db", str(db)]) == 0
    assert "pretrain" in capsys.readouterr().out
    assert main(["lineage", "export", "imported@v1", "--format", "prov", "--db", str(db)]) == 0
    assert '"prov:type"' in capsys.readouterr().out
    (lineage_dir / "ckpt/sft.pt").write_bytes(b"junk")
    (lineage_dir / "lineage.yaml").write_text(GOOD.replace("version: v1", "version: v2"))
    assert main(["lineage", "import", str(lineage_dir / "lineage.yaml"), "--db", str(db)]) == 2
    assert _head(db) == head
