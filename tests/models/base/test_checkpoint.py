"""utils.checkpoint: weights files, atomic folders, damage detection, fallback, pruning, inference checkpoints,
export."""

import json
import logging

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from bins.tta import export_checkpoint
from utils.checkpoint import (
    CheckpointError,
    checkpoint_name,
    commit_checkpoint,
    export_inference_checkpoint,
    latest_valid_checkpoint,
    list_checkpoints,
    load_model_weights,
    load_module_tensors,
    module_tensors,
    prepare_staging_dir,
    prune_checkpoints,
    read_checkpoint_meta,
    resolve_checkpoint,
    save_inference_checkpoint,
    save_tensors,
    validate_checkpoint,
    write_json_atomic,
)


class TiedModel(nn.Module):
    """Embedding tied to the output layer, a persistent and a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(5, 3)
        self.output = nn.Linear(3, 5, bias=False)
        self.output.weight = self.embedding.weight
        self.norm = nn.BatchNorm1d(3)
        self.register_buffer("scratch", torch.zeros(2), persistent=False)


def write_checkpoint(checkpoints_dir, step, payload=1.0):
    final = checkpoints_dir / checkpoint_name(step)
    staging = prepare_staging_dir(final)
    save_tensors({"w": torch.full((4,), payload)}, staging / "model.safetensors")
    meta = {"kind": "training", "step": step, "config": {"a": 1}, "models": ["model"]}
    return commit_checkpoint(staging, final, meta)


def test_module_tensors_hold_each_tied_parameter_once_and_persistent_buffers():
    tensors = module_tensors(TiedModel())
    assert sorted(tensors) == [
        "embedding.weight", "norm.bias", "norm.num_batches_tracked", "norm.running_mean", "norm.running_var",
        "norm.weight",
    ]


def test_weights_round_trip_keeps_ties_and_buffers(tmp_path):
    torch.manual_seed(0)
    source, target = TiedModel(), TiedModel()
    source.norm.running_mean.fill_(3.0)
    save_tensors(module_tensors(source), tmp_path / "w.safetensors")
    load_module_tensors(target, load_file(str(tmp_path / "w.safetensors")))
    assert torch.equal(target.output.weight, source.embedding.weight)
    assert target.output.weight is target.embedding.weight
    assert torch.equal(target.norm.running_mean, torch.full((3,), 3.0))


def test_mismatched_weights_are_a_clear_error():
    tensors = module_tensors(TiedModel())
    with pytest.raises(CheckpointError, match=r"1 missing \(e.g. \['weight'\]\)"):
        load_module_tensors(nn.Linear(3, 3, bias=True), {"bias": torch.zeros(3)}, source="x.safetensors")
    with pytest.raises(CheckpointError, match="embedding.weight has shape"):
        load_module_tensors(TiedModel(), {**tensors, "embedding.weight": torch.zeros(6, 3)})


def test_commit_is_atomic_and_records_checksums(tmp_path):
    path = write_checkpoint(tmp_path, 10)
    assert path.name == "step_00000010"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000010"], "no staging folder left behind"
    meta = validate_checkpoint(path)
    assert meta["schema_version"] == 1 and meta["step"] == 10 and meta["config"] == {"a": 1}
    assert set(meta["files"]) == {"model.safetensors"} and len(meta["files"]["model.safetensors"]["sha256"]) == 64


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "complete").unlink(), "no 'complete' marker"),
        (lambda p: (p / "meta.json").write_text("{broken"), "unreadable meta.json"),
        (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:-3]), "truncated"),
        (lambda p: (p / "model.safetensors").unlink(), "missing file model.safetensors"),
        (lambda p: (p / "model.safetensors").write_bytes(bytes(reversed((p / "model.safetensors").read_bytes()))),
         "sha256"),
        (lambda p: (p / "meta.json").write_text(json.dumps({"schema_version": 99, "files": {}})), "schema version 99"),
    ],
)
def test_damage_is_detected(tmp_path, damage, message):
    path = write_checkpoint(tmp_path, 1)
    damage(path)
    with pytest.raises(CheckpointError, match=message):
        validate_checkpoint(path)


def test_latest_valid_checkpoint_falls_back_with_a_warning(tmp_path, caplog):
    for step in (1, 2, 3):
        write_checkpoint(tmp_path, step)
    (tmp_path / "step_00000003" / "complete").unlink()
    with caplog.at_level(logging.WARNING):
        assert latest_valid_checkpoint(tmp_path) == tmp_path / "step_00000002"
    assert "step_00000003" in caplog.text and "falling back" in caplog.text
    assert latest_valid_checkpoint(tmp_path / "nothing") is None


def test_commit_replaces_a_damaged_folder_of_the_same_step(tmp_path):
    damaged = write_checkpoint(tmp_path, 4, payload=1.0)
    (damaged / "complete").unlink()
    write_checkpoint(tmp_path, 4, payload=2.0)
    assert torch.equal(load_file(str(damaged / "model.safetensors"))["w"], torch.full((4,), 2.0))
    validate_checkpoint(damaged)


def test_prune_keeps_the_newest_and_removes_leftover_staging(tmp_path):
    for step in (5, 10, 100, 20):
        write_checkpoint(tmp_path, step)
    prepare_staging_dir(tmp_path / checkpoint_name(30))
    assert prune_checkpoints(tmp_path, 0) == []
    assert [step for step, _ in list_checkpoints(tmp_path)] == [5, 10, 20, 100]
    removed = prune_checkpoints(tmp_path, 2)
    assert sorted(path.name for path in removed) == ["step_00000005", "step_00000010"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step_00000020", "step_00000100"]


def test_inference_checkpoint_rebuilds_from_its_own_meta(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    config = {"model": {"in_features": 4, "out_features": 2}}
    save_inference_checkpoint(tmp_path / "export", models={"head": model}, config=config, step=7, extra={"scale": 0.5})
    meta = read_checkpoint_meta(tmp_path / "export")
    assert meta["kind"] == "inference" and meta["step"] == 7 and meta["extra"] == {"scale": 0.5}
    rebuilt = nn.Linear(**meta["config"]["model"])
    assert load_model_weights(tmp_path / "export", "head", rebuilt).name == "head.safetensors"
    assert torch.equal(rebuilt.weight, model.weight) and torch.equal(rebuilt.bias, model.bias)
    with pytest.raises(CheckpointError, match="no EMA weights for 'head'"):
        load_model_weights(tmp_path / "export", "head", rebuilt, use_ema=True)
    with pytest.raises(CheckpointError, match="no model 'body'"):
        load_model_weights(tmp_path / "export", "body", rebuilt)
    weights = tmp_path / "export" / "head.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="head.safetensors does not match its sha256"):
        load_model_weights(tmp_path / "export", "head", rebuilt)


def test_load_model_weights_prefers_ema_when_present(tmp_path):
    final = tmp_path / checkpoint_name(3)
    staging = prepare_staging_dir(final)
    save_tensors({"weight": torch.ones(1, 1), "bias": torch.ones(1)}, staging / "net.safetensors")
    save_tensors({"weight": torch.full((1, 1), 2.0), "bias": torch.full((1,), 2.0)}, staging / "net.ema.safetensors")
    commit_checkpoint(staging, final, {"kind": "training", "step": 3, "config": {}, "models": ["net"],
                                       "ema_models": ["net"]})
    model = nn.Linear(1, 1)
    assert load_model_weights(final, "net", model).name == "net.ema.safetensors"
    assert model.weight.item() == 2.0
    assert load_model_weights(final, "net", model, use_ema=False).name == "net.safetensors"
    assert model.weight.item() == 1.0


def write_training_checkpoint_with_ema(checkpoints_dir, step):
    """A training checkpoint of one Linear(1, 1) "net": raw weights 1, EMA weights 2, training state, and a
    latent_scale.json added after it was sealed."""
    final = checkpoints_dir / checkpoint_name(step)
    staging = prepare_staging_dir(final)
    save_tensors({"weight": torch.ones(1, 1), "bias": torch.ones(1)}, staging / "net.safetensors")
    save_tensors({"weight": torch.full((1, 1), 2.0), "bias": torch.full((1,), 2.0)}, staging / "net.ema.safetensors")
    torch.save({"optimizer": {"lr": 1.0}}, staging / "training_state.pt")
    commit_checkpoint(staging, final, {"kind": "training", "step": step, "config": {"a": 1}, "models": ["net"],
                                       "ema_models": ["net"], "extra": {"scale": 0.5}})
    (final / "latent_scale.json").write_text('{"scale_factor": 0.5}')
    return final


def test_resolve_checkpoint_takes_the_newest_valid_one_of_an_experiment(tmp_path):
    write_checkpoint(tmp_path / "exp" / "checkpoints", 5)
    newest = write_checkpoint(tmp_path / "exp" / "checkpoints", 9)
    assert resolve_checkpoint(tmp_path / "exp") == newest
    assert resolve_checkpoint(newest) == newest
    with pytest.raises(CheckpointError, match="neither a checkpoint folder"):
        resolve_checkpoint(tmp_path / "nothing")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        resolve_checkpoint(tmp_path / "empty")


def test_export_keeps_the_ema_weights_config_and_late_files_but_no_training_state(tmp_path):
    write_training_checkpoint_with_ema(tmp_path / "exp" / "checkpoints", 1)
    source = write_training_checkpoint_with_ema(tmp_path / "exp" / "checkpoints", 3)
    exported = export_inference_checkpoint(tmp_path / "exp", tmp_path / "shipped")
    meta = read_checkpoint_meta(exported)
    assert meta["kind"] == "inference" and meta["step"] == 3 and meta["config"] == {"a": 1}
    assert meta["extra"] == {"scale": 0.5} and meta["ema_models"] == []
    assert meta["exported_from"] == {"checkpoint": str(source), "weights": {"net": "ema"}}
    assert sorted(path.name for path in exported.iterdir()) == [
        "complete", "latent_scale.json", "meta.json", "net.safetensors"]
    model = nn.Linear(1, 1)
    assert load_model_weights(exported, "net", model).name == "net.safetensors"
    assert model.weight.item() == 2.0 and model.bias.item() == 2.0
    raw = export_inference_checkpoint(source, tmp_path / "raw", use_ema=False)
    load_model_weights(raw, "net", model)
    assert model.weight.item() == 1.0
    assert read_checkpoint_meta(raw)["exported_from"]["weights"] == {"net": "raw"}


def test_export_refuses_an_existing_destination_and_damaged_weights_writing_nothing(tmp_path):
    source = write_training_checkpoint_with_ema(tmp_path / "checkpoints", 3)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(CheckpointError, match="already exists"):
        export_inference_checkpoint(source, tmp_path / "taken")
    assert [path.name for path in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    weights = source / "net.ema.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        export_inference_checkpoint(source, tmp_path / "shipped")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoints", "taken"]


def test_export_command_reports_what_it_wrote_and_exits_2_on_bad_input(tmp_path, capsys):
    write_training_checkpoint_with_ema(tmp_path / "exp" / "checkpoints", 3)
    assert export_checkpoint.main([str(tmp_path / "exp"), str(tmp_path / "shipped")]) == 0
    assert "exported step 3" in capsys.readouterr().out and (tmp_path / "shipped" / "complete").is_file()
    assert export_checkpoint.main([str(tmp_path / "exp"), str(tmp_path / "shipped")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert export_checkpoint.main([str(tmp_path / "missing"), str(tmp_path / "other")]) == 2
    assert "neither a checkpoint folder" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_write_json_atomic(tmp_path):
    write_json_atomic(tmp_path / "sub" / "config.json", {"a": [1, 2]})
    write_json_atomic(tmp_path / "sub" / "config.json", {"a": [3]})
    assert json.loads((tmp_path / "sub" / "config.json").read_text()) == {"a": [3]}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["config.json"]
