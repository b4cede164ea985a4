"""`load_vocoder`: every spec kind gives a module mapping (B, frames, n_mels) → (B, frames × hop), and bad specs
or mismatched front ends fail with a clear error."""

import dataclasses

import pytest
import torch
from transformers import SpeechT5HifiGan

from models.tta.griffin_lim import GriffinLimVocoder
from models.tta.hifigan.config import HifiGanExperiment, build_generator
from models.tta.vocoders import GENERATOR_NAME, VocoderSpecError, load_vocoder
from tests.fixtures.tiny_audioldm2 import MEL_BINS, tiny_audioldm2_folder  # noqa: F401  (pytest fixture)
from utils.audio import MelConfig
from utils.checkpoint import COMPLETE_MARKER, checkpoint_name, save_inference_checkpoint
from utils.config import config_to_dict, validate

HOP = 160
FRAMES = 12
TOLERANCE = 1e-5


def _tiny_experiment(*, normalize_input: bool = False, **mel_overrides) -> HifiGanExperiment:
    tree = {
        "model_type": "HiFiGAN",
        "exp_name": "tiny",
        "preprocess": {"processed_dir": "data/processed", "dataset": "builtin", "mel": mel_overrides},
        "model": {
            "upsample_initial_channel": 16,
            "upsample_rates": [8, 5, 4],
            "upsample_kernel_sizes": [16, 10, 8],
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3]],
            "normalize_input": normalize_input,
        },
    }
    return validate(HifiGanExperiment, tree)


def _save_generator(path, experiment: HifiGanExperiment, *, seed: int):
    """An inference checkpoint of a weight-normalised generator with non-trivial weights; returns the generator
    with weight norm folded, as the reference."""
    torch.manual_seed(seed)
    generator = build_generator(
        experiment.model, mel=experiment.preprocess.mel, use_weight_norm=True
    )
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        generator.mean.normal_(-5.0, 1.0)
        generator.scale.uniform_(0.5, 3.0)
    save_inference_checkpoint(path, models={GENERATOR_NAME: generator}, config=config_to_dict(experiment), step=seed)
    generator.remove_weight_norm()
    return generator.eval()


def _mel(n_mels: int = 64) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, FRAMES, n_mels) - 4.0


def test_griffin_lim_spec_gives_the_fallback_with_the_front_end_settings():
    mel = MelConfig(fmax=7000.0)
    vocoder = load_vocoder("griffin_lim", mel=mel)
    assert isinstance(vocoder, GriffinLimVocoder)
    assert (vocoder.sample_rate, vocoder.hop_length, vocoder.fmax) == (16000, HOP, 7000.0)
    assert vocoder(_mel()).shape == (2, FRAMES * HOP)


def test_griffin_lim_spec_takes_the_front_end_mel_bins():
    vocoder = load_vocoder("griffin_lim", mel=MelConfig(n_mels=80))
    assert vocoder.n_mels == 80 and vocoder.inverse_mel_basis.shape == (513, 80)
    assert vocoder(_mel(80)).shape == (2, FRAMES * HOP)
    with pytest.raises(ValueError, match=r"\(B, frames, 80\)"):
        vocoder(_mel(64))


def test_diffusers_vocoder_folder_matches_transformers_trimmed(tiny_audioldm2_folder):  # noqa: F811
    mel_config = MelConfig(n_mels=MEL_BINS)
    reference = SpeechT5HifiGan.from_pretrained(tiny_audioldm2_folder / "vocoder").eval()
    mel = _mel(MEL_BINS)
    with torch.no_grad():
        expected = reference(mel)
    for spec in (tiny_audioldm2_folder / "vocoder", tiny_audioldm2_folder):  # the vocoder/ folder or its pipeline
        vocoder = load_vocoder(str(spec), mel=mel_config)
        with torch.no_grad():
            waveform = vocoder(mel)
        assert waveform.shape == (2, FRAMES * HOP)
        assert expected.shape[1] > FRAMES * HOP  # the AudioLDM 2 kernels overshoot; the loader trims
        assert (waveform - expected[:, : FRAMES * HOP]).abs().max() <= TOLERANCE
        assert not any(p.requires_grad for p in vocoder.parameters()) and not vocoder.training


def test_diffusers_vocoder_for_other_mels_is_rejected(tiny_audioldm2_folder):  # noqa: F811
    with pytest.raises(VocoderSpecError, match=f"takes {MEL_BINS} mel bins.*makes 64 bins"):
        load_vocoder(str(tiny_audioldm2_folder / "vocoder"), mel=MelConfig())


@pytest.mark.parametrize("normalize_input", [False, True])
def test_checkpoint_folder_rebuilds_the_generator_from_its_config(tmp_path, normalize_input):
    experiment = _tiny_experiment(normalize_input=normalize_input)
    reference = _save_generator(tmp_path / "export", experiment, seed=3)
    vocoder = load_vocoder(str(tmp_path / "export"), mel=experiment.preprocess.mel)
    mel = _mel()
    with torch.no_grad():
        expected = reference(mel)[:, : FRAMES * HOP]
        waveform = vocoder(mel)
    assert waveform.shape == (2, FRAMES * HOP)
    assert expected.abs().max() > 1e-3
    assert (waveform - expected).abs().max() <= TOLERANCE
    assert not vocoder.generator.has_weight_norm
    assert vocoder.generator.normalize_before is normalize_input


def test_experiment_folder_uses_the_newest_valid_checkpoint(tmp_path):
    experiment = _tiny_experiment()
    checkpoints = tmp_path / "exp" / "checkpoints"
    older = _save_generator(checkpoints / checkpoint_name(10), experiment, seed=10)
    newer = _save_generator(checkpoints / checkpoint_name(20), experiment, seed=20)
    mel = _mel()

    def vocoded() -> torch.Tensor:
        with torch.no_grad():
            return load_vocoder(str(tmp_path / "exp"), mel=experiment.preprocess.mel)(mel)

    with torch.no_grad():
        assert torch.allclose(vocoded(), newer(mel)[:, : FRAMES * HOP], atol=TOLERANCE)
        (checkpoints / checkpoint_name(20) / COMPLETE_MARKER).unlink()
        assert torch.allclose(vocoded(), older(mel)[:, : FRAMES * HOP], atol=TOLERANCE)
    (checkpoints / checkpoint_name(10) / COMPLETE_MARKER).unlink()
    with pytest.raises(VocoderSpecError, match="no valid checkpoint"):
        vocoded()


def test_checkpoint_trained_on_other_mels_is_rejected_naming_the_setting(tmp_path):
    experiment = _tiny_experiment(fmax=7000.0)
    _save_generator(tmp_path / "export", experiment, seed=0)
    with pytest.raises(VocoderSpecError, match=r"fmax 7000\.0 vs 8000\.0"):
        load_vocoder(str(tmp_path / "export"), mel=MelConfig())


def test_checkpoint_of_another_stage_is_rejected(tmp_path):
    experiment = _tiny_experiment()
    _save_generator(tmp_path / "export", experiment, seed=0)
    meta = (tmp_path / "export" / "meta.json").read_text()
    (tmp_path / "export" / "meta.json").write_text(meta.replace('"HiFiGAN"', '"AutoencoderKL"'))
    with pytest.raises(VocoderSpecError, match="'AutoencoderKL' checkpoint, not a HiFiGAN vocoder"):
        load_vocoder(str(tmp_path / "export"), mel=experiment.preprocess.mel)


@pytest.mark.parametrize("kind", ["missing", "empty_folder", "typo"])
def test_bad_spec_names_the_accepted_kinds(tmp_path, kind):
    spec = {"missing": str(tmp_path / "nowhere"), "empty_folder": str(tmp_path), "typo": "griffinlim"}[kind]
    with pytest.raises(VocoderSpecError, match="expected 'griffin_lim', a HiFi-GAN experiment folder"):
        load_vocoder(spec, mel=MelConfig())


def test_damaged_checkpoint_weights_are_an_error(tmp_path):
    experiment = _tiny_experiment()
    _save_generator(tmp_path / "export", experiment, seed=0)
    weights = tmp_path / "export" / f"{GENERATOR_NAME}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(Exception, match="sha256"):
        load_vocoder(str(tmp_path / "export"), mel=experiment.preprocess.mel)


def test_mel_config_defaults_match_the_saved_experiment():
    # The checkpoint comparison relies on the resolved config holding every MelConfig field.
    saved = config_to_dict(_tiny_experiment())["preprocess"]["mel"]
    assert saved == dataclasses.asdict(MelConfig())
