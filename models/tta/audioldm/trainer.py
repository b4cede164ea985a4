"""Stage-2 trainer: text-conditioned latent diffusion on a frozen VAE's scaled latents.

Per batch: encode the mels with the frozen VAE (posterior mean, or a sample; with `data.latent_cache_mb` each crop's
posterior is encoded once and kept, `models.tta.audioldm.posterior_cache`), multiply by the latent scale
factor, mark captions as unconditional with probability `diffusion.caption_dropout` (classifier-free guidance, Ho
& Salimans 2022), and regress the UNet on ε or v at uniformly drawn timesteps, ignoring latent frames that are
only padding. Validation measures the loss at fixed timesteps with noise fixed per clip, and samples audio for
fixed prompts with the EMA weights.

The text side is pluggable (`models.tta.audioldm.text_states.TextConditioning`): captions -> one context per
cross-attention stream, with dropped rows built as the pipeline builds its unconditional branch. This class trains
AudioLDM (one MiniLM / T5 stream, a VAE from stage 1); `models.tta.audioldm2.trainer` reuses it for AudioLDM 2
fine-tuning by overriding the private methods of the "variants" section below.
"""

import hashlib
import logging

import torch
from torch import nn
from torch.utils.data import Dataset

from models.base.data import MelSegmentDataset, collate_skipping_missing, read_split
from models.base.trainer import Trainer
from models.text_encoder import TextEmbeddingCache, load_text_encoder
from models.tta.audioldm.config import AudioLDMExperiment
from models.tta.audioldm.diffusion import Denoiser, draw_timesteps
from models.tta.audioldm.pipeline import UNET_NAME, AudioLDMPipeline, build_unet
from models.tta.audioldm.posterior_cache import PosteriorCache
from models.tta.audioldm.stage1 import load_frozen_autoencoder
from models.tta.audioldm.text_states import EncoderConditioning, TextConditioning
from models.tta.autoencoderkl.latent_scale import latent_frame_mask
from models.tta.autoencoderkl.model import AutoencoderKL
from models.tta.vocoders import load_vocoder

logger = logging.getLogger(__name__)


def _clip_seed(uid: str, timestep: int, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}|{uid}|{timestep}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class AudioLDMTrainer(Trainer):
    """Trains `unet` (an `AudioLDMUNet` inside a `Denoiser`); the text conditioning and VAE stay frozen on
    `self.device` as private helpers. The latent scale factor actually used is written into the resolved
    config (`autoencoder.scale_factor`), so every checkpoint carries it."""

    config_schema = AudioLDMExperiment

    def __init__(self, config, exp_dir, resolved_config: dict):
        autoencoder, scale_factor, resolved_config = self._frozen_autoencoder(config, resolved_config)
        self._autoencoder = autoencoder
        self._scale_factor = scale_factor
        self._conditioning: TextConditioning | None = None
        self._train_denoiser: Denoiser | None = None
        self._vocoder: nn.Module | None = None
        cache_mb = config.data.latent_cache_mb
        self._posterior_cache = PosteriorCache(cache_mb) if cache_mb > 0 else None
        super().__init__(config, exp_dir, resolved_config)

    # --------------------------------------------------------------------------------------------- hooks

    def build_models(self) -> dict[str, nn.Module]:
        self._conditioning = self._build_conditioning().to(self.device)
        self._autoencoder.to(self.device)
        return {UNET_NAME: self._build_unet(self._conditioning.context_dims)}

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        config = self.config
        processed_dir = config.preprocess.processed_dir
        common = dict(
            processed_dir=processed_dir,
            segment_frames=config.data.segment_frames,
            n_mels=config.preprocess.mel.n_mels,
            seed=self.trainer_config.seed,
        )
        train = MelSegmentDataset(
            records=read_split(processed_dir, config.datasets, config.data.train_split), random_crop=True, **common
        )
        valid = MelSegmentDataset(
            records=read_split(processed_dir, config.datasets, config.data.valid_split), random_crop=False, **common
        )
        return train, valid

    def collate(self, items: list) -> dict:
        return collate_skipping_missing(items)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        if "mel" not in batch:
            return {"skipped_clips": float(batch["num_skipped"])}
        latents, latent_mask = self._latents(batch, sample=self._sample_posterior())
        dropped = [float(torch.rand(())) < self.config.diffusion.caption_dropout for _ in batch["caption"]]
        contexts = self._conditioning.contexts(batch["caption"], unconditional=dropped)
        denoiser = self._denoiser()
        diffusion = self.config.diffusion
        timesteps = draw_timesteps(
            latents.shape[0],
            denoiser.num_train_timesteps,
            sampling=diffusion.timestep_sampling,
            mean=diffusion.timestep_mean,
            std=diffusion.timestep_std,
            device=self.device,
        )
        loss = denoiser.loss(
            latents,
            contexts.states,
            contexts.masks,
            timesteps=timesteps,
            noise=torch.randn_like(latents),
            latent_mask=latent_mask,
        )
        self.backward(loss, name="loss")
        self.optimizer_step(UNET_NAME)
        return {"loss": loss.item(), "skipped_clips": float(batch["num_skipped"])}

    def validate(self, batch: dict) -> dict[str, float]:
        if "mel" not in batch:
            return {}
        latents, latent_mask = self._latents(batch, sample=False)
        contexts = self._conditioning.contexts(batch["caption"])
        denoiser = self._denoiser()
        metrics = {}
        seed = self.config.validation.seed
        for timestep in self.config.validation.loss_timesteps:
            generators = [torch.Generator().manual_seed(_clip_seed(uid, timestep, seed)) for uid in batch["uid"]]
            noise = torch.stack([torch.randn(latents.shape[1:], generator=g) for g in generators]).to(self.device)
            timesteps = torch.full((latents.shape[0],), timestep, dtype=torch.long, device=self.device)
            loss = denoiser.loss(latents, contexts.states, contexts.masks, timesteps=timesteps, noise=noise,
                                 latent_mask=latent_mask, weighted=False)
            metrics[f"loss_t{timestep}"] = loss.item()
        metrics["loss_fixed_t"] = sum(metrics.values()) / len(metrics)
        return metrics

    def log_samples(self, step: int) -> None:
        validation = self.config.validation
        if not validation.prompts or not self.is_main_process:
            return
        waveforms, mels, sample_rate = self._generate_samples()
        for index, prompt in enumerate(validation.prompts):
            tag = f"samples/{index:02d}_{prompt[:40]}"
            self.writer.audio(f"{tag}/audio", waveforms[index], sample_rate, step)
            self.writer.mel_image(f"{tag}/mel", mels[index], step)
        self.writer.flush()

    # ------------------------------------------------------------------------ variants (AudioLDM 2 overrides)

    def _frozen_autoencoder(
        self, config: AudioLDMExperiment, resolved_config: dict
    ) -> tuple[AutoencoderKL, float, dict]:
        """(frozen VAE, latent scale factor, resolved config recording the factor). Runs before the hooks."""
        autoencoder, scale_factor, vae_checkpoint = load_frozen_autoencoder(config.autoencoder)
        logger.info("stage-1 VAE %s, latent scale factor %.6g", vae_checkpoint, scale_factor)
        resolved_config = {
            **resolved_config,
            "autoencoder": {**resolved_config["autoencoder"], "scale_factor": scale_factor},
        }
        return autoencoder, scale_factor, resolved_config

    def _sample_posterior(self) -> bool:
        return self.config.autoencoder.sample_posterior

    def _build_conditioning(self) -> TextConditioning:
        config = self.config.text_encoder
        cache = TextEmbeddingCache(config.cache_dir, config.name, config.max_length) if config.cache_dir else None
        return EncoderConditioning(encoder=load_text_encoder(config.name, max_length=config.max_length), cache=cache)

    def _build_unet(self, context_dims: list[int]) -> nn.Module:
        return build_unet(self.config.unet, text_width=context_dims[0])

    def _generate_samples(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Audio for `validation.prompts` with the current (EMA) UNet: waveforms (P, samples), log-mels
        (P, frames, n_mels), sample rate."""
        validation = self.config.validation
        if self._vocoder is None:
            self._vocoder = load_vocoder(self.config.vocoder, mel=self.config.preprocess.mel)
        pipeline = AudioLDMPipeline(
            text_encoder=self._conditioning.encoder,
            denoiser=self._denoiser(),
            autoencoder=self._autoencoder,
            vocoder=self._vocoder,
            scale_factor=self._scale_factor,
            schedule=self.config.diffusion.schedule,
            mel=self.config.preprocess.mel,
        )
        output = pipeline.generate(
            validation.prompts,
            guidance_scale=validation.guidance_scale,
            num_inference_steps=validation.num_inference_steps,
            audio_length_in_s=validation.audio_length_in_s,
            seed=validation.seed,
            scheduler=validation.scheduler,
            show_progress=False,
        )
        return output.waveforms[:, 0], output.mels[:, 0], self.config.preprocess.mel.sample_rate

    # ----------------------------------------------------------------------------------------- helpers

    def _denoiser(self) -> Denoiser:
        """The denoiser around the current `unet` (DDP-wrapped in training, unwrapped with EMA in evaluation)."""
        unet = self.models[UNET_NAME]
        if self._train_denoiser is None or self._train_denoiser.unet is not unet:
            self._train_denoiser = Denoiser(
                unet=unet, schedule=self.config.diffusion.schedule, min_snr_gamma=self.config.diffusion.min_snr_gamma
            ).to(self.device)
        return self._train_denoiser

    @torch.no_grad()
    def _latents(self, batch: dict, *, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled VAE latents (B, C, T/r, F/r) of the batch's mels and their frame mask (B, 1, T/r, 1): a latent
        frame counts when every mel frame under it is real. With `data.latent_cache_mb`, the posterior of a crop
        seen before comes from the cache."""
        if self._posterior_cache is None:
            posterior = self._autoencoder.encode(batch["mel"])
        else:
            keys = list(zip(batch["uid"], batch["offset"], strict=True))
            posterior = self._posterior_cache.encode(self._autoencoder, batch["mel"], keys)
        latents = posterior.sample() if sample else posterior.mode()
        factor = self._autoencoder.downsample_factor
        mask = latent_frame_mask(batch["mask"], latent_frames=latents.shape[2], factor=factor)
        return latents * self._scale_factor, mask[:, None, :, None].to(latents.dtype)
