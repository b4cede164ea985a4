"""Stage 1 on the shared trainer: the debug recipe (shrunk) through the train_tta CLI, discriminator gating, and
exact resume after an interruption."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bins.tta.train_tta import main as train_main
from models.tta.autoencoderkl.trainer import AutoencoderKLTrainer
from tests.models.base.toy_stage import reset_accelerate_state
from tests.models.tta.autoencoderkl.tiny_recipe import (
    DEBUG_CONFIG,
    as_overrides,
    build_tiny_dataset,
    make_trainer,
    one_thread,
    tiny_config,
    tiny_values,
)
from utils.checkpoint import list_checkpoints, read_checkpoint_meta


@pytest.fixture(scope="module")
def processed_dir(tmp_path_factory):
    return build_tiny_dataset(tmp_path_factory.mktemp("data") / "processed")


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    torch.use_deterministic_algorithms(False)


def test_debug_recipe_trains_checkpoints_and_logs_through_the_cli(processed_dir, tmp_path):
    values = tiny_values(processed_dir, tmp_path, **{"trainer.sample_every": 4})
    assert train_main(["--config", str(DEBUG_CONFIG), *as_overrides(values)]) == 0

    exp_dir = tmp_path / "autoencoderkl_debug"
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [2, 4]
    meta = read_checkpoint_meta(exp_dir / "checkpoints" / "step_00000004")
    assert meta["models"] == ["discriminator", "vae"]
    assert meta["config"] == json.loads((exp_dir / "config.json").read_text())
    assert meta["config"]["model"]["block_out_channels"] == [8, 8, 16]

    events = EventAccumulator(str(exp_dir / "logs"), size_guidance={"images": 0, "audio": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/rec", "train/kl", "train/gan_g", "train/total", "train/disc", "train/adaptive_weight",
        "train/logits_real", "train/logits_fake", "train/skipped_clips", "valid/rec", "valid/kl", "valid/mel_l1",
        "lr/vae", "lr/discriminator", "grad_norm/vae", "grad_norm/discriminator", "perf/samples_per_second",
    }
    assert expected <= scalars, expected - scalars
    assert [event.step for event in events.Scalars("train/disc")] == [3, 4], "discriminator only from step 2"
    assert [event.value for event in events.Scalars("train/skipped_clips")] == [0.0] * 4
    images, audio = events.Tags()["images"], events.Tags()["audio"]
    assert len(images) == 1 and images[0].endswith("/mel_input_bottom_reconstruction_top")
    assert sorted(tag.rsplit("/", 1)[1] for tag in audio) == ["input", "reconstruction"]
    image = events.Images(images[0])[0]
    assert (image.height, image.width) == (2 * 64, 32)


def test_discriminator_is_neither_run_nor_stepped_before_its_start(processed_dir, tmp_path):
    config = tiny_config(processed_dir, tmp_path, **{"trainer.max_steps": 4, "loss.disc_start_step": 3})
    trainer = make_trainer(config, tmp_path / "exp")
    initial = {key: value.clone() for key, value in trainer.unwrap("discriminator").state_dict().items()}
    trainer.train()

    checkpoint = tmp_path / "exp" / "checkpoints" / "step_00000002"
    saved = load_file(str(checkpoint / "discriminator.safetensors"))
    for key, value in saved.items():
        assert torch.equal(value, initial[key]), f"discriminator {key} changed before disc_start_step"
    assert int(saved["main.3.num_batches_tracked"]) == 0, "batch norm saw a batch: the discriminator ran"
    state = torch.load(checkpoint / "training_state.pt", weights_only=True)
    assert state["optimizers"]["discriminator"]["state"] == {}
    assert state["optimizers"]["vae"]["state"], "the VAE was updated"

    stepped = trainer.unwrap("discriminator").state_dict()
    assert any(not torch.equal(stepped[key], initial[key]) for key in initial), "stepped from its start"
    final = torch.load(tmp_path / "exp/checkpoints/step_00000004/training_state.pt", weights_only=True)
    assert final["optimizers"]["discriminator"]["state"][0]["step"] == 1


class InterruptedTrainer(AutoencoderKLTrainer):
    """Dies in the middle of step 3, after the VAE update and before the discriminator's."""

    def train_step(self, batch, step):
        if step == 3:
            self.backward(self.models["vae"](batch["mel"])[0].abs().mean(), name="partial")
            self.optimizer_step("vae")
            raise KeyboardInterrupt
        return super().train_step(batch, step)


def test_resume_after_an_interruption_matches_the_uninterrupted_run(processed_dir, tmp_path):
    # 22 clips / batch 4 = 5 batches an epoch: 7 steps cross an epoch boundary; the checkpoint at step 2 is
    # mid-epoch, before the discriminator starts (step 3) and before LR warmup (5 steps) ends.
    extra = {
        "trainer.max_steps": 7,
        "trainer.deterministic": True,
        "trainer.max_grad_norm": 1.0,
        "trainer.valid_every": 0,
        "loss.disc_start_step": 3,
        "trainer.optimizers.vae.warmup_steps": 5,
    }
    config = tiny_config(processed_dir, tmp_path, **extra)
    uninterrupted = make_trainer(config, tmp_path / "uninterrupted")
    uninterrupted.train()

    reset_accelerate_state()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(config, tmp_path / "resumed", stage=InterruptedTrainer).train()
    assert [step for step, _ in list_checkpoints(tmp_path / "resumed" / "checkpoints")] == [2]

    reset_accelerate_state()
    resumed = make_trainer(config, tmp_path / "resumed")
    resumed.train(resume=True)

    assert resumed.step == uninterrupted.step == 7
    for name in ("vae", "discriminator"):
        expected, actual = uninterrupted.unwrap(name).state_dict(), resumed.unwrap(name).state_dict()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{name}.{key}"
        expected_state = uninterrupted.optimizers[name].state_dict()["state"]
        actual_state = resumed.optimizers[name].state_dict()["state"]
        for index, entry in expected_state.items():
            for key, value in entry.items():
                assert torch.equal(value, actual_state[index][key]), f"{name} optimizer {index}.{key}"



def test_bf16_autocast_trains_the_gan_with_fp32_weights(processed_dir, tmp_path):
    extra = {"trainer.mixed_precision": "bf16", "trainer.max_steps": 2, "loss.disc_start_step": 0}
    trainer = make_trainer(tiny_config(processed_dir, tmp_path, **extra), tmp_path / "exp")
    trainer.train()  # a NaN or inf loss would stop it with NonFiniteLossError
    assert trainer.step == 2
    assert all(parameter.dtype == torch.float32 for parameter in trainer.unwrap("vae").parameters())
    events = EventAccumulator(str(tmp_path / "exp" / "logs"))
    events.Reload()
    assert all(event.value > 0 for event in events.Scalars("train/adaptive_weight"))


def test_missing_mel_files_are_skipped_with_a_warning_and_counted(processed_dir, tmp_path):
    copy = tmp_path / "processed"
    shutil.copytree(processed_dir, copy)
    config = tiny_config(copy, tmp_path, **{"trainer.max_steps": 5, "trainer.valid_every": 0})
    removed = [record["Uid"] for record in json.loads((copy / "builtin_sfx" / "train.json").read_text())[:3]]
    for uid in removed:
        (copy / "builtin_sfx" / "mel" / f"{uid}.npy").unlink()
    trainer = make_trainer(config, tmp_path / "exp")
    with pytest.warns(UserWarning, match="skipping .*npy"):
        trainer.train()  # one epoch: 20 of the 22 clips, so at least one of the 3 missing ones
    events = EventAccumulator(str(tmp_path / "exp" / "logs"))
    events.Reload()
    skipped = sum(event.value for event in events.Scalars("train/skipped_clips"))
    assert 1 <= skipped <= 3 and trainer.step == 5
