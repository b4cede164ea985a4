"""Text to audio with a trained stage-2 model: text encoder -> guided latent sampling -> VAE decoder -> vocoder.

Each distinct prompt (and the negative prompt) is encoded once per call, not once per step or per candidate;
classifier-free guidance takes contexts ordered [negative, positive], as one batched UNet call per step, or on a
CPU with two or more threads under OMP_WAIT_POLICY=PASSIVE as two concurrent calls (`sample_latents`,
`ConcurrentGuidance`). Initial
noise for all prompts and candidates is drawn up front from one seeded generator, prompt-major, so with a
deterministic sampler (DDIM, PNDM, DPM-Solver++, UniPC, Euler) a prompt's audio depends on the seed and its
position only, not on the batch size or on the other prompts' lengths (their text padding is masked).
"""

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from models.text_encoder import FrozenTextEncoder, load_text_encoder
from models.tta.audioldm.config import AudioLDMExperiment, UNetConfig
from models.tta.audioldm.diffusion import Denoiser, NoiseScheduleConfig, build_scheduler
from models.tta.audioldm.sampling import sample_latents
from models.tta.audioldm.stage1 import load_frozen_autoencoder
from models.tta.audioldm.text_states import encode_texts, encode_with_negative
from models.tta.audioldm.unet import AudioLDMUNet
from models.tta.autoencoderkl.model import AutoencoderKL
from models.tta.vocoders import load_vocoder
from utils.audio import MelConfig
from utils.checkpoint import CheckpointError, META_FILE, load_model_weights, read_checkpoint_meta, resolve_checkpoint
from utils.config import ConfigError, validate

# Name of the denoising UNet in stage-2 checkpoints (`AudioLDMTrainer.build_models`).
UNET_NAME = "unet"
# A text–audio scorer for ranking candidates: (prompts (N), waveforms (N, samples)) -> scores (N,), higher = better.
Scorer = Callable[[list[str], torch.Tensor], torch.Tensor]


def build_unet(config: UNetConfig, *, text_width: int) -> AudioLDMUNet:
    """The UNet of `config`, after checking that its cross-attention width matches the text encoder's."""
    widths = [dim for dim in config.cross_attention_dims if dim is not None]
    if len(widths) != 1 or widths[0] != text_width:
        raise ValueError(
            f"unet.cross_attention_dims {list(config.cross_attention_dims)} must hold exactly one width, the text "
            f"encoder's hidden size {text_width}"
        )
    return AudioLDMUNet(
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        block_out_channels=list(config.block_out_channels),
        attention_blocks=list(config.attention_blocks),
        cross_attention_dims=list(config.cross_attention_dims),
        layers_per_block=config.layers_per_block,
        transformer_layers_per_block=config.transformer_layers_per_block,
        num_attention_heads=config.num_attention_heads,
        norm_groups=config.norm_groups,
        norm_eps=config.norm_eps,
        timestep_sinusoid_dim=config.timestep_sinusoid_dim,
        time_embed_dim=config.time_embed_dim,
        flip_sin_to_cos=config.flip_sin_to_cos,
        freq_shift=config.freq_shift,
        downsample_padding=config.downsample_padding,
        dropout=config.dropout,
        use_gradient_checkpointing=config.use_gradient_checkpointing,
        pooled_context_embedding=config.pooled_context_embedding,
    )


@dataclass
class GenerationOutput:
    """waveforms (P, K, samples) and log-mels (P, K, frames, n_mels) on the CPU, float32, for P prompts and K
    candidates each (best first when a scorer ranked them, else in generation order); `scores` (P, K) or None;
    `generation_indices` (P, K) int64: each candidate's position in generation order within its prompt (the noise
    it was sampled from); `seed` is the seed actually used (drawn when none was given)."""

    waveforms: torch.Tensor
    mels: torch.Tensor
    seed: int
    generation_indices: torch.Tensor
    scores: torch.Tensor | None = None


class AudioLDMPipeline:
    """Frozen text encoder + denoiser (EMA weights) + VAE decoder + vocoder, and the latent scale factor."""

    def __init__(
        self,
        *,
        text_encoder: FrozenTextEncoder,
        denoiser: Denoiser,
        autoencoder: AutoencoderKL,
        vocoder: nn.Module,
        scale_factor: float,
        schedule: NoiseScheduleConfig,
        mel: MelConfig,
    ):
        self.text_encoder = text_encoder
        self.denoiser = denoiser
        self.autoencoder = autoencoder
        self.vocoder = vocoder
        self.scale_factor = scale_factor
        self.schedule = schedule
        self.mel = mel
        self.experiment: AudioLDMExperiment | None = None
        self.checkpoint: Path | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        *,
        vocoder: str | None = None,
        autoencoder_checkpoint: str | None = None,
        device: torch.device | str = "cpu",
    ) -> "AudioLDMPipeline":
        """Rebuild everything from a stage-2 checkpoint folder (or experiment folder: its newest valid
        checkpoint). The VAE comes from the checkpoint named in its config unless `autoencoder_checkpoint` is
        given; the vocoder from the config's spec unless `vocoder` is given."""
        checkpoint = resolve_checkpoint(path)
        tree = read_checkpoint_meta(checkpoint)["config"]
        if tree.get("model_type") != "AudioLDM":
            raise CheckpointError(f"{checkpoint} is a {tree.get('model_type')!r} checkpoint, not an AudioLDM one")
        if autoencoder_checkpoint is not None:
            tree = {**tree, "autoencoder": {**tree["autoencoder"], "checkpoint": autoencoder_checkpoint}}
        try:
            experiment = validate(AudioLDMExperiment, tree, root_source=str(checkpoint / META_FILE))
        except ConfigError as error:
            raise CheckpointError(f"{checkpoint}: its config no longer validates: {error}") from error
        autoencoder, scale_factor, _ = load_frozen_autoencoder(experiment.autoencoder)
        text_encoder = load_text_encoder(experiment.text_encoder.name, max_length=experiment.text_encoder.max_length)
        unet = build_unet(experiment.unet, text_width=text_encoder.hidden_size)
        load_model_weights(checkpoint, UNET_NAME, unet)
        denoiser = Denoiser(unet=unet.eval(), schedule=experiment.diffusion.schedule)
        pipeline = cls(
            text_encoder=text_encoder,
            denoiser=denoiser.requires_grad_(False),
            autoencoder=autoencoder,
            vocoder=load_vocoder(vocoder or experiment.vocoder, mel=experiment.preprocess.mel),
            scale_factor=scale_factor,
            schedule=experiment.diffusion.schedule,
            mel=experiment.preprocess.mel,
        )
        pipeline.experiment = experiment
        pipeline.checkpoint = checkpoint
        return pipeline.to(device)

    def to(self, device: torch.device | str) -> "AudioLDMPipeline":
        """Move the text encoder, denoiser and VAE (the vocoder stays where it is: Griffin-Lim runs on the CPU)."""
        for module in (self.text_encoder, self.denoiser, self.autoencoder):
            module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def mel_frames(self, audio_length_in_s: float) -> int:
        """Mel frames covering `audio_length_in_s` (rounded up to whole hops)."""
        return math.ceil(round(audio_length_in_s * self.mel.sample_rate / self.mel.hop_length, 6))

    def latent_frames(self, audio_length_in_s: float) -> int:
        """Latent frames sampled for `audio_length_in_s`: the mel frames divided by the VAE factor, rounded up to
        a multiple of the UNet's down-sampling factor.

        Training crops are whole multiples (e.g. 500 mel frames padded to 512 -> 128 latent frames). A 125-frame
        latent would reach the UNet's last frames through other border padding and another down-sampling grid
        than any training crop, which left an artefact in the last 0.1 s of generated clips. The extra frames
        are sampled like the others, decoded, and cropped off the mel and the waveform."""
        frames = math.ceil(self.mel_frames(audio_length_in_s) / self.autoencoder.downsample_factor)
        multiple = self.denoiser.unet.downsample_factor
        return multiple * math.ceil(frames / multiple)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        *,
        negative_prompt: str = "",
        guidance_scale: float = 3.5,
        num_inference_steps: int = 25,
        audio_length_in_s: float = 10.0,
        num_waveforms_per_prompt: int = 1,
        seed: int | None = None,
        scheduler: str = "dpmsolver++",
        batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        scorer: Scorer | None = None,
        show_progress: bool = True,
    ) -> GenerationOutput:
        """Generate `num_waveforms_per_prompt` clips of `audio_length_in_s` seconds for every prompt.

        guidance_scale <= 1 turns guidance off (the negative prompt is then unused); the empty negative prompt is
        the unconditional one the model was trained with (caption dropout). `batch_size` clips are sampled at a
        time (default: all). `scorer` ranks each prompt's candidates (best first), never across prompts.
        """
        prompts = list(prompts)
        if not prompts or any(not isinstance(prompt, str) or not prompt.strip() for prompt in prompts):
            raise ValueError(f"prompts must be non-empty strings, got {prompts!r}")
        if not audio_length_in_s > 0 or num_inference_steps < 1 or num_waveforms_per_prompt < 1:
            raise ValueError(
                f"audio_length_in_s ({audio_length_in_s}), num_inference_steps ({num_inference_steps}) and "
                f"num_waveforms_per_prompt ({num_waveforms_per_prompt}) must be positive"
            )
        build_scheduler(scheduler, self.schedule)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        guided = guidance_scale > 1.0
        if guided:
            states, mask, negative_states, negative_mask = encode_with_negative(
                self.text_encoder, prompts, negative_prompt
            )
        else:
            states, mask = encode_texts(self.text_encoder, prompts)

        count = len(prompts) * num_waveforms_per_prompt
        prompt_of_item = torch.arange(len(prompts)).repeat_interleave(num_waveforms_per_prompt)
        factor = self.autoencoder.downsample_factor
        latent_frames = self.latent_frames(audio_length_in_s)
        latent_shape = (self.autoencoder.latent_channels, latent_frames, self.mel.n_mels // factor)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((count, *latent_shape), generator=generator)
        batch_size = batch_size or count
        mels, waveforms = [], []
        for start in range(0, count, batch_size):
            rows = prompt_of_item[start : start + batch_size].to(states.device)
            contexts, masks = states[rows], mask[rows]
            if guided:
                contexts = torch.cat([negative_states.expand(len(rows), -1, -1), contexts])
                masks = torch.cat([negative_mask.expand(len(rows), -1), masks])
            latents = sample_latents(
                self.denoiser,
                build_scheduler(scheduler, self.schedule),
                shape=(len(rows), *latent_shape),
                contexts=[contexts],
                context_masks=[masks],
                guidance_scale=guidance_scale,
                num_inference_steps=num_inference_steps,
                generator=generator,
                latents=noise[start : start + batch_size],
                autocast_dtype=autocast_dtype,
                show_progress=show_progress,
            )
            mel_batch, wave_batch = self._decode(latents, audio_length_in_s)
            mels.append(mel_batch)
            waveforms.append(wave_batch)
        mel = torch.cat(mels).unflatten(0, (len(prompts), num_waveforms_per_prompt))
        wave = torch.cat(waveforms).unflatten(0, (len(prompts), num_waveforms_per_prompt))
        order = torch.arange(num_waveforms_per_prompt).expand(len(prompts), -1)
        scores = None
        if scorer is not None:
            item_prompts = [prompts[int(index)] for index in prompt_of_item]
            scores = self._score(scorer, item_prompts, wave.flatten(0, 1)).reshape(order.shape)
            # Best first within each prompt; ties keep generation order, a NaN score ranks last.
            order = scores.nan_to_num(nan=-math.inf).argsort(dim=1, descending=True, stable=True)
            scores = scores.gather(1, order)
            wave = wave[torch.arange(len(prompts))[:, None], order]
            mel = mel[torch.arange(len(prompts))[:, None], order]
        return GenerationOutput(waveforms=wave, mels=mel, seed=seed, generation_indices=order.clone(), scores=scores)

    @staticmethod
    def _score(scorer: Scorer, prompts: list[str], waveforms: torch.Tensor) -> torch.Tensor:
        """The scorer's (N,) float32 scores of N (prompt, waveform (S,)) pairs, checked for shape."""
        scores = torch.as_tensor(scorer(prompts, waveforms)).float().cpu()
        if scores.shape != (len(prompts),):
            raise ValueError(f"the scorer returned shape {tuple(scores.shape)} for {len(prompts)} candidates")
        return scores

    def _decode(self, latents: torch.Tensor, audio_length_in_s: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled latents (B, C, h, w) -> (log-mels (B, frames, n_mels), waveforms (B, int(seconds x sr)))."""
        mel = self.autoencoder.decode(latents / self.scale_factor)[:, 0]
        vocoder_device = next(self.vocoder.parameters(), torch.empty(0)).device
        wave = self.vocoder(mel.to(vocoder_device)).float().cpu()
        samples = int(audio_length_in_s * self.mel.sample_rate)
        return mel[:, : self.mel_frames(audio_length_in_s)].float().cpu(), wave[:, :samples]
