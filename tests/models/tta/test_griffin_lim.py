"""models.tta.griffin_lim: the fallback vocoder gives audio whose mel is close to the input mel."""

import numpy as np
import torch

from models.tta.griffin_lim import GriffinLimVocoder
from utils.audio import LogMelSpectrogram


def test_griffin_lim_inverts_a_tone_mel():
    front_end = LogMelSpectrogram()
    t = np.arange(16000) / 16000
    tone = torch.from_numpy((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))[None]
    log_mel = front_end(tone)
    wave = GriffinLimVocoder(n_iter=16)(log_mel.transpose(1, 2))
    assert wave.shape == (1, 16000)
    rebuilt_error = (front_end(wave) - log_mel).abs().mean()
    silence_error = (front_end(torch.zeros_like(wave)) - log_mel).abs().mean()
    assert rebuilt_error < 0.5 * silence_error
    spectrum = np.abs(np.fft.rfft(wave[0].numpy()))
    assert abs(np.argmax(spectrum) - 440) < 20
