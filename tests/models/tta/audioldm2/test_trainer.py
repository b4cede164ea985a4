"""AudioLDM2Trainer from the real recipe config, shrunk onto the tiny converted AudioLDM 2 model and tiny data:
fine-tunes the UNet only, saves, resumes; dropped captions are the pipeline's unconditional branch in both
streams; the fine-tuned checkpoint generates; mismatches are clear errors."""

import pytest
import torch
from safetensors.torch import load_file

from models.tta.audioldm2.loading import load_audioldm2_pipeline
from models.tta.audioldm2.text_conditioning import AudioLDM2TextConditioner, load_audioldm2_conditioner
from models.tta.audioldm2.trainer import AudioLDM2Trainer
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401  (fixture)
from tests.models.tta.audioldm2.tiny_finetune import (
    PROMPT,
    RECIPE_CONFIG,
    convert_tiny_folder,
    make_tiny_mel16_data,
    shrink_overrides,
)
from utils.checkpoint import CheckpointError, list_checkpoints, read_checkpoint_meta
from utils.config import config_to_dict, load_config
from utils.logging import ExperimentWriter

CAPTIONS = ["a dog barks", "rain falling on a roof in the forest"]


@pytest.fixture(scope="module")
def fixtures(tiny_audioldm2_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("audioldm2_finetune")
    return root, make_tiny_mel16_data(root), convert_tiny_folder(tiny_audioldm2_folder, root)


def build_trainer(fixtures, exp_dir, *extra) -> AudioLDM2Trainer:
    root, processed, converted = fixtures
    overrides = shrink_overrides(processed, converted, root / "exp") + list(extra)
    config = load_config(RECIPE_CONFIG, AudioLDM2Trainer.config_schema, overrides)
    return AudioLDM2Trainer(config, exp_dir, config_to_dict(config))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: tensor.detach().clone() for key, tensor in module.state_dict().items()}


def test_finetunes_the_unet_only_saves_and_resumes(fixtures, tiny_audioldm2_folder, tmp_path, monkeypatch):
    _, _, converted = fixtures
    logged = []
    original_audio = ExperimentWriter.audio

    def record_audio(writer, tag, waveform, sample_rate, step):
        logged.append((tag, tuple(torch.as_tensor(waveform).shape), sample_rate, step))
        original_audio(writer, tag, waveform, sample_rate, step)

    monkeypatch.setattr(ExperimentWriter, "audio", record_audio)
    trainer = build_trainer(fixtures, tmp_path / "run")
    frozen_before = {
        "conditioner": _state(trainer._conditioning),
        "vae": _state(trainer._autoencoder),
    }
    trainer.train()

    run = tmp_path / "run" / "checkpoints"
    assert [step for step, _ in list_checkpoints(run)] == [1, 2]
    meta = read_checkpoint_meta(run / "step_00000002")
    assert meta["models"] == ["unet"] and meta["ema_models"] == ["unet"]
    assert meta["config"]["model_type"] == "AudioLDM2"
    assert meta["config"]["pretrained"]["text_model_dir"] == str(tiny_audioldm2_folder.resolve())
    assert logged == [(f"samples/00_{PROMPT}/audio", (int(0.32 * 16000),), 16000, 2)]

    initial = load_file(str(converted / "unet.safetensors"))
    tuned = load_file(str(run / "step_00000002" / "unet.safetensors"))
    assert tuned.keys() == initial.keys()
    changed = [key for key in initial if not torch.equal(initial[key], tuned[key])]
    assert len(changed) > len(initial) // 2

    # The text side and the VAE neither trained nor received gradients; the text side equals a fresh load.
    for name, module in (("conditioner", trainer._conditioning), ("vae", trainer._autoencoder)):
        assert all(not parameter.requires_grad for parameter in module.parameters()), name
        after = module.state_dict()
        assert all(torch.equal(tensor, after[key]) for key, tensor in frozen_before[name].items()), name
    fresh = load_audioldm2_conditioner(tiny_audioldm2_folder).state_dict()
    assert all(torch.equal(tensor, fresh[key]) for key, tensor in trainer._conditioning.state_dict().items())

    first, again = trainer._run_validation(), trainer._run_validation()
    assert set(first) == {"loss_t100", "loss_t500", "loss_t900", "loss_fixed_t"}
    assert first == again and first["loss_t100"] != first["loss_t900"]

    resumed = build_trainer(fixtures, tmp_path / "run", "trainer.max_steps=3")
    resumed.train(resume=True)
    assert resumed.step == 3
    assert [step for step, _ in list_checkpoints(run)][-1] == 3


def test_dropped_captions_are_the_pipeline_unconditional_branch(tiny_audioldm2_folder):
    conditioner: AudioLDM2TextConditioner = load_audioldm2_conditioner(tiny_audioldm2_folder)
    assert conditioner.context_dims == [16, 32]
    training = conditioner.contexts(CAPTIONS, unconditional=[True, False])
    generation = conditioner.encode(CAPTIONS, do_cfg=True)  # rows: [negative 0, negative 1, positive 0, positive 1]
    assert training.masks[0] is None
    streams = [
        (training.states[0], generation.language_of_audio),
        (training.states[1], generation.t5_states),
        (training.masks[1], generation.t5_mask),
    ]
    for ours, reference in streams:
        torch.testing.assert_close(ours[0], reference[0], rtol=0, atol=1e-6)  # dropped: the empty negative
        torch.testing.assert_close(ours[1], reference[3], rtol=0, atol=1e-6)  # kept: the positive
    # The empty prompt is padded to the longest caption, so its T5 padding (and GPT-2 positions) are not its own,
    # even when every row of the batch is dropped.
    assert int(training.masks[1][0].sum()) == 1 and training.masks[1].shape[1] > 1
    all_dropped = conditioner.contexts(CAPTIONS, unconditional=[True, True])
    torch.testing.assert_close(all_dropped.states[0], generation.language_of_audio[:2], rtol=0, atol=1e-6)
    torch.testing.assert_close(all_dropped.states[1], generation.t5_states[:2], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="2 unconditional flags for 1 captions"):
        conditioner.contexts(CAPTIONS[:1], unconditional=[True, False])


def test_caption_dropout_drops_training_rows_only(fixtures, tmp_path, monkeypatch):
    seen = []
    original = AudioLDM2TextConditioner.contexts

    def recording(self, captions, *, unconditional=None):
        seen.append(None if unconditional is None else list(unconditional))
        return original(self, captions, unconditional=unconditional)

    monkeypatch.setattr(AudioLDM2TextConditioner, "contexts", recording)
    trainer = build_trainer(
        fixtures, tmp_path / "run", "diffusion.caption_dropout=0.999", "trainer.max_steps=1",
        "trainer.sample_every=0", "trainer.valid_every=1",
    )
    trainer.train()
    assert seen[0] == [True, True]
    assert seen[1] is None


def test_finetuned_checkpoint_generates_with_its_ema_unet_and_prediction_type(fixtures, tmp_path):
    _, _, converted = fixtures
    trainer = build_trainer(
        fixtures, tmp_path / "run", "trainer.sample_every=0", "trainer.valid_every=0",
        "diffusion.schedule.prediction_type=v_prediction",
    )
    trainer.train()
    tuned = load_audioldm2_pipeline(tmp_path / "run")
    assert tuned.make_scheduler().config.prediction_type == "v_prediction"
    assert tuned.make_scheduler("dpmsolver++").config.prediction_type == "v_prediction"
    ema = load_file(str(tmp_path / "run" / "checkpoints" / "step_00000002" / "unet.ema.safetensors"))
    assert all(torch.equal(tensor, ema[key]) for key, tensor in tuned.unet.state_dict().items())
    original = load_audioldm2_pipeline(converted)
    assert original.make_scheduler().config.prediction_type == "epsilon"
    settings = dict(num_inference_steps=2, audio_length_in_s=0.32)
    tuned_audio = tuned.generate(PROMPT, generator=torch.Generator().manual_seed(0), **settings).waveforms
    original_audio = original.generate(PROMPT, generator=torch.Generator().manual_seed(0), **settings).waveforms
    assert tuned_audio.shape == original_audio.shape == (1, 1, int(0.32 * 16000))
    assert torch.isfinite(tuned_audio).all() and not torch.equal(tuned_audio, original_audio)


def test_mismatches_are_clear_errors(fixtures, tmp_path):
    with pytest.raises(CheckpointError, match="preprocess.mel.n_mels is 64, the checkpoint needs 16"):
        build_trainer(fixtures, tmp_path / "run", "preprocess.mel.n_mels=64")
    with pytest.raises(CheckpointError, match=r"beta_end: config 0.02, checkpoint 0.0195"):
        build_trainer(fixtures, tmp_path / "run", "diffusion.schedule.beta_end=0.02")
    with pytest.raises(CheckpointError, match="convert_audioldm2.py --model_dir"):
        build_trainer(fixtures, tmp_path / "run", f"pretrained.checkpoint={(tmp_path / 'missing').as_posix()}")
    with pytest.raises(FileNotFoundError, match="pretrained.text_model_dir"):
        build_trainer(fixtures, tmp_path / "run", f"pretrained.text_model_dir={tmp_path.as_posix()}")
