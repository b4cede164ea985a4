"""Stage 1 on the shared trainer: the mel VAE with KL regularisation and a PatchGAN hinge loss (AudioLDM's recipe).

Per step: encode a batch of random mel crops, decode a posterior sample, update the VAE on rec + kl (+ the
adaptively weighted adversarial term once the discriminator has started), then update the discriminator on the
same reconstructions (from `loss.disc_start_step` only; before that it is neither run nor stepped). Both models,
both optimizers and their schedules are in every checkpoint, so a resumed run continues the GAN exactly.
The latent scale factor for stage 2 is measured afterwards by `bins/tta/vae_scale_factor.py`.
"""

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from models.base.data import MelSegmentDataset, collate_skipping_missing, read_split
from models.base.trainer import Trainer
from models.tta.autoencoderkl.config import AutoencoderKLExperiment, build_autoencoder, build_discriminator
from models.tta.autoencoderkl.loading import VAE_NAME
from models.tta.autoencoderkl.loss import AutoencoderKLLoss
from models.tta.vocoders import load_vocoder
from modules.distributions import DiagonalGaussian

DISCRIMINATOR_NAME = "discriminator"


class AutoencoderKLTrainer(Trainer):
    """Trains `vae` (AutoencoderKL) and `discriminator` (NLayerDiscriminator) from an `AutoencoderKLExperiment`.

    Logged per step (train/): rec, kl, gan_g, total (the weighted sum the VAE is updated on), skipped_clips; once
    the discriminator has started also adaptive_weight, disc, logits_real, logits_fake. Validation (valid/): rec,
    kl, total and mel_l1 (mean absolute log-mel error over real frames) of the posterior mean's reconstruction.
    """

    config_schema = AutoencoderKLExperiment

    def __init__(self, config: AutoencoderKLExperiment, exp_dir: Path | str, resolved_config: dict):
        self._loss = AutoencoderKLLoss(weights=config.loss.weights)
        self._vocoder: nn.Module | None = None
        self._sample_set: Dataset | None = None
        super().__init__(config, exp_dir, resolved_config)

    # ------------------------------------------------------------------------------------------- hooks

    def build_models(self) -> dict[str, nn.Module]:
        vae = build_autoencoder(self.config.model)
        discriminator = build_discriminator(self.config.discriminator, in_channels=self.config.model.out_channels)
        return {VAE_NAME: vae, DISCRIMINATOR_NAME: discriminator}

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        data = self.config.data
        train = self._mel_dataset(data.train_split, random_crop=True)
        valid = None if data.valid_split is None else self._mel_dataset(data.valid_split, random_crop=False)
        self._sample_set = valid if valid is not None else self._mel_dataset(data.train_split, random_crop=False)
        return train, valid

    def collate(self, items: list) -> dict:
        return collate_skipping_missing(items)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        skipped = float(batch["num_skipped"])
        if "mel" not in batch:
            # Every clip of the batch failed to load (each was warned about). One process can skip the update;
            # under DDP the others would wait for its gradients forever, so stop instead.
            if self.accelerator.num_processes > 1:
                raise RuntimeError(f"step {step}: none of the {int(skipped)} clips of a batch could be loaded")
            return {"skipped_clips": skipped}
        mel, mask = batch["mel"], _cell_mask(batch)
        discriminator = self.models[DISCRIMINATOR_NAME]
        active = step >= self.config.loss.disc_start_step
        reconstruction, posterior = self.models[VAE_NAME](mel, sample_posterior=self.config.loss.sample_posterior)
        with self.frozen(DISCRIMINATOR_NAME):
            generator = self._loss.generator_losses(
                mel=mel,
                reconstruction=reconstruction.float(),
                posterior=_in_float32(posterior),
                discriminator=discriminator,
                discriminator_active=active,
                last_layer_weight=self.unwrap(VAE_NAME).last_layer_weight,
                mask=mask,
            )
        self.backward(generator.losses["total"], name="total")
        self.optimizer_step(VAE_NAME)
        metrics = {name: value.item() for name, value in generator.losses.items()}
        metrics["skipped_clips"] = skipped
        if active:
            metrics["adaptive_weight"] = generator.adaptive_weight.item()
            adversarial = self._loss.discriminator_losses(
                mel=mel, reconstruction=reconstruction.float(), discriminator=discriminator, mask=mask
            )
            self.backward(adversarial["disc"], name="disc")
            self.optimizer_step(DISCRIMINATOR_NAME)
            metrics.update({name: value.item() for name, value in adversarial.items()})
        return metrics

    def validate(self, batch: dict) -> dict[str, float]:
        if "mel" not in batch:
            return {}
        mel, mask = batch["mel"], _cell_mask(batch)
        vae = self.models[VAE_NAME]
        reconstruction, posterior = vae(mel, sample_posterior=False)
        reconstruction = reconstruction.float()
        losses = self._loss.generator_losses(
            mel=mel,
            reconstruction=reconstruction,
            posterior=_in_float32(posterior),
            discriminator=self.models[DISCRIMINATOR_NAME],
            discriminator_active=False,
            last_layer_weight=vae.last_layer_weight,
            mask=mask,
        ).losses
        mel_l1 = ((reconstruction - mel).abs() * mask).sum() / mask.sum().clamp(min=1)
        return {"rec": losses["rec"], "kl": losses["kl"], "total": losses["total"], "mel_l1": mel_l1}

    def log_samples(self, step: int) -> None:
        """Input vs reconstruction mels (one image: input at the bottom, reconstruction on top, one colour scale)
        and the audio of both through the configured vocoder, for the first `samples.num_clips` clips."""
        if not self.writer.enabled:
            return
        count = min(self.config.samples.num_clips, len(self._sample_set))
        batch = collate_skipping_missing([self._sample_set[index] for index in range(count)])
        if "mel" not in batch:
            return
        mel = batch["mel"].to(self.device)
        reconstruction = self.models[VAE_NAME].reconstruct(mel).float()
        if self._vocoder is None:
            self._vocoder = load_vocoder(self.config.vocoder, mel=self.config.preprocess.mel)
        mel_config = self.config.preprocess.mel
        waves = {
            "input": self._vocoder(mel[:, 0].cpu()),
            "reconstruction": self._vocoder(reconstruction[:, 0].cpu()),
        }
        for index, uid in enumerate(batch["uid"]):
            frames = int(batch["mask"][index].sum())
            pair = torch.cat([mel[index, 0, :frames], reconstruction[index, 0, :frames]], dim=1)
            self.writer.mel_image(f"samples/{uid}/mel_input_bottom_reconstruction_top", pair, step)
            for name, wave in waves.items():
                audio = wave[index, : frames * mel_config.hop_length]
                self.writer.audio(f"samples/{uid}/{name}", audio, sample_rate=mel_config.sample_rate, step=step)

    # ----------------------------------------------------------------------------------------- helpers

    def _mel_dataset(self, split: str, *, random_crop: bool) -> MelSegmentDataset:
        config = self.config
        return MelSegmentDataset(
            processed_dir=config.preprocess.processed_dir,
            records=read_split(config.preprocess.processed_dir, config.datasets, split),
            segment_frames=config.data.segment_frames,
            n_mels=config.preprocess.mel.n_mels,
            random_crop=random_crop,
            seed=config.trainer.seed,
        )


def _cell_mask(batch: dict) -> torch.Tensor:
    """The frame mask (B, 1, T, 1) as a bool mask over mel cells (B, 1, T, F): True on real frames."""
    return batch["mask"].bool().expand_as(batch["mel"])


def _in_float32(posterior: DiagonalGaussian) -> DiagonalGaussian:
    """The posterior in float32: under bf16 autocast the encoder's moments are bf16, too coarse for a KL summed
    over every latent value."""
    return DiagonalGaussian(posterior.mean.float(), posterior.logvar.float())
