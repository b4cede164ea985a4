"""Config schema of stage 2, text-conditioned latent diffusion (AudioLDM): `model_type: "AudioLDM"`.

Sections: `preprocess` (the shared data and mel front end), `data` (which processed datasets and the training
crop), `text_encoder` (frozen, named), `autoencoder` (the frozen stage-1 VAE: its checkpoint and the
architecture it must have), `unet` (every constructor argument of `AudioLDMUNet`), `diffusion` (noise schedule,
min-SNR weighting, caption dropout), `trainer`, `validation` (fixed prompts and fixed-timestep losses),
`vocoder` and `inference` (the defaults of `bins/tta/inference.py`).
"""

from dataclasses import dataclass, field
from typing import Literal, Optional

from models.base.trainer_config import TrainerConfig
from models.tta.audioldm.diffusion import SCHEDULERS, NoiseScheduleConfig
from models.text_encoder import BUILTIN_MINILM
from preprocessors.config import PreprocessConfig


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class DataConfig:
    """Training data: `datasets` under `preprocess.processed_dir` (empty = just `preprocess.dataset`), cropped
    (randomly in training, from the start in validation) or padded to `segment_frames` mel frames.

    `latent_cache_mb` > 0 keeps the frozen VAE's posterior of every crop in that much host memory per training
    process (`models.tta.audioldm.posterior_cache`), so crops seen before skip the encoder; 0 encodes every batch."""

    datasets: list[str] = field(default_factory=list)
    segment_frames: int = 1024
    train_split: str = "train"
    valid_split: str = "valid"
    latent_cache_mb: float = 0.0

    def __post_init__(self) -> None:
        _require(self.segment_frames > 0, f"data.segment_frames must be > 0, got {self.segment_frames}")
        _require(self.latent_cache_mb >= 0, f"data.latent_cache_mb must be >= 0, got {self.latent_cache_mb}")


@dataclass
class TextEncoderConfig:
    """The frozen text encoder (see `models.text_encoder`): the offline MiniLM by default, `t5-base` in the
    AudioLDM-style full config. `cache_dir` (empty: no cache) keeps training-caption embeddings on disk."""

    name: str = BUILTIN_MINILM
    max_length: int = 64
    cache_dir: str = ""

    def __post_init__(self) -> None:
        _require(self.max_length > 0, f"text_encoder.max_length must be > 0, got {self.max_length}")


@dataclass
class AutoencoderConfig:
    """The frozen stage-1 VAE. `checkpoint` is a checkpoint folder or an experiment folder (its newest valid
    checkpoint). The architecture fields are what this stage expects; a checkpoint trained with different ones
    is an error naming the differing keys. `scale_factor` null takes the factor stage 1 stored with its
    checkpoint. `sample_posterior` draws training latents from the posterior instead of taking its mean."""

    checkpoint: str = ""
    in_channels: int = 1
    out_channels: int = 1
    block_out_channels: list[int] = field(default_factory=lambda: [128, 256, 512])
    layers_per_block: int = 2
    latent_channels: int = 8
    norm_groups: int = 32
    mid_block_attention: bool = True
    scale_factor: Optional[float] = None
    sample_posterior: bool = False

    def __post_init__(self) -> None:
        _require(
            self.scale_factor is None or self.scale_factor > 0,
            f"autoencoder.scale_factor must be > 0 or null, got {self.scale_factor}",
        )

    def architecture(self) -> dict:
        """The `AutoencoderKL` constructor arguments."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "block_out_channels": list(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "latent_channels": self.latent_channels,
            "norm_groups": self.norm_groups,
            "mid_block_attention": self.mid_block_attention,
        }


@dataclass
class UNetConfig:
    """Every constructor argument of `AudioLDMUNet` (see its docstring). `cross_attention_dims` must hold the
    text encoder's width (384 for MiniLM, 768 for t5-base)."""

    in_channels: int = 8
    out_channels: int = 8
    block_out_channels: list[int] = field(default_factory=lambda: [128, 256, 384, 640])
    attention_blocks: list[bool] = field(default_factory=lambda: [False, True, True, True])
    cross_attention_dims: list[Optional[int]] = field(default_factory=lambda: [384])
    layers_per_block: int = 2
    transformer_layers_per_block: int = 1
    num_attention_heads: int = 8
    norm_groups: int = 32
    norm_eps: float = 1e-5
    timestep_sinusoid_dim: Optional[int] = None
    time_embed_dim: Optional[int] = None
    flip_sin_to_cos: bool = True
    freq_shift: float = 0.0
    downsample_padding: int = 1
    dropout: float = 0.0
    use_gradient_checkpointing: bool = False
    pooled_context_embedding: bool = False


@dataclass
class DiffusionConfig:
    """Training noise schedule, optional min-SNR-γ loss weighting (null: off), the probability of replacing a
    training caption by the empty string (classifier-free guidance; training split only), and how training
    timesteps are drawn (`models.tta.audioldm.diffusion.draw_timesteps`: "uniform", or "logit_normal" with
    `timestep_mean` / `timestep_std` in logit space)."""

    schedule: NoiseScheduleConfig = field(default_factory=NoiseScheduleConfig)
    min_snr_gamma: Optional[float] = None
    caption_dropout: float = 0.1
    timestep_sampling: Literal["uniform", "logit_normal"] = "uniform"
    timestep_mean: float = 0.0
    timestep_std: float = 1.0

    def __post_init__(self) -> None:
        _require(
            0.0 <= self.caption_dropout < 1.0,
            f"diffusion.caption_dropout must be in [0, 1), got {self.caption_dropout}",
        )
        _require(self.timestep_std > 0, f"diffusion.timestep_std must be > 0, got {self.timestep_std}")
        _require(
            self.min_snr_gamma is None or self.min_snr_gamma > 0,
            f"diffusion.min_snr_gamma must be > 0 or null, got {self.min_snr_gamma}",
        )


def _check_sampling(section: str, scheduler: str, steps: int, seconds: float, guidance: float) -> None:
    _require(
        scheduler in SCHEDULERS, f"{section}.scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}"
    )
    _require(steps > 0, f"{section}.num_inference_steps must be > 0, got {steps}")
    _require(seconds > 0, f"{section}.audio_length_in_s must be > 0, got {seconds}")
    _require(guidance >= 0, f"{section}.guidance_scale must be >= 0, got {guidance}")


@dataclass
class ValidationConfig:
    """What validation measures. Every `trainer.sample_every` steps, audio for `prompts` (logged with mel
    images); every `trainer.valid_every` steps, the diffusion loss at `loss_timesteps` with noise fixed per clip,
    so loss curves compare across runs."""

    prompts: list[str] = field(default_factory=list)
    scheduler: str = "ddim"
    num_inference_steps: int = 50
    guidance_scale: float = 3.0
    audio_length_in_s: float = 5.0
    seed: int = 0
    loss_timesteps: list[int] = field(default_factory=lambda: [100, 500, 900])

    def __post_init__(self) -> None:
        _check_sampling(
            "validation", self.scheduler, self.num_inference_steps, self.audio_length_in_s, self.guidance_scale
        )
        _require(bool(self.loss_timesteps), "validation.loss_timesteps must name at least one timestep")


@dataclass
class InferenceConfig:
    """Defaults of the inference command (each has a flag). Lengths above `max_audio_length_in_s` are refused.
    `ranker` orders each prompt's candidates best first (`evaluation.ranking.parse_ranker`): "none", "auto" (the
    built-in text–audio model when there are several candidates and it is trained), "ours:<TextAudio experiment>"
    or "clap:<local CLAP folder>"; only the form is checked here, the path when generating."""

    scheduler: str = "dpmsolver++"
    num_inference_steps: int = 25
    guidance_scale: float = 3.5
    audio_length_in_s: float = 10.0
    max_audio_length_in_s: float = 60.0
    ranker: str = "auto"

    def __post_init__(self) -> None:
        _check_sampling(
            "inference", self.scheduler, self.num_inference_steps, self.audio_length_in_s, self.guidance_scale
        )
        kind, _, path = self.ranker.partition(":")
        _require(
            self.ranker in ("none", "auto") or (kind in ("ours", "clap") and bool(path)),
            f'inference.ranker must be "none", "auto", "ours:<path>" or "clap:<path>", got {self.ranker!r}',
        )


@dataclass
class AudioLDMExperiment:
    """A stage-2 experiment (see the module docstring). `vocoder` is a `models.tta.vocoders.load_vocoder` spec:
    "griffin_lim", a HiFi-GAN checkpoint or experiment folder, or a diffusers vocoder folder."""

    model_type: Literal["AudioLDM"]
    exp_name: str
    preprocess: PreprocessConfig
    autoencoder: AutoencoderConfig
    log_dir: str = "exp"
    data: DataConfig = field(default_factory=DataConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    vocoder: str = "griffin_lim"
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def __post_init__(self) -> None:
        _require(bool(self.autoencoder.checkpoint), "autoencoder.checkpoint must name the stage-1 VAE checkpoint")
        _require(
            self.unet.in_channels == self.autoencoder.latent_channels == self.unet.out_channels,
            f"unet.in_channels ({self.unet.in_channels}) and unet.out_channels ({self.unet.out_channels}) must equal "
            f"autoencoder.latent_channels ({self.autoencoder.latent_channels})",
        )
        factor = 2 ** (len(self.autoencoder.block_out_channels) - 1)
        _require(
            self.preprocess.mel.n_mels % factor == 0,
            f"preprocess.mel.n_mels ({self.preprocess.mel.n_mels}) must be a multiple of the VAE factor {factor}",
        )
        _require(
            max(self.validation.loss_timesteps) < self.diffusion.schedule.num_train_timesteps
            and min(self.validation.loss_timesteps) >= 0,
            f"validation.loss_timesteps must lie in [0, {self.diffusion.schedule.num_train_timesteps})",
        )

    @property
    def datasets(self) -> list[str]:
        return self.data.datasets or [self.preprocess.dataset]
