"""AudioLDM 2 text-to-audio generation in this repository's modules (Liu et al. 2024, "AudioLDM 2", Sec. 3).

prompt ─CLAP + Flan-T5 → projection → GPT-2─▶ (8 "language of audio" vectors, T5 states + mask)
       ─UNet (two cross-attention streams) driven by a diffusers scheduler with classifier-free guidance─▶ latent
       ─VAE decode (latent / scaling factor)─▶ log-mel (B, 1, frames, n_mels) ─HiFi-GAN─▶ 16 kHz waveform

Numerically this is diffusers' ``AudioLDM2Pipeline`` (see tests/models/tta/audioldm2/test_pipeline_parity.py),
with two deliberate differences in the ranking of ``num_waveforms_per_prompt`` candidates by CLAP text-audio
similarity: candidates are ranked within their own prompt (the reference ranks every candidate of the batch
against every prompt, so a prompt can receive another prompt's audio), and audio longer than the CLAP window is
scored on its first window (the reference scores a window picked by numpy's global random state, so its ranking
is not reproducible).
"""

import json
import math
from pathlib import Path
from typing import NamedTuple

import librosa
import torch
import torch.nn.functional as F
from torch import nn
from transformers import ClapFeatureExtractor

from models.tta.audioldm.diffusion import SCHEDULERS, Denoiser, NoiseScheduleConfig, build_scheduler
from models.tta.audioldm.sampling import sample_latents
from models.tta.audioldm.unet import AudioLDMUNet
from models.tta.audioldm.unet_key_map import load_diffusers_audioldm2_unet
from models.tta.audioldm2.text_conditioning import AudioLDM2TextConditioner, load_audioldm2_conditioner
from models.tta.autoencoderkl.key_map import load_diffusers_vae
from models.tta.autoencoderkl.model import AutoencoderKL
from models.tta.hifigan.key_map import load_diffusers_vocoder
from models.tta.hifigan.model import HifiGanGenerator

# Sub-folders of a diffusers AudioLDM 2 folder that generation reads (cvssp/audioldm2, -large, -music).
REQUIRED_COMPONENTS = (
    "unet",
    "vae",
    "vocoder",
    "text_encoder",
    "text_encoder_2",
    "projection_model",
    "language_model",
    "tokenizer",
    "tokenizer_2",
    "feature_extractor",
    "scheduler",
)
# The folder's own scheduler (``scheduler=None``) may be any of the samplers this repository offers.
_SCHEDULER_CLASSES = {scheduler_class.__name__: scheduler_class for scheduler_class in SCHEDULERS.values()}


class AudioLDM2Generation(NamedTuple):
    """Generated audio for B prompts with N candidates each, best first within each prompt when N > 1."""

    # (B, N, samples) float32 in [-1, 1]; samples = int(seconds * sampling_rate), capped by what the vocoder
    # makes of ``mel_frames(seconds)`` frames (8992 for 0.57 s, as in the reference).
    waveforms: torch.Tensor
    log_mels: torch.Tensor  # (B, N, frames, n_mels) float32 decoded log-mels, cropped to cover the waveform
    clap_scores: torch.Tensor | None  # (B, N) cosine similarity of each candidate to its prompt; None when N == 1
    candidate_indices: torch.Tensor  # (B, N) generation order of each ranked candidate within its prompt


class AudioLDM2Pipeline(nn.Module):
    """Text conditioner + two-stream UNet + VAE decoder + vocoder, with CLAP ranking of candidates.

    ``latent_scaling_factor`` is the VAE's "scale_by_std" factor (latents are divided by it before decoding);
    ``sampling_rate`` is the vocoder's; ``clap_feature_extractor`` makes the 48 kHz CLAP audio features used for
    ranking; ``schedule`` is the training noise schedule and ``scheduler_config`` the diffusers config of the
    checkpoint's own sampler (used when ``generate`` is given ``scheduler=None``).
    """

    def __init__(
        self,
        *,
        conditioner: AudioLDM2TextConditioner,
        unet: AudioLDMUNet,
        vae: AutoencoderKL,
        latent_scaling_factor: float,
        vocoder: HifiGanGenerator,
        sampling_rate: int,
        clap_feature_extractor: ClapFeatureExtractor,
        schedule: NoiseScheduleConfig,
        scheduler_config: dict,
    ) -> None:
        super().__init__()
        if len(unet.context_dims) != 2:
            raise ValueError(
                f"the AudioLDM 2 UNet needs two context streams (LOA vectors, T5 states), got {unet.context_dims}"
            )
        if self.num_mel_bins_of(vocoder) % vae.downsample_factor != 0:
            raise ValueError(
                f"the vocoder's {self.num_mel_bins_of(vocoder)} mel bins are not divisible by the VAE factor "
                f"{vae.downsample_factor}"
            )
        self.conditioner = conditioner
        self.denoiser = Denoiser(unet=unet, schedule=schedule)
        self.vae = vae
        self.latent_scaling_factor = latent_scaling_factor
        self.vocoder = vocoder
        self.sampling_rate = sampling_rate
        self.clap_feature_extractor = clap_feature_extractor
        self.schedule = schedule
        self.scheduler_config = dict(scheduler_config)

    @property
    def unet(self) -> AudioLDMUNet:
        return self.denoiser.unet

    @staticmethod
    def num_mel_bins_of(vocoder: HifiGanGenerator) -> int:
        return vocoder.conv_in.in_channels

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def hop_seconds(self) -> float:
        """Seconds of audio per mel frame (0.01 for the public checkpoints)."""
        return self.vocoder.hop_length / self.sampling_rate

    @property
    def min_audio_length_in_s(self) -> float:
        """The shortest length that gives one latent frame."""
        return self.hop_seconds * self.vae.downsample_factor

    def mel_frames(self, audio_length_in_s: float) -> int:
        """Mel frames generated for a length: int(seconds / hop) rounded up to a multiple of the VAE factor.

        Same arithmetic as the reference pipeline, so 10.24 s gives 1024 frames and 5 s gives 500; floating point
        makes int(0.57 / 0.01) 56, so a few lengths come out up to one frame short, exactly as in the reference.
        """
        if not audio_length_in_s >= self.min_audio_length_in_s:
            raise ValueError(
                f"audio_length_in_s must be at least {self.min_audio_length_in_s} s (one latent frame), "
                f"got {audio_length_in_s}"
            )
        factor = self.vae.downsample_factor
        return math.ceil(int(audio_length_in_s / self.hop_seconds) / factor) * factor

    def make_scheduler(self, name: str | None = None):
        """A fresh diffusers sampler: the checkpoint's own (``None``) or one of ``SCHEDULERS`` on its schedule."""
        if name is None:
            return _SCHEDULER_CLASSES[self.scheduler_config["_class_name"]].from_config(self.scheduler_config)
        return build_scheduler(name, self.schedule)

    @torch.no_grad()
    def generate(
        self,
        prompts: str | list[str],
        *,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float = 3.5,
        num_inference_steps: int = 200,
        audio_length_in_s: float = 10.24,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        scheduler: str | None = None,
        batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        show_progress: bool = False,
    ) -> AudioLDM2Generation:
        """Generate ``num_waveforms_per_prompt`` (N) waveforms for each of B prompts.

        Guidance is on when ``guidance_scale`` > 1; the unconditional stream encodes ``negative_prompt`` (one for
        all prompts or one per prompt) or "". The initial noise, (B * N, C, frames / r, n_mels / r) prompt-major,
        is drawn up front on the CPU from ``generator`` unless ``latents`` is given, so a prompt's noise depends on
        the generator and the prompt's position only. ``batch_size`` prompts (default: all) are sampled at a time;
        as in the reference, a prompt's GPT-2 vectors depend on the longest prompt sampled with it (positions
        count padding), so ``batch_size=1`` makes each prompt's audio independent of the others. ``scheduler``
        names one of ``SCHEDULERS`` on the checkpoint's noise schedule; ``None`` uses the checkpoint's own
        sampler config. ``autocast_dtype`` (e.g. torch.bfloat16) runs the UNet under autocast; a UNet loaded in
        a lower precision always runs under autocast to its own dtype (the sampler's latents stay float32).
        """
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompt_list:
            raise ValueError("prompts must be a string or a non-empty list of strings")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        if num_waveforms_per_prompt < 1:
            raise ValueError(f"num_waveforms_per_prompt must be at least 1, got {num_waveforms_per_prompt}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        negative_list = _per_prompt(negative_prompt, len(prompt_list))
        unet_dtype = self.unet.conv_in.weight.dtype
        if autocast_dtype is None and unet_dtype != torch.float32:
            autocast_dtype = unet_dtype
        frames = self.mel_frames(audio_length_in_s)
        factor = self.vae.downsample_factor
        shape = (
            len(prompt_list) * num_waveforms_per_prompt,
            self.unet.in_channels,
            frames // factor,
            self.num_mel_bins_of(self.vocoder) // factor,
        )
        if latents is None:
            latents = torch.randn(shape, generator=generator, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        sampling = dict(
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            audio_length_in_s=audio_length_in_s,
            num_waveforms_per_prompt=num_waveforms_per_prompt,
            generator=generator,
            scheduler=scheduler,
            autocast_dtype=autocast_dtype,
            show_progress=show_progress,
        )
        batch_size = batch_size or len(prompt_list)
        batches = [
            self._generate_batch(
                prompt_list[start : start + batch_size],
                None if negative_list is None else negative_list[start : start + batch_size],
                latents[start * num_waveforms_per_prompt : (start + batch_size) * num_waveforms_per_prompt],
                **sampling,
            )
            for start in range(0, len(prompt_list), batch_size)
        ]
        if len(batches) == 1:
            return batches[0]
        return AudioLDM2Generation(
            *(None if fields[0] is None else torch.cat(fields) for fields in zip(*batches, strict=True))
        )

    def _generate_batch(
        self,
        prompts: list[str],
        negative_prompts: list[str] | None,
        latents: torch.Tensor,
        *,
        guidance_scale: float,
        num_inference_steps: int,
        audio_length_in_s: float,
        num_waveforms_per_prompt: int,
        generator: torch.Generator | None,
        scheduler: str | None,
        autocast_dtype: torch.dtype | None,
        show_progress: bool,
    ) -> AudioLDM2Generation:
        """One batch of ``generate``: condition, sample, decode, vocode, trim, rank within each prompt."""
        do_cfg = guidance_scale > 1.0
        conditioning = self.conditioner.encode(prompts, negative_prompts, do_cfg, num_waveforms_per_prompt)
        clean_latents = sample_latents(
            self.denoiser,
            self.make_scheduler(scheduler),
            shape=tuple(latents.shape),
            contexts=[conditioning.language_of_audio, conditioning.t5_states],
            context_masks=[None, conditioning.t5_mask],
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            generator=generator,
            latents=latents.to(self.device),
            autocast_dtype=autocast_dtype,
            show_progress=show_progress,
        )
        num_samples = int(audio_length_in_s * self.sampling_rate)
        vae_dtype = self.vae.post_quant_conv.weight.dtype
        log_mels = self.vae.decode((clean_latents / self.latent_scaling_factor).to(vae_dtype))[:, 0]
        waveforms = self.vocoder(log_mels.to(self.vocoder.conv_in.weight.dtype)).float().cpu()[:, :num_samples]
        log_mels = log_mels.float().cpu()[:, : math.ceil(num_samples / self.vocoder.hop_length)]

        per_prompt = (len(prompts), num_waveforms_per_prompt)
        waveforms = waveforms.reshape(*per_prompt, -1)
        log_mels = log_mels.reshape(*per_prompt, *log_mels.shape[1:])
        if num_waveforms_per_prompt == 1:
            return AudioLDM2Generation(waveforms, log_mels, None, torch.zeros(per_prompt, dtype=torch.long))
        scores = self.clap_scores(prompts, waveforms)
        order = torch.argsort(scores, dim=1, descending=True)
        return AudioLDM2Generation(
            waveforms=torch.take_along_dim(waveforms, order[:, :, None], dim=1),
            log_mels=torch.take_along_dim(log_mels, order[:, :, None, None], dim=1),
            clap_scores=torch.take_along_dim(scores, order, dim=1),
            candidate_indices=order,
        )

    @torch.no_grad()
    def clap_scores(self, prompts: list[str], waveforms: torch.Tensor) -> torch.Tensor:
        """Cosine similarity (B, N) between each prompt's CLAP text embedding and its own N candidates.

        ``waveforms`` (B, N, samples) at ``sampling_rate`` are resampled to the feature extractor's rate (48 kHz)
        with librosa, as the reference does; audio longer than the extractor's window is cut to its first window.
        """
        batch_size, num_candidates, _ = waveforms.shape
        extractor = self.clap_feature_extractor
        audio = librosa.resample(
            waveforms.reshape(batch_size * num_candidates, -1).numpy(),
            orig_sr=self.sampling_rate,
            target_sr=extractor.sampling_rate,
        )
        if extractor.truncation == "rand_trunc":
            audio = audio[:, : extractor.nb_max_samples]
        clap = self.conditioner.clap_model
        features = extractor(list(audio), return_tensors="pt", sampling_rate=extractor.sampling_rate).input_features
        features = features.to(device=clap.device, dtype=clap.dtype)
        audio_embeddings = F.normalize(clap.audio_projection(clap.audio_model(input_features=features).pooler_output))
        text_embeddings = self.conditioner.clap_text_features(prompts)
        audio_embeddings = audio_embeddings.reshape(batch_size, num_candidates, -1)
        return torch.einsum("bd,bnd->bn", text_embeddings.float(), audio_embeddings.float()).cpu()

    @classmethod
    def from_pretrained_folder(cls, folder: str | Path, *, dtype: torch.dtype = torch.float32) -> "AudioLDM2Pipeline":
        """Load every component from a local diffusers-layout AudioLDM 2 folder through this repository's key maps.

        ``folder`` is a downloaded copy of cvssp/audioldm2, cvssp/audioldm2-large or cvssp/audioldm2-music
        (nothing is downloaded here). A missing folder or sub-folder raises FileNotFoundError naming all of them;
        weights that do not fit raise the key maps' errors, naming every missing or unexpected key. Returned in
        eval mode, in ``dtype``.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"AudioLDM 2 model folder {folder} does not exist; download a diffusers-layout checkpoint (e.g. "
                "cvssp/audioldm2) to a local folder and pass that folder"
            )
        missing = [name for name in ("model_index.json", *REQUIRED_COMPONENTS) if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(f"AudioLDM 2 folder {folder} lacks {', '.join(missing)}")
        vocoder_config = json.loads((folder / "vocoder" / "config.json").read_text())
        scheduler_config_path = folder / "scheduler" / "scheduler_config.json"
        if not scheduler_config_path.is_file():
            raise FileNotFoundError(f"no {scheduler_config_path}")
        scheduler_config = json.loads(scheduler_config_path.read_text())
        vae, latent_scaling_factor = load_diffusers_vae(folder / "vae")
        pipeline = cls(
            conditioner=load_audioldm2_conditioner(folder),
            unet=load_diffusers_audioldm2_unet(folder),
            vae=vae,
            latent_scaling_factor=latent_scaling_factor,
            vocoder=load_diffusers_vocoder(folder / "vocoder"),
            sampling_rate=int(vocoder_config.get("sampling_rate", 16000)),
            clap_feature_extractor=ClapFeatureExtractor.from_pretrained(
                folder / "feature_extractor", local_files_only=True
            ),
            schedule=noise_schedule_from_diffusers_config(scheduler_config, source=scheduler_config_path),
            scheduler_config=scheduler_config,
        )
        return pipeline.to(dtype).eval()


def noise_schedule_from_diffusers_config(
    config: dict, *, source: str | Path = "scheduler config"
) -> NoiseScheduleConfig:
    """The training noise schedule of a diffusers scheduler config (its betas and prediction type)."""
    class_name = config.get("_class_name")
    if class_name not in _SCHEDULER_CLASSES:
        raise ValueError(f"{source}: scheduler {class_name!r} is not one of {', '.join(_SCHEDULER_CLASSES)}")
    if config.get("trained_betas") is not None:
        raise ValueError(f"{source}: explicit trained_betas are not supported, only a named beta_schedule")
    defaults = NoiseScheduleConfig()
    return NoiseScheduleConfig(
        num_train_timesteps=int(config.get("num_train_timesteps", defaults.num_train_timesteps)),
        beta_start=float(config.get("beta_start", defaults.beta_start)),
        beta_end=float(config.get("beta_end", defaults.beta_end)),
        beta_schedule=config.get("beta_schedule", defaults.beta_schedule),
        prediction_type=config.get("prediction_type", defaults.prediction_type),
    )


def _per_prompt(negative_prompt: str | list[str] | None, num_prompts: int) -> list[str] | None:
    """The negative prompt as one string per prompt (None stays None: the unconditional stream encodes "")."""
    if negative_prompt is None:
        return None
    if isinstance(negative_prompt, str):
        return [negative_prompt] * num_prompts
    negative_list = list(negative_prompt)
    if len(negative_list) != num_prompts:
        raise ValueError(f"got {len(negative_list)} negative prompts for {num_prompts} prompts")
    return negative_list
