"""Griffin-Lim (librosa): the fallback vocoder, so every stage has audio before a HiFi-GAN is trained."""

import librosa
import numpy as np
import torch
from torch import nn

from utils.audio import inverse_mel_basis


class GriffinLimVocoder(nn.Module):
    """Log-mel (B, frames, n_mels) -> waveform (B, frames * hop_length), by the pseudo-inverse of the Slaney mel basis
    and running Griffin-Lim phase reconstruction (Griffin & Lim 1984) on the magnitude STFT.

    Same interface as the HiFi-GAN generator; it has no weights and runs on the CPU in float64 via librosa.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 1024,
        hop_length: int = 160,
        fmin: float = 0.0,
        fmax: float = 8000.0,
        n_mels: int = 64,
        n_iter: int = 32,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.fmin = fmin
        self.fmax = fmax
        self.n_mels = n_mels
        self.n_iter = n_iter
        # The pseudo-inverse of the mel basis maps mel magnitudes back to linear ones in one matmul (librosa's
        # NNLS inversion is ~100x slower for little gain once Griffin-Lim refines the phase).
        self.inverse_mel_basis = inverse_mel_basis(
            sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
        )

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.ndim != 3 or log_mel.shape[-1] != self.n_mels:
            raise ValueError(f"expected a log-mel (B, frames, {self.n_mels}), got shape {tuple(log_mel.shape)}")
        waves = []
        for clip in log_mel.detach().float().cpu().numpy():
            magnitude_mel = np.exp(clip.T)
            magnitude = np.maximum(self.inverse_mel_basis @ magnitude_mel, 0.0)
            # librosa frames with centre padding: S samples need S // hop + 1 frames, one more than ours.
            magnitude = np.concatenate([magnitude, magnitude[:, -1:]], axis=1)
            wave = librosa.griffinlim(
                magnitude,
                n_iter=self.n_iter,
                hop_length=self.hop_length,
                win_length=self.win_length,
                n_fft=self.n_fft,
                length=clip.shape[0] * self.hop_length,
                random_state=0,
            )
            waves.append(np.clip(wave, -1.0, 1.0))
        return torch.from_numpy(np.stack(waves)).float().to(log_mel.device)
