"""HiFi-GAN vocoder stage (Kong et al. 2020) on the shared trainer: log-mel → 16 kHz waveform. The generator is
HiFi-GAN's or Vocos' (Siuzdak 2023, `model.generator`); discriminators and losses are the same for both.

Each step draws random waveform segments (offsets on the hop grid), computes their log-mels with the project's
one front end on the device, vocodes the mels back, and trains

- the discriminator (MPD + MSD) on real vs generated segments with the least-squares loss, then
- the generator on weighted mel L1 + multi-resolution STFT + least-squares adversarial + feature-matching
  losses, with the discriminator frozen so the generator's losses leave no gradient in it.

Before `loss.disc_start_step` only the spectral losses (mel L1, multi-resolution STFT) train the generator and
the discriminator is not touched (Parallel WaveGAN's warm-up, Yamamoto et al. 2020).
Validation vocodes the start of every validation clip and reports mel L1, LSD and the multi-resolution STFT
distance against the real audio; samples put vocoded audio and mel images of a few validation clips (and the
real ones, once per run) in TensorBoard.
"""

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from evaluation.metrics.reconstruction import log_spectral_distance, multi_resolution_stft_distance
from models.base.data import ClipRecord, WaveSegmentDataset, collate_skipping_missing, read_split
from models.base.trainer import Trainer
from models.tta.hifigan.config import HifiGanExperiment, build_discriminator, build_generator
from models.tta.hifigan.loss import HifiGanLoss, mel_l1_loss
from models.tta.vocoders import GENERATOR_NAME
from utils.audio import build_log_mel

DISCRIMINATOR_NAME = "discriminator"
# Floor on a mel bin's standard deviation before the generator divides by it (a bin that never varies).
_MIN_MEL_STD = 1e-2


class HifiGanTrainer(Trainer):
    """Trains `generator` (HifiGanGenerator, weight-normalised, or VocosGenerator, per `model.generator`) and
    `discriminator` (HifiGanDiscriminator).

    Batches are `collate_skipping_missing` dicts with "wave" (B, segment_samples); clips that failed to load are
    dropped from the batch (and counted in the `skipped_clips` metric).
    """

    config_schema = HifiGanExperiment

    def build_models(self) -> dict[str, nn.Module]:
        config = self.config
        self._log_mel = build_log_mel(config.preprocess.mel).to(self.device)
        self._loss = HifiGanLoss(weights=config.loss.weights)
        self._references_logged = False
        generator = build_generator(
            config.model, mel=config.preprocess.mel, use_weight_norm=config.model.uses_weight_norm
        )
        if config.model.normalize_input:
            # Measured on every start; a resumed run then loads the checkpoint's values over these.
            records = read_split(config.preprocess.processed_dir, self._datasets(), config.data.train_split)
            mean, std = mel_bin_statistics(
                config.preprocess.processed_dir, records[: config.data.statistics_clips], config.preprocess.mel.n_mels
            )
            generator.mean.copy_(mean)
            generator.scale.copy_(std.clamp(min=_MIN_MEL_STD))
        return {GENERATOR_NAME: generator, DISCRIMINATOR_NAME: build_discriminator(config.discriminator)}

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        config, mel = self.config, self.config.preprocess.mel
        datasets = self._datasets()
        processed_dir = config.preprocess.processed_dir

        def segments(split: str, frames: int, random_crop: bool) -> WaveSegmentDataset:
            return WaveSegmentDataset(
                processed_dir=processed_dir,
                records=read_split(processed_dir, datasets, split),
                segment_samples=frames * mel.hop_length,
                hop_length=mel.hop_length,
                sample_rate=mel.sample_rate,
                random_crop=random_crop,
                seed=self.trainer_config.seed,
            )

        train_set = segments(config.data.train_split, config.data.segment_frames, random_crop=True)
        self._valid_set = None
        if config.data.valid_split:
            self._valid_set = segments(config.data.valid_split, config.data.valid_frames, random_crop=False)
        return train_set, self._valid_set

    def collate(self, items: list) -> dict:
        return collate_skipping_missing(items)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        real = self._waves(batch)
        generator, discriminator = self.models[GENERATOR_NAME], self.models[DISCRIMINATOR_NAME]
        real_mel = self._log_mel(real)
        fake = generator(real_mel.transpose(1, 2))[:, : real.shape[1]]
        fake_mel = self._log_mel(fake)
        metrics = {"skipped_clips": float(batch["num_skipped"])} if batch["num_skipped"] else {}

        if step < self.config.loss.disc_start_step:
            spectral_total, spectral_losses = self._loss.spectral_step(
                fake_mel=fake_mel, real_mel=real_mel, fake_wave=fake, real_wave=real
            )
            self.backward(spectral_total, name="generator")
            self.optimizer_step(GENERATOR_NAME)
            return {**metrics, **{name: value.item() for name, value in spectral_losses.items()}}

        logits, _ = discriminator(torch.cat([real, fake.detach()]))
        real_logits, fake_logits = _halves(logits)
        disc_total, disc_losses = self._loss.discriminator_step(real_logits=real_logits, fake_logits=fake_logits)
        self.backward(disc_total, name="disc")
        self.optimizer_step(DISCRIMINATOR_NAME)

        with self.frozen(DISCRIMINATOR_NAME):
            logits, features = discriminator(torch.cat([real, fake]))
        real_features, fake_features = zip(*(_halves(maps) for maps in features))
        generator_total, generator_losses = self._loss.generator_step(
            fake_mel=fake_mel,
            real_mel=real_mel,
            fake_wave=fake,
            real_wave=real,
            fake_logits=_halves(logits)[1],
            real_features=real_features,
            fake_features=fake_features,
        )
        self.backward(generator_total, name="generator")
        self.optimizer_step(GENERATOR_NAME)
        losses = {**disc_losses, **generator_losses}
        return {**metrics, **{name: value.item() for name, value in losses.items()}}

    def validate(self, batch: dict) -> dict[str, float]:
        if "wave" not in batch:
            return {}
        real, fake, real_mel, fake_mel = self._vocode(batch["wave"])
        return {
            "mel_l1": mel_l1_loss(fake_mel, real_mel).item(),
            "lsd": log_spectral_distance(real, fake),
            "mr_stft": multi_resolution_stft_distance(real, fake),
        }

    def log_samples(self, step: int) -> None:
        if self._valid_set is None:
            return
        count = min(self.config.data.num_sample_clips, len(self._valid_set))
        clips = [clip for clip in (self._valid_set[index] for index in range(count)) if clip is not None]
        if not clips:
            return
        waves = torch.stack([clip["wave"] for clip in clips]).to(self.device)
        real, fake, real_mel, fake_mel = self._vocode(waves)
        sample_rate = self.config.preprocess.mel.sample_rate
        for index, clip in enumerate(clips):
            uid = clip["uid"]
            self.writer.audio(f"vocoded/{uid}", fake[index], sample_rate=sample_rate, step=step)
            self.writer.mel_image(f"vocoded_mel/{uid}", fake_mel[index].T, step)
            if not self._references_logged:
                self.writer.audio(f"real/{uid}", real[index], sample_rate=sample_rate, step=step)
                self.writer.mel_image(f"real_mel/{uid}", real_mel[index].T, step)
        self._references_logged = True

    def _vocode(self, real: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Real waves (B, S) → (real, vocoded (B, S), real mel, vocoded mel (B, n_mels, S // hop))."""
        real_mel = self._log_mel(real)
        fake = self.models[GENERATOR_NAME](real_mel.transpose(1, 2))[:, : real.shape[1]].float()
        return real, fake, real_mel, self._log_mel(fake)

    def _datasets(self) -> list[str]:
        return self.config.data.datasets or [self.config.preprocess.dataset]

    def _waves(self, batch: dict) -> torch.Tensor:
        if "wave" not in batch:
            raise RuntimeError(
                f"none of the {batch['num_skipped']} clips of a training batch could be loaded (see the warnings): "
                f"check {self.config.preprocess.processed_dir}"
            )
        return batch["wave"]


def mel_bin_statistics(
    processed_dir: Path | str, records: list[ClipRecord], n_mels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (n_mels,) of every log-mel bin over all frames of `records`' stored mels;
    unreadable mels are skipped with a warning."""
    total, total_sq, count = np.zeros(n_mels), np.zeros(n_mels), 0
    for record in records:
        path = record.mel_path(Path(processed_dir))
        try:
            mel = np.load(path).astype(np.float64)
        except (OSError, ValueError) as error:
            warnings.warn(f"mel statistics: skipping {path}: {error}", stacklevel=2)
            continue
        if mel.ndim != 2 or mel.shape[0] != n_mels:
            warnings.warn(f"mel statistics: skipping {path}: expected ({n_mels}, frames), got {mel.shape}", stacklevel=2)
            continue
        total += mel.sum(axis=1)
        total_sq += np.square(mel).sum(axis=1)
        count += mel.shape[1]
    if count == 0:
        raise RuntimeError(f"no readable mel among {len(records)} training clips under {processed_dir}")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def _halves(tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split every tensor of a list computed on cat([real, fake]) along the batch: (real parts, fake parts)."""
    pairs = [tensor.chunk(2) for tensor in tensors]
    return [real for real, _ in pairs], [fake for _, fake in pairs]
