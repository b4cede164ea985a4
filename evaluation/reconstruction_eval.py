"""Reconstruction quality over a processed split: real clips against VAE reconstructions and/or vocoded audio.

- With a VAE: each clip's whole log-mel (any length) goes through the posterior mean and back; the mel metrics
  compare it with the input (mel L1, L2, PSNR, SSIM, and the log-spectral distance of the mels).
- With a vocoder: the mel (the VAE's reconstruction when there is a VAE, else the real mel) is vocoded and the
  audio compared with the real wav (LSD, multi-resolution STFT distance, and mel metrics of the audio's mels).

Clips are batched with others of the same length; a missing or unreadable mel or wav is skipped and listed.
Every metric is the mean over the evaluated clips. With `audio_dir`, each clip's vocoded audio is also written
to `<audio_dir>/<Uid>.wav`, so the reconstructions can be listened to and measured like generated clips.
"""

import math
import warnings
from collections import defaultdict
from itertools import groupby
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch import nn
from tqdm.auto import tqdm

from evaluation.metrics.reconstruction import mel_reconstruction_metrics, waveform_reconstruction_metrics
from models.base.data import ClipRecord
from models.tta.autoencoderkl.model import AutoencoderKL
from utils.audio import MelConfig, build_log_mel, save_wav

# Natural-log magnitude -> power in dB: 10 log10(m^2) = (20 / ln 10) log m.
_LOG_MAGNITUDE_TO_DB = 20.0 / math.log(10.0)


def mel_log_spectral_distance(reference_mel: torch.Tensor, estimated_mel: torch.Tensor) -> float:
    """LSD (dB) between natural-log magnitude mels (B, n_mels, frames): the mean over frames of
    sqrt(mean over mel bins of (dB - dB_hat)^2), with dB = 20 log10 of the mel magnitude. The waveform LSD's
    definition (`evaluation.metrics.reconstruction.log_spectral_distance`) applied to mel bands; 0 when equal."""
    difference = _LOG_MAGNITUDE_TO_DB * (reference_mel.double() - estimated_mel.double())
    return float(difference.square().mean(dim=1).sqrt().mean(dim=1).mean())


class _RunningMeans:
    """Per-clip means of metrics reported per batch as batch means."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0

    def add(self, metrics: dict[str, float], clips: int) -> None:
        for key, value in metrics.items():
            self.sums[key] += value * clips
        self.count += clips

    def means(self) -> dict[str, float]:
        return {key: value / self.count for key, value in sorted(self.sums.items())} if self.count else {}


def _load_mel(record: ClipRecord, processed_dir: Path, n_mels: int) -> np.ndarray:
    path = record.mel_path(processed_dir)
    mel = np.load(path).astype(np.float32)
    if mel.ndim != 2 or mel.shape[0] != n_mels:
        raise ValueError(f"{path}: expected ({n_mels}, frames), got {mel.shape}")
    return mel


def _load_wave(record: ClipRecord, processed_dir: Path, sample_rate: int, num_samples: int) -> np.ndarray:
    path = record.wav_path(processed_dir)
    wave, rate = soundfile.read(str(path), dtype="float32")
    if rate != sample_rate or wave.ndim != 1:
        raise ValueError(f"{path}: expected mono {sample_rate} Hz audio, got {rate} Hz with shape {wave.shape}")
    if len(wave) < num_samples:
        raise ValueError(f"{path}: {len(wave)} samples, shorter than its mel ({num_samples} samples)")
    return wave[:num_samples]


@torch.no_grad()
def evaluate_reconstruction(
    *,
    records: list[ClipRecord],
    processed_dir: Path | str,
    mel_config: MelConfig,
    vae: AutoencoderKL | None = None,
    vocoder: nn.Module | None = None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
    audio_dir: Path | str | None = None,
) -> dict:
    """Evaluate `records` (see the module docstring); at least one of `vae` and `vocoder` is needed.

    Returns {"num_clips", "num_skipped", "skipped": [{"uid", "reason"}], "mel": {...} (with a VAE),
    "waveform": {...} (with a vocoder)}. The vocoder maps log-mels (B, frames, n_mels) to (B, samples) and runs
    where its weights are; the VAE runs on `device`. `audio_dir` (needs a vocoder) receives the vocoded wavs.
    """
    if vae is None and vocoder is None:
        raise ValueError("nothing to evaluate: give a VAE, a vocoder, or both")
    if audio_dir is not None and vocoder is None:
        raise ValueError("audio_dir needs a vocoder: without one there is no audio to write")
    if audio_dir is not None:
        Path(audio_dir).mkdir(parents=True, exist_ok=True)
    processed_dir = Path(processed_dir)
    skipped: list[dict[str, str]] = []
    clips: list[tuple[ClipRecord, np.ndarray]] = []
    for record in records:
        try:
            clips.append((record, _load_mel(record, processed_dir, mel_config.n_mels)))
        except (OSError, ValueError) as error:
            skipped.append({"uid": record.uid, "reason": str(error)})
    clips.sort(key=lambda clip: clip[1].shape[1])
    batches = []
    for _, same_length in groupby(clips, key=lambda clip: clip[1].shape[1]):
        group = list(same_length)
        batches += [group[start : start + batch_size] for start in range(0, len(group), batch_size)]
    front_end = build_log_mel(mel_config) if vocoder is not None else None
    vocoder_device = next(vocoder.parameters(), torch.empty(0)).device if vocoder is not None else None
    mel_means, waveform_means = _RunningMeans(), _RunningMeans()
    for batch in tqdm(batches, desc="reconstruction", disable=not show_progress):
        if vocoder is not None:
            waves, kept = [], []
            for record, mel in batch:
                try:
                    waves.append(_load_wave(record, processed_dir, mel_config.sample_rate,
                                            mel.shape[1] * mel_config.hop_length))
                    kept.append((record, mel))
                except (OSError, RuntimeError, ValueError) as error:
                    skipped.append({"uid": record.uid, "reason": str(error)})
            batch = kept
            if not batch:
                continue
        reference = torch.from_numpy(np.stack([mel for _, mel in batch]))
        estimate = reference
        if vae is not None:
            inputs = reference.transpose(1, 2).unsqueeze(1).to(device)
            estimate = vae.reconstruct(inputs).float()[:, 0].transpose(1, 2).cpu()
            metrics = mel_reconstruction_metrics(reference, estimate)
            metrics["mel_lsd"] = mel_log_spectral_distance(reference, estimate)
            mel_means.add(metrics, len(batch))
        if vocoder is not None:
            audio = vocoder(estimate.transpose(1, 2).to(vocoder_device)).float().cpu()
            real = torch.from_numpy(np.stack(waves))
            audio = audio[:, : real.shape[1]]
            if audio_dir is not None:
                for (record, _), clip in zip(batch, audio.numpy()):
                    save_wav(Path(audio_dir) / f"{record.uid}.wav", clip, mel_config.sample_rate)
            waveform_means.add(waveform_reconstruction_metrics(real, audio, log_mel=front_end), len(batch))
    evaluated = max(mel_means.count, waveform_means.count)
    if evaluated == 0:
        warnings.warn(f"no clip could be evaluated ({len(skipped)} skipped)", stacklevel=2)
    report: dict = {"num_clips": evaluated, "num_skipped": len(skipped), "skipped": skipped}
    if vae is not None:
        report["mel"] = mel_means.means()
    if vocoder is not None:
        report["waveform"] = waveform_means.means()
    return report
