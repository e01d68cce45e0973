"""Every form of checkpoint a trainer writes imports and round-trips: native optimizer state
(weights_only), save_pretrained folders (single file, sharded with an index), tied weights that
save_pretrained dropped; a tied weight counts once."""

from __future__ import annotations

import pytest
import torch
import yaml

transformers = pytest.importorskip("transformers")

from auditor.demo import charlm  # noqa: E402
from auditor.errors import CheckpointError  # noqa: E402
from auditor.lineage.checkpoints import load_tensors, restore_optimizer_state  # noqa: E402
from auditor.lineage.counterfactual import load_model  # noqa: E402
from auditor.lineage.importer import import_lineage  # noqa: E402
from auditor.lineage.trainer_files import name_optimizer_state  # noqa: E402


def _write(tmp_path, stage_in, stage_out, **extra):
    spec = {"model": "charlm", "version": "imported", "task": charlm.TASK, "stages": [{
        "id": "sft", "kind": "fine-tune", "checkpoint_in": stage_in, "checkpoint_out": stage_out,
        "optimizer": {"kind": "adamw"}, "steps": 1, "schedule": {"kind": "constant", "lr": 0.01},
        **extra}]}
    path = tmp_path / "lineage.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _trained_pair(tmp_path, **save):
    torch.manual_seed(0)
    model = charlm.task().build_model()
    model.save_pretrained(tmp_path / "in", **save)
    optimizer = torch.optim.AdamW(model.named_parameters(), lr=0.01)
    charlm.task().loss(model, charlm.task().batch("sft", range(4))).backward()
    optimizer.step()
    model.save_pretrained(tmp_path / "out", **save)
    return model, optimizer


def _same_weights(model, lineage, root):
    loaded = load_model(charlm.task(), lineage, root, lineage.stages[0].theta_end)
    return all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 model.state_dict().values()))


def test_save_pretrained_folders_with_tied_weights_dropped_and_native_optimizer_state(tmp_path):
    model, optimizer = _trained_pair(tmp_path)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    lineage = import_lineage(_write(tmp_path, "in", "out", convention="carry",
                                    optimizer_state_in="optimizer.pt"))
    stage = lineage.stages[0]
    assert stage.theta_end.uri == "out/model.safetensors"
    assert "lm_head.weight" not in load_tensors(stage.theta_end, tmp_path)  # dropped as tied
    assert _same_weights(model, lineage, tmp_path)  # filled from the embedding it is tied to
    unique = sum(p.numel() for p in model.parameters())  # parameters() yields a tied one once
    assert lineage.parameters == unique
    flat = load_tensors(stage.optimizer_start, tmp_path)
    assert "transformer.wte.weight.exp_avg" in flat
    fresh = torch.optim.AdamW(model.parameters(), lr=0.01)
    restore_optimizer_state(fresh, model, flat)
    for param, state in optimizer.state.items():
        assert torch.equal(fresh.state[param]["exp_avg_sq"], state["exp_avg_sq"])


def test_sharded_safetensors_are_consolidated_into_one_hashed_file(tmp_path):
    model, _ = _trained_pair(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    lineage = import_lineage(_write(tmp_path, "in", "out"))
    assert lineage.stages[0].theta_end.uri.startswith("checkpoints/imported-")
    assert _same_weights(model, lineage, tmp_path)


def test_an_optimizer_file_without_names_is_refused_or_named_from_the_model(tmp_path):
    model, _ = _trained_pair(tmp_path)
    plain = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    charlm.task().loss(model, charlm.task().batch("sft", range(4))).backward()
    plain.step()
    torch.save(plain.state_dict(), tmp_path / "unnamed.pt")
    with pytest.raises(CheckpointError, match="does not name its parameters"):
        import_lineage(_write(tmp_path, "in", "out", convention="carry",
                              optimizer_state_in="unnamed.pt"))
    torch.save(name_optimizer_state(plain.state_dict(), model), tmp_path / "named.pt")
    lineage = import_lineage(_write(tmp_path, "in", "out", convention="carry",
                                    optimizer_state_in="named.pt"))
    flat = load_tensors(lineage.stages[0].optimizer_start, tmp_path)
    assert torch.equal(flat["lm_head.weight.momentum_buffer"]
                       if "lm_head.weight.momentum_buffer" in flat
                       else flat["transformer.wte.weight.momentum_buffer"],
                       plain.state[model.transformer.wte.weight]["momentum_buffer"])


def test_a_tied_weight_stored_under_both_names_counts_once(tmp_path):
    from safetensors.torch import save_file

    model, _ = _trained_pair(tmp_path)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    assert "lm_head.weight" in state and "transformer.wte.weight" in state
    save_file(state, str(tmp_path / "both.safetensors"))
    lineage = import_lineage(_write(tmp_path, "both.safetensors", "both.safetensors"))
    assert lineage.parameters == sum(p.numel() for p in model.parameters())
