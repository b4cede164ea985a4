"""Vocos generator: exact output length, the inverse-STFT head inverts the STFT, input standardisation, fp32
synthesis under bf16 autocast, and choosing it from the `model` section of a HiFi-GAN stage config."""

import pytest
import torch
from torch.nn import functional as F

from models.tta.hifigan.config import HifiGanExperiment, build_generator
from models.tta.hifigan.model import HifiGanGenerator
from models.tta.hifigan.vocos import ISTFTHead, VocosGenerator
from utils.audio import LogMelSpectrogram
from utils.config import ConfigError, load_config
from tests.models.tta.hifigan.test_trainer import RECIPE

VOCOS_CONFIG = RECIPE / "exp_config_vocos_cpu.json"
TINY = dict(n_mels=8, dim=16, intermediate_dim=32, num_layers=2, n_fft=64, hop_length=16)


def _front_end_stft(signal: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """(B, S) → complex STFT (B, n_fft // 2 + 1, S // hop_length) framed like `LogMelSpectrogram.magnitude`:
    reflect padding of (n_fft - hop) / 2 per side, no centring, Hann window."""
    side = (n_fft - hop_length) // 2
    padded = F.pad(signal[:, None], (side, side), mode="reflect")[:, 0]
    return torch.stft(
        padded, n_fft, hop_length=hop_length, window=torch.hann_window(n_fft), center=False, return_complex=True
    )


@pytest.mark.parametrize("frames", [1, 2, 7, 33])
@pytest.mark.parametrize("demodulated_phase", [False, True])
def test_output_has_exactly_frames_times_hop_samples(frames, demodulated_phase):
    torch.manual_seed(0)
    generator = VocosGenerator(**TINY, demodulated_phase=demodulated_phase)
    waveform = generator(torch.randn(3, frames, 8))
    assert generator.hop_length == 16 and generator.num_samples(frames) == frames * 16
    assert waveform.shape == (3, frames * 16) and waveform.dtype == torch.float32
    assert torch.isfinite(waveform).all() and waveform.std() > 0


def test_wrong_mel_width_is_rejected():
    with pytest.raises(ValueError, match=r"\(B, frames, 8\)"):
        VocosGenerator(**TINY)(torch.randn(1, 5, 9))


@pytest.mark.parametrize("n_fft, hop_length", [(64, 16), (640, 160), (1024, 160)])
def test_head_fed_the_true_stft_reproduces_the_signal(n_fft, hop_length):
    torch.manual_seed(0)
    samples = 20 * hop_length
    signal = torch.randn(2, samples)
    spectrum = _front_end_stft(signal, n_fft, hop_length)
    assert spectrum.shape[-1] == samples // hop_length  # the mel front end's frame count
    head = ISTFTHead(dim=4, n_fft=n_fft, hop_length=hop_length)
    waveform = head.synthesize(spectrum.abs().clamp(min=1e-12).log(), spectrum.angle())
    assert waveform.shape == signal.shape
    assert (waveform - signal).abs().max() < 1e-4


def test_head_frames_the_audio_like_the_mel_front_end():
    # A click in the middle of frame 5 (sample 5 × hop + hop / 2) lands there in the output too.
    front_end = LogMelSpectrogram(n_fft=64, win_length=64, hop_length=16, n_mels=8)
    click = torch.zeros(1, 20 * 16)
    click[0, 5 * 16 + 8] = 1.0
    spectrum = _front_end_stft(click, 64, 16)
    assert front_end.magnitude(click)[0].sum(0).argmax() == 5
    waveform = ISTFTHead(dim=4, n_fft=64, hop_length=16).synthesize(spectrum.abs().log(), spectrum.angle())
    assert waveform[0].abs().argmax() == 5 * 16 + 8


def test_demodulated_head_fed_the_true_relative_phase_reproduces_the_signal():
    torch.manual_seed(0)
    n_fft, hop_length, samples = 640, 160, 30 * 160
    signal = torch.randn(2, samples)
    spectrum = _front_end_stft(signal, n_fft, hop_length)
    head = ISTFTHead(dim=4, n_fft=n_fft, hop_length=hop_length, demodulated_phase=True)
    relative_phase = spectrum.angle() - head.centre_phase(spectrum.shape[-1])
    # An identity projection: the frames fed to forward() are exactly (log-magnitude, relative phase).
    head.project = torch.nn.Identity()
    hidden = torch.cat([spectrum.abs().clamp(min=1e-12).log(), relative_phase], dim=1).transpose(1, 2)
    assert (head(hidden) - signal).abs().max() < 1e-4


def test_steady_tone_at_a_bin_centre_has_a_constant_relative_phase():
    n_fft, hop_length, sample_rate = 640, 160, 16000
    time = torch.arange(40 * hop_length) / sample_rate
    tone = torch.sin(2 * torch.pi * 40 * sample_rate / n_fft * time)  # 1000 Hz, the centre of bin 40
    spectrum = _front_end_stft(tone[None], n_fft, hop_length)[0]
    head = ISTFTHead(dim=4, n_fft=n_fft, hop_length=hop_length, demodulated_phase=True)
    relative = torch.polar(torch.ones(()), spectrum[40].angle() - head.centre_phase(spectrum.shape[-1])[40])
    # Away from the reflect-padded edges the tone's phase is the centre frequency's phase plus a constant.
    assert (relative[5:-5] - relative[5]).abs().max() < 1e-4


def test_head_clamps_the_magnitude_like_vocos():
    head = ISTFTHead(dim=4, n_fft=64, hop_length=16)
    phase = torch.zeros(1, 33, 6)
    huge = head.synthesize(torch.full((1, 33, 6), 80.0), phase)
    clamped = head.synthesize(torch.full((1, 33, 6), torch.log(torch.tensor(100.0)).item()), phase)
    assert torch.isfinite(huge).all()
    torch.testing.assert_close(huge, clamped)


def test_head_rejects_an_n_fft_too_short_to_overlap():
    with pytest.raises(ValueError, match=r"at least 2 × hop_length \(32\)"):
        ISTFTHead(dim=4, n_fft=24, hop_length=16)


def test_normalize_before_uses_mean_and_scale():
    torch.manual_seed(0)
    generator = VocosGenerator(**TINY, normalize_before=True).eval()
    mel = torch.randn(2, 6, 8)
    with torch.no_grad():
        generator.mean.fill_(0.5)
        generator.scale.fill_(2.0)
        normalised = generator(mel)
        generator.normalize_before = False
        torch.testing.assert_close(normalised, generator((mel - 0.5) / 2.0))
        assert (normalised - generator(mel)).abs().max() > 1e-4


@pytest.mark.parametrize("demodulated_phase", [False, True])
def test_bf16_autocast_synthesises_in_fp32_close_to_fp32(demodulated_phase):
    torch.manual_seed(0)
    generator = VocosGenerator(**TINY, demodulated_phase=demodulated_phase).eval()
    mel = torch.randn(2, 10, 8)
    with torch.no_grad():
        reference = generator(mel)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            waveform = generator(mel)
    assert waveform.dtype == torch.float32
    assert (waveform - reference).abs().max() < 0.05 * reference.abs().max()


def test_recipe_config_builds_a_vocos_generator():
    config = load_config(VOCOS_CONFIG, HifiGanExperiment)
    mel = config.preprocess.mel
    assert config.model.generator == "vocos" and not config.model.uses_weight_norm
    generator = build_generator(config.model, mel=mel, use_weight_norm=False)
    assert isinstance(generator, VocosGenerator)
    assert generator.hop_length == mel.hop_length and generator.head.n_fft == config.model.vocos.n_fft
    assert generator.head.demodulated_phase is config.model.vocos.demodulated_phase
    assert generator.normalize_before is config.model.normalize_input
    with pytest.raises(ValueError, match="no weight norm"):
        build_generator(config.model, mel=mel, use_weight_norm=True)


def test_generator_defaults_to_hifigan():
    config = load_config(RECIPE / "exp_config_debug.json", HifiGanExperiment)
    mel = config.preprocess.mel
    assert config.model.generator == "hifigan" and config.model.uses_weight_norm
    generator = build_generator(config.model, mel=mel, use_weight_norm=True)
    assert isinstance(generator, HifiGanGenerator) and generator.has_weight_norm


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.generator=wavenet"], r"model\.generator.*one of 'hifigan', 'vocos'"),
        (["model.vocos.n_fft=300"], r"model\.vocos\.n_fft.*at least 2 × hop_length \(320\)"),
        (["model.vocos.n_fft=641"], r"model\.vocos\.n_fft: n_fft - preprocess\.mel\.hop_length must be even"),
        (["model.vocos.num_layers=0"], r"model\.vocos.*must be >= 1"),
        (["model.vocos.dimm=4"], r"unknown key 'model\.vocos\.dimm'"),
    ],
)
def test_config_mistakes_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(VOCOS_CONFIG, HifiGanExperiment, overrides)


def test_vocos_ignores_hifigan_upsampling_but_hifigan_still_checks_it():
    load_config(VOCOS_CONFIG, HifiGanExperiment, ["model.upsample_rates=[8, 5, 2]"])
    with pytest.raises(ConfigError, match=r"multiply to 80"):
        load_config(VOCOS_CONFIG, HifiGanExperiment, ["model.upsample_rates=[8, 5, 2]", "model.generator=hifigan"])


def test_magnitude_prior_is_the_pseudo_inverse_of_the_front_end_mel_filters():
    torch.manual_seed(0)
    front_end = LogMelSpectrogram()  # the AudioLDM front end: n_fft 1024, hop 160, 64 bins
    log_mel = front_end(0.1 * torch.randn(1, 30 * 160)).transpose(1, 2)
    generator = VocosGenerator(dim=8, intermediate_dim=16, num_layers=1, n_fft=1024, magnitude_prior=True)
    prior = generator._log_magnitude_prior(log_mel)
    assert prior.shape == (1, 513, 30)
    # Mapped back through the mel filters, the prior's magnitudes give the input mel again.
    remapped = torch.matmul(front_end.mel_basis, prior.exp()).clamp(min=1e-5).log()
    assert (remapped - log_mel.transpose(1, 2)).abs().mean() < 0.05
    assert "inverse_mel_filters" not in generator.state_dict()


def test_magnitude_prior_is_what_a_zero_projection_synthesises(monkeypatch):
    torch.manual_seed(0)
    log_mel = LogMelSpectrogram()(0.1 * torch.randn(1, 30 * 160)).transpose(1, 2)
    generator = VocosGenerator(dim=8, intermediate_dim=16, num_layers=1, n_fft=1024, magnitude_prior=True).eval()
    synthesised = {}
    synthesize = generator.head.synthesize

    def spy(log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        synthesised["log_magnitude"] = log_magnitude
        return synthesize(log_magnitude, phase)

    monkeypatch.setattr(generator.head, "synthesize", spy)
    with torch.no_grad():
        generator.head.project.weight.zero_()
        generator.head.project.bias.zero_()
        generator(log_mel)
    torch.testing.assert_close(synthesised["log_magnitude"], generator._log_magnitude_prior(log_mel))
