"""The one audio front end: loading, saving and the AudioLDM-compatible log-mel spectrogram.

Every stage (preprocessing, VAE, vocoder, diffusion, evaluation) computes mels through `LogMelSpectrogram`, so
the public AudioLDM / AudioLDM 2 VAEs and vocoders accept our mels unchanged. The settings are AudioLDM's
(Liu et al., 2023): 16 kHz, n_fft 1024, Hann window 1024, hop 160, magnitude STFT, 64 Slaney mel bins over
0-8000 Hz, log(clamp(mel, 1e-5)). The STFT is framed the way AudioLDM frames it: reflect-pad (n_fft - hop) / 2
on each side, no centre padding, so S samples give exactly S // hop frames (10.24 s -> 1024 frames).
"""

from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile
import torch
from torch import nn


@dataclass
class MelConfig:
    """Mel front-end settings; one copy lives in every experiment config under `preprocess.mel`."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    log_clamp_min: float = 1e-5


class AudioLoadError(ValueError):
    """An audio file could not be used; `reason` is a short human-readable cause for reports."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_audio(path: Path | str, sample_rate: int) -> np.ndarray:
    """Read wav/flac/ogg/mp3, mix to mono and resample.

    Returns float32 samples (S,) at `sample_rate`. Raises AudioLoadError when the file is missing, unreadable,
    empty, or holds NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(path, "missing file")
    try:
        samples, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as soundfile_error:  # libsndfile refuses some containers; librosa falls back to audioread
        try:
            mono, source_rate = librosa.load(str(path), sr=None, mono=True)
        except Exception:
            raise AudioLoadError(path, f"unreadable audio ({soundfile_error})") from soundfile_error
        samples = mono[:, None]
    if samples.shape[0] == 0:
        raise AudioLoadError(path, "empty audio")
    if not np.isfinite(samples).all():
        raise AudioLoadError(path, "contains NaN or inf samples")
    mono = samples.mean(axis=1)
    if source_rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)


def save_wav(path: Path | str, waveform: np.ndarray, sample_rate: int) -> None:
    """Write mono float samples (S,) as 16-bit PCM wav, atomically (temp name, then rename)."""
    path = Path(path)
    temp_path = path.with_name(f".{path.name}.partial")
    clipped = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)
    soundfile.write(str(temp_path), clipped, sample_rate, subtype="PCM_16", format="WAV")
    temp_path.replace(path)


def mel_frames(num_samples: int, hop_length: int) -> int:
    """Number of mel frames the front end gives for `num_samples` samples."""
    return num_samples // hop_length


def slaney_mel_basis(*, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The front end's mel filters (n_mels, n_fft // 2 + 1): librosa's Slaney-scale, Slaney-normalised basis."""
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False,
                               norm="slaney")


def inverse_mel_basis(*, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Pseudo-inverse (n_fft // 2 + 1, n_mels) of `slaney_mel_basis`, float64: maps mel magnitudes back to linear
    STFT magnitudes in one matmul (Griffin-Lim's start, Vocos' magnitude prior)."""
    return np.linalg.pinv(slaney_mel_basis(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax))


class LogMelSpectrogram(nn.Module):
    """Waveform (B, S) -> log-mel (B, n_mels, S // hop_length), AudioLDM-compatible (see module docstring)."""

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 1024,
        hop_length: int = 160,
        n_mels: int = 64,
        fmin: float = 0.0,
        fmax: float = 8000.0,
        log_clamp_min: float = 1e-5,
    ):
        super().__init__()
        if (n_fft - hop_length) % 2:
            raise ValueError(f"n_fft - hop_length must be even, got n_fft={n_fft}, hop_length={hop_length}")
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.log_clamp_min = log_clamp_min
        mel_basis = slaney_mel_basis(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    def magnitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform (B, S) -> linear STFT magnitude (B, n_fft // 2 + 1, S // hop_length)."""
        side = (self.n_fft - self.hop_length) // 2
        padded = nn.functional.pad(waveform.unsqueeze(1), (side, side), mode="reflect").squeeze(1)
        spectrum = torch.stft(
            padded,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        return spectrum.abs()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform (B, S) float in [-1, 1] -> log-mel (B, n_mels, S // hop_length), computed in fp32."""
        magnitude = self.magnitude(waveform.float())
        mel = torch.matmul(self.mel_basis, magnitude)
        return torch.log(torch.clamp(mel, min=self.log_clamp_min))


def build_log_mel(config: MelConfig) -> LogMelSpectrogram:
    """The front end for a config section."""
    return LogMelSpectrogram(
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        log_clamp_min=config.log_clamp_min,
    )


def compute_log_mel(waveform: np.ndarray, front_end: LogMelSpectrogram) -> np.ndarray:
    """One clip (S,) -> float32 log-mel (n_mels, S // hop) as stored on disk."""
    with torch.no_grad():
        mel = front_end(torch.from_numpy(np.asarray(waveform, dtype=np.float32))[None])
    return mel[0].numpy()
