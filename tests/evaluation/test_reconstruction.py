"""Paired reconstruction metrics: zero (or perfect) on identical inputs, monotonic in added noise."""

import math

import numpy as np
import pytest
import torch

from evaluation.metrics.reconstruction import (
    level_difference_db,
    log_spectral_distance,
    mel_l1,
    mel_l2,
    mel_psnr,
    mel_ssim,
    multi_resolution_stft_distance,
    waveform_reconstruction_metrics,
)
from utils.audio import LogMelSpectrogram

SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def waveform() -> torch.Tensor:
    torch.manual_seed(0)
    time = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    tones = 0.4 * torch.sin(2 * math.pi * 440 * time) + 0.2 * torch.sin(2 * math.pi * 1250 * time)
    return (tones + 0.01 * torch.randn(SAMPLE_RATE)).unsqueeze(0).repeat(2, 1)


@pytest.fixture(scope="module")
def log_mel() -> LogMelSpectrogram:
    return LogMelSpectrogram()


def _noisy(waveform: torch.Tensor, level: float) -> torch.Tensor:
    return waveform + level * torch.randn(waveform.shape, generator=torch.Generator().manual_seed(1))


def test_log_spectral_distance_is_zero_for_identical_and_grows_with_noise(waveform):
    assert log_spectral_distance(waveform, waveform) == 0.0
    distances = [log_spectral_distance(waveform, _noisy(waveform, level)) for level in (0.001, 0.01, 0.1)]
    assert 0 < distances[0] < distances[1] < distances[2]


def test_log_spectral_distance_matches_its_definition(waveform):
    estimate = _noisy(waveform, 0.05)
    window = np.hanning(2049)[:-1]  # periodic Hann, as torch.hann_window

    def power_db(signal: np.ndarray) -> np.ndarray:
        padded = np.pad(signal, 1024, mode="reflect")
        frames = np.stack([padded[start : start + 2048] * window for start in range(0, len(padded) - 2047, 512)])
        return 10 * np.log10(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) ** 2, 1e-10))

    difference = power_db(waveform[0].double().numpy()) - power_db(estimate[0].double().numpy())
    expected = np.mean(np.sqrt(np.mean(difference**2, axis=1)))
    assert log_spectral_distance(waveform[:1], estimate[:1]) == pytest.approx(expected, rel=1e-9)


def test_multi_resolution_stft_distance_is_zero_for_identical_and_grows_with_noise(waveform):
    assert multi_resolution_stft_distance(waveform, waveform) == 0.0
    distances = [multi_resolution_stft_distance(waveform, _noisy(waveform, level)) for level in (0.001, 0.01, 0.1)]
    assert 0 < distances[0] < distances[1] < distances[2]


def test_level_difference_is_zero_for_identical_and_measures_a_gain(waveform):
    assert level_difference_db(waveform, waveform) == 0.0
    # Half the amplitude is 20 log10(0.5) = -6.02 dB for each clip; twice the amplitude of one clip only, +3.01 mean.
    assert level_difference_db(waveform, 0.5 * waveform) == pytest.approx(20 * math.log10(0.5))
    louder_first = torch.cat([2.0 * waveform[:1], waveform[1:]])
    assert level_difference_db(waveform, louder_first) == pytest.approx(20 * math.log10(2.0) / waveform.shape[0])
    # Digital silence is floored at -100 dBFS, not minus infinity.
    silence = torch.zeros_like(waveform)
    assert math.isfinite(level_difference_db(waveform, silence)) and level_difference_db(waveform, silence) < -40


def test_mel_metrics_on_identical_and_noisy_mels(waveform, log_mel):
    mel = log_mel(waveform)
    assert mel_l1(mel, mel) == 0.0 and mel_l2(mel, mel) == 0.0
    assert mel_psnr(mel, mel) == math.inf
    assert mel_ssim(mel, mel) == pytest.approx(1.0, abs=1e-12)
    noisy = [log_mel(_noisy(waveform, level)) for level in (0.001, 0.01, 0.1)]
    psnr = [mel_psnr(mel, other) for other in noisy]
    ssim = [mel_ssim(mel, other) for other in noisy]
    l1 = [mel_l1(mel, other) for other in noisy]
    assert psnr[0] > psnr[1] > psnr[2] > 0
    assert 1.0 > ssim[0] > ssim[1] > ssim[2]
    assert 0 < l1[0] < l1[1] < l1[2]


def test_mel_psnr_matches_hand_computation():
    reference = torch.zeros(1, 16, 16)
    reference[0, 0, 0] = 4.0  # data range 4
    estimate = reference + 0.5  # MSE 0.25
    assert mel_psnr(reference, estimate) == pytest.approx(10 * math.log10(16 / 0.25))
    assert mel_l1(reference, estimate) == pytest.approx(0.5)
    assert mel_l2(reference, estimate) == pytest.approx(0.25)


def test_length_mismatch_trims_to_the_shorter(waveform, log_mel):
    longer = torch.cat([waveform, torch.ones(2, 300)], dim=1)
    assert log_spectral_distance(waveform, longer) == 0.0
    assert multi_resolution_stft_distance(longer, waveform) == 0.0
    mel = log_mel(waveform)
    assert mel_l1(mel, torch.cat([mel, mel[..., :5]], dim=-1)) == 0.0
    with pytest.raises(ValueError, match="beyond length"):
        mel_l1(mel, mel[:, :10])


def test_waveform_reconstruction_metrics_report_every_metric(waveform, log_mel):
    # One clip as 1-D numpy arrays, the way a caller holding two wav files would pass it.
    metrics = waveform_reconstruction_metrics(waveform[0].numpy(), _noisy(waveform, 0.01)[0].numpy(), log_mel=log_mel)
    assert set(metrics) == {"mel_l1", "mel_l2", "mel_psnr", "mel_ssim", "lsd", "mr_stft", "level_db"}
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics["mel_ssim"] < 1.0 and metrics["lsd"] > 0
