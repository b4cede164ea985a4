"""The shared trainer, driven by the toy GAN stage: training, logs, exact resume, damaged checkpoints, NaN stop,
pruning, hook checks, gradient accumulation, grad scaler, bf16 and two-process DDP."""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from models.base.trainer import NonFiniteLossError
from models.base.trainer_config import EMAConfig, OptimizerConfig
from tests.models.base.ddp_toy_run import MAX_STEPS as DDP_MAX_STEPS
from tests.models.base.ddp_toy_run import ddp_config
from tests.models.base.toy_stage import SGDToyStage, ToyStage, make_toy, reset_accelerate_state, toy_config
from utils.checkpoint import latest_valid_checkpoint, list_checkpoints, load_module_tensors, read_checkpoint_meta
from utils.config import config_to_dict

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    torch.use_deterministic_algorithms(False)


def checkpoint_steps(exp_dir: Path) -> list[int]:
    return [step for step, _ in list_checkpoints(exp_dir / "checkpoints")]


def assert_same_training_state(first: ToyStage, second: ToyStage) -> None:
    assert first.step == second.step
    assert first._train_loader.position == second._train_loader.position
    for name in first.models:
        first_state, second_state = first.unwrap(name).state_dict(), second.unwrap(name).state_dict()
        assert first_state.keys() == second_state.keys()
        for key in first_state:
            assert torch.equal(first_state[key], second_state[key]), f"{name}.{key}"
        first_optimizer, second_optimizer = first.optimizers[name].state_dict(), second.optimizers[name].state_dict()
        assert first_optimizer["param_groups"] == second_optimizer["param_groups"]
        for index, entry in first_optimizer["state"].items():
            for key, value in entry.items():
                assert torch.equal(value, second_optimizer["state"][index][key]), f"{name} optimizer {index}.{key}"
        assert first.lr_schedulers[name].state_dict() == second.lr_schedulers[name].state_dict()
    for name, ema in first.emas.items():
        for key, value in ema.shadow.items():
            assert torch.equal(value, second.emas[name].shadow[key]), f"EMA {name}.{key}"


def test_training_reduces_the_loss_and_writes_config_logs_and_checkpoints(tmp_path):
    config = toy_config(max_steps=40, log_every=5, valid_every=20, sample_every=20, save_every=20)
    trainer = make_toy(tmp_path, config)
    trainer.train()

    assert json.loads((tmp_path / "config.json").read_text()) == config_to_dict(config)
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/reconstruction", "train/discriminator_loss", "train/adversarial_loss", "valid/l1", "lr/generator",
        "lr/discriminator", "grad_norm/generator", "grad_norm/discriminator", "perf/samples_per_second",
    }
    assert expected <= scalars
    assert events.Tags()["images"] and events.Tags()["audio"]
    reconstruction = [event.value for event in events.Scalars("train/reconstruction")]
    assert reconstruction[-1] < 0.7 * reconstruction[0]
    valid = [event.value for event in events.Scalars("valid/l1")]
    assert len(valid) == 2 and valid[1] < valid[0]

    assert checkpoint_steps(tmp_path) == [20, 40]
    meta = read_checkpoint_meta(tmp_path / "checkpoints" / "step_00000040")
    assert meta["step"] == 40 and meta["config"] == config_to_dict(config)
    assert meta["models"] == ["discriminator", "generator"] and meta["ema_models"] == ["generator"]


def test_resume_after_a_crash_matches_the_uninterrupted_run(tmp_path):
    # 64 examples / batch 8 = 8 batches per epoch = 4 steps with accumulation 2: the checkpoint at step 5 sits
    # mid-epoch and 12 steps cross two epoch boundaries. Dropout, input jitter, warmup + cosine LR, clipping,
    # the late discriminator start and the EMA start are all inside the resumed part.
    def config(**model):
        return toy_config(
            max_steps=12,
            save_every=5,
            gradient_accumulation_steps=2,
            max_grad_norm=0.5,
            deterministic=True,
            optimizers={
                "generator": OptimizerConfig(learning_rate=1e-2, lr_schedule="cosine", warmup_steps=3),
                "discriminator": OptimizerConfig(learning_rate=5e-3, lr_schedule="linear", warmup_steps=2),
            },
            model={"disc_start": 6, **model},
        )

    uninterrupted = make_toy(tmp_path / "uninterrupted", config())
    uninterrupted.train()
    rng_after_uninterrupted = torch.get_rng_state()

    crashed = make_toy(tmp_path / "resumed", config(crash_at_step=7))
    with pytest.raises(RuntimeError, match="simulated crash at step 7"):
        crashed.train()
    assert checkpoint_steps(tmp_path / "resumed") == [5]

    checkpoint = tmp_path / "resumed" / "checkpoints" / "step_00000005"
    assert torch.load(checkpoint / "training_state.pt", weights_only=True)["data_position"] == [1, 2]

    resumed = make_toy(tmp_path / "resumed", config())
    resumed.train(resume=True)

    assert_same_training_state(uninterrupted, resumed)
    assert torch.equal(torch.get_rng_state(), rng_after_uninterrupted)
    at_checkpoint = load_file(str(checkpoint / "generator.safetensors"))
    final = resumed.unwrap("generator").state_dict()
    assert any(not torch.equal(at_checkpoint[key], final[key]) for key in final), "no training after resume"


@pytest.mark.parametrize("damage", ["truncate_weights", "remove_marker", "flip_a_byte"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage):
    make_toy(tmp_path, toy_config(max_steps=4, save_every=2)).train()
    latest = tmp_path / "checkpoints" / "step_00000004"
    weights = latest / "generator.safetensors"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "remove_marker":
        (latest / "complete").unlink()
    else:
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))

    trainer = make_toy(tmp_path, toy_config(max_steps=4, save_every=2))
    with caplog.at_level(logging.INFO):
        trainer.train(resume=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "damaged" in r.getMessage()]
    assert len(warnings) == 1 and "step_00000004" in warnings[0]
    assert any("resumed from" in r.getMessage() and "step_00000002" in r.getMessage() for r in caplog.records)
    assert trainer.step == 4
    assert latest_valid_checkpoint(tmp_path / "checkpoints") == latest, "the retrained step 4 replaces the damage"


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make_toy(tmp_path, toy_config(max_steps=10, save_every=2, model={"nan_at_step": 5}))
    with pytest.raises(NonFiniteLossError, match=r"generator_loss=nan at step 5.*latest checkpoint: step_00000004"):
        trainer.train()
    assert checkpoint_steps(tmp_path) == [2, 4]
    assert latest_valid_checkpoint(tmp_path / "checkpoints") == tmp_path / "checkpoints" / "step_00000004"


def test_keep_last_n_prunes_old_checkpoints(tmp_path):
    make_toy(tmp_path, toy_config(max_steps=5, save_every=1, keep_last_n=2, ema=EMAConfig())).train()
    assert checkpoint_steps(tmp_path) == [4, 5]
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == ["step_00000004", "step_00000005"]
    meta = read_checkpoint_meta(tmp_path / "checkpoints" / "step_00000005")
    assert meta["ema_models"] == [] and not list((tmp_path / "checkpoints" / "step_00000005").glob("*.ema.*"))


class NoValidationSetStage(ToyStage):
    def build_datasets(self):
        return ToyStage.build_datasets(self)[0], None


def test_stage_without_validation_set_trains(tmp_path):
    trainer = make_toy(tmp_path, toy_config(max_steps=4, valid_every=2), stage=NoValidationSetStage)
    trainer.train()
    assert trainer.step == 4


def test_existing_checkpoints_need_resume_and_resume_with_nothing_starts_fresh(tmp_path, caplog):
    make_toy(tmp_path, toy_config(max_steps=2, save_every=2)).train()
    with pytest.raises(FileExistsError, match="already holds checkpoints.*--resume"):
        make_toy(tmp_path, toy_config(max_steps=2)).train()
    fresh = make_toy(tmp_path / "new", toy_config(max_steps=2))
    with caplog.at_level(logging.WARNING):
        fresh.train(resume=True)
    assert "nothing to resume" in caplog.text and fresh.step == 2


class MisspelledHookStage(ToyStage):
    def train_stepp(self, batch, step):
        return {}


class LoopOverridingStage(ToyStage):
    def train(self, *, resume=False):
        return None


class WrongSignatureStage(ToyStage):
    def train_step(self, batch):
        return {}


class PrivateHelperStage(ToyStage):
    def _generator_loss(self):
        return 0.0


@pytest.mark.parametrize(
    ("stage", "error", "message"),
    [
        (MisspelledHookStage, TypeError, "'train_stepp', which is not a trainer hook. Did you mean .*'train_step'"),
        (LoopOverridingStage, TypeError, "'train'.*overrides part of the loop"),
        (WrongSignatureStage, TypeError, r"WrongSignatureStage.train_step takes \(self, batch\)"),
    ],
)
def test_hook_mistakes_fail_at_construction(tmp_path, stage, error, message):
    with pytest.raises(error, match=message):
        make_toy(tmp_path, toy_config(), stage=stage)


def test_missing_required_hook_raises_not_implemented_naming_the_stage(tmp_path):
    class NoValidation(ToyStage.__base__):
        build_models = ToyStage.build_models
        build_datasets = ToyStage.build_datasets
        train_step = ToyStage.train_step

    with pytest.raises(NotImplementedError, match="NoValidation must implement the trainer hooks: validate"):
        make_toy(tmp_path, toy_config(), stage=NoValidation)
    make_toy(tmp_path, toy_config(), stage=PrivateHelperStage)


def test_backward_outside_train_step_is_an_error(tmp_path):
    trainer = make_toy(tmp_path, toy_config())
    with pytest.raises(RuntimeError, match="only be called inside train_step"):
        trainer.backward(torch.ones((), requires_grad=True))


def test_unconfigured_or_unknown_optimizer_is_an_error(tmp_path):
    only_generator = {"generator": OptimizerConfig()}
    with pytest.raises(ValueError, match="no entry for optimizer 'discriminator'"):
        make_toy(tmp_path, toy_config(optimizers=only_generator))
    extra = {**toy_config().trainer.optimizers, "critic": OptimizerConfig()}
    with pytest.raises(ValueError, match=r"names \['critic'\], which are not optimizers"):
        make_toy(tmp_path, toy_config(optimizers=extra))


def test_gradient_accumulation_matches_one_large_batch(tmp_path):
    # The sampler cuts the same permutation into batches, so batch 8 == two accumulated batches of 4. Both
    # optimizers step; the adversarial weight is 0 because with accumulation the generator's adversarial loss on
    # the first half-batch sees the discriminator before that step's update (inherent, not a trainer error).
    def run(name, **fields):
        model = {"dropout": 0.0, "disc_start": 2, "adversarial_weight": 0.0}
        config = toy_config(max_steps=6, max_grad_norm=1.0, model=model, **fields)
        trainer = make_toy(tmp_path / name, config, stage=SGDToyStage)
        trainer.train()
        return trainer

    large = run("large", batch_size=8)
    accumulated = run("accumulated", batch_size=4, gradient_accumulation_steps=2)
    assert isinstance(large.optimizers["generator"], torch.optim.SGD)
    for name in large.models:
        for key, value in large.unwrap(name).state_dict().items():
            torch.testing.assert_close(accumulated.unwrap(name).state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_grad_scaler_path_gives_the_unscaled_result_and_updates_once_per_step(tmp_path):
    # fp16 needs a GPU; a CPU GradScaler on the fp32 toy exercises the same scale / unscale / step / update path.
    # Power-of-two scales are exact, so the result must equal the unscaled run bit for bit.
    plain = make_toy(tmp_path / "plain", toy_config(max_steps=6, max_grad_norm=0.5, gradient_accumulation_steps=2))
    plain.train()
    scaled = make_toy(tmp_path / "scaled", toy_config(max_steps=6, max_grad_norm=0.5, gradient_accumulation_steps=2))
    scaled._grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1)
    scaled.train()
    assert_same_training_state(plain, scaled)
    assert scaled._grad_scaler.get_scale() == 2.0 ** (8 + 6)
    state = torch.load(tmp_path / "scaled/checkpoints/step_00000006/training_state.pt", weights_only=True)
    assert state["grad_scaler"]["scale"] == 2.0 ** (8 + 6)


def test_bf16_mixed_precision_trains_with_fp32_weights(tmp_path):
    trainer = make_toy(tmp_path, toy_config(max_steps=4, mixed_precision="bf16"))
    trainer.train()
    assert trainer.unwrap("generator")[0].weight.dtype == torch.float32
    assert torch.isfinite(trainer.unwrap("generator")[0].weight).all()
    assert checkpoint_steps(tmp_path) == [4]


@pytest.mark.parametrize("resolved", ["bf16", "no"])
def test_auto_mixed_precision_hands_accelerate_the_resolved_precision(tmp_path, monkeypatch, resolved):
    monkeypatch.setattr("models.base.trainer.auto_training_precision", lambda: resolved)
    trainer = make_toy(tmp_path, toy_config(max_steps=1, mixed_precision="auto"))
    assert trainer.accelerator.mixed_precision == resolved


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_process_ddp_agrees_across_processes_resumes_exactly_and_matches_one_process(tmp_path):
    """~25 s on 2 cores, nearly all of it process start-up."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()), str(REPO_ROOT / "tests/models/base/ddp_toy_run.py"), str(tmp_path),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    reports = [json.loads((tmp_path / f"state_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert reports[0]["uninterrupted"]["num_processes"] == 2
    assert reports[0] == reports[1], "processes disagree"
    assert reports[0]["uninterrupted"] == reports[0]["resumed"], "crash + resume differs from the uninterrupted run"
    checkpoint = tmp_path / "resumed" / "checkpoints" / "step_00000003"
    assert (checkpoint / "rng_state_rank0.pt").is_file() and (checkpoint / "rng_state_rank1.pt").is_file()

    # Without dropout, 2 processes x batch 4 see the same examples per step as 1 process x batch 8.
    single = make_toy(tmp_path / "single", ddp_config(batch_size=8, dropout=0.0), stage=SGDToyStage)
    single.train()
    ddp_checkpoint = tmp_path / "sgd_no_dropout" / "checkpoints" / f"step_{DDP_MAX_STEPS:08d}"
    probe = make_toy(tmp_path / "probe", ddp_config(dropout=0.0), stage=SGDToyStage)
    for name in single.models:
        load_module_tensors(probe.unwrap(name), load_file(str(ddp_checkpoint / f"{name}.safetensors")))
        for key, value in single.unwrap(name).state_dict().items():
            torch.testing.assert_close(probe.unwrap(name).state_dict()[key], value, rtol=1e-5, atol=1e-6)
    print(f"DDP test took {time.perf_counter() - started:.1f} s")
