"""Noise schedules, samplers and the denoiser wrapper around the UNet.

Schedules and samplers are diffusers' schedulers (never hand-written here); `Denoiser` owns what diffusers does
not: the training target for the prediction type (ε or v), the masked, optionally min-SNR-weighted loss (Hang et
al. 2023, "Efficient Diffusion Training via Min-SNR Weighting"), and classifier-free guidance as one batched
UNet call.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from torch import nn

from modules.transformer import PrecomputedContexts

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "ddpm": DDPMScheduler,
    "pndm": PNDMScheduler,
    "dpmsolver++": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
    "euler": EulerDiscreteScheduler,
}


@dataclass
class NoiseScheduleConfig:
    """The training noise schedule; AudioLDM 2's numbers are the defaults (REFERENCE.md)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    beta_schedule: Literal["scaled_linear", "linear", "squaredcos_cap_v2"] = "scaled_linear"
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"


def build_scheduler(name: str, schedule: NoiseScheduleConfig):
    """A diffusers sampler for `name` (one of SCHEDULERS) on the training schedule.

    DDIM gets the reference pipeline's settings (steps_offset 1, set_alpha_to_one false, "leading" spacing);
    DPM-Solver++ is the second-order multistep variant ("dpmsolver++")."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    common = dict(
        num_train_timesteps=schedule.num_train_timesteps,
        beta_start=schedule.beta_start,
        beta_end=schedule.beta_end,
        beta_schedule=schedule.beta_schedule,
        prediction_type=schedule.prediction_type,
    )
    if name == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
    if name == "pndm":
        return PNDMScheduler(**common, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    if name == "unipc":
        return UniPCMultistepScheduler(**common)
    return SCHEDULERS[name](**common)


def draw_timesteps(
    batch_size: int,
    num_train_timesteps: int,
    *,
    sampling: Literal["uniform", "logit_normal"] = "uniform",
    mean: float = 0.0,
    std: float = 1.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training timesteps (batch_size,) long in [0, num_train_timesteps).

    "uniform" draws every timestep equally often (DDPM). "logit_normal" draws t / T = sigmoid(n), n ~ N(mean,
    std) (Esser et al. 2024, "Scaling Rectified Flow Transformers", §3.1): the middle noise levels, where the
    content of a clip is decided, get most of the updates, and the nearly clean and nearly pure-noise ends fewer."""
    if sampling == "uniform":
        return torch.randint(0, num_train_timesteps, (batch_size,), device=device)
    if sampling == "logit_normal":
        fraction = torch.sigmoid(torch.randn(batch_size, device=device) * std + mean)
        return (fraction * num_train_timesteps).long().clamp(max=num_train_timesteps - 1)
    raise ValueError(f"unknown timestep sampling {sampling!r}; choose uniform or logit_normal")


class Denoiser(nn.Module):
    """The UNet plus its training objective.

    `unet(sample (B,C,H,W), timestep (B,), contexts, context_masks) -> (B,C,H,W)` predicts ε or v.
    """

    def __init__(self, *, unet: nn.Module, schedule: NoiseScheduleConfig, min_snr_gamma: float | None = None):
        super().__init__()
        self.unet = unet
        self.prediction_type = schedule.prediction_type
        self.min_snr_gamma = min_snr_gamma
        self.train_scheduler = DDPMScheduler(
            num_train_timesteps=schedule.num_train_timesteps,
            beta_start=schedule.beta_start,
            beta_end=schedule.beta_end,
            beta_schedule=schedule.beta_schedule,
            prediction_type=schedule.prediction_type,
        )
        self.register_buffer("alphas_cumprod", self.train_scheduler.alphas_cumprod.clone().float(), persistent=False)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the UNet learns to output: ε, or v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x0 (Salimans & Ho 2022)."""
        if self.prediction_type == "epsilon":
            return noise
        alpha_bar = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * latents

    def clean_estimate(self, noisy: torch.Tensor, timesteps: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """The clean latents x0 (B,C,H,W) that a UNet prediction (ε or v, as `target`) implies for `noisy` (B,C,H,W)
        at `timesteps` (B,) or (): the inverse of `target` given x_t = sqrt(ᾱ) x0 + sqrt(1-ᾱ) ε."""
        alpha_bar = self.alphas_cumprod[timesteps.long()].reshape(-1, 1, 1, 1)
        if self.prediction_type == "epsilon":
            return (noisy - (1 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()
        return alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * prediction

    def loss_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-sample weights (B,): ones, or min-SNR-γ weights for the prediction type."""
        if self.min_snr_gamma is None:
            return torch.ones(timesteps.shape[0], device=timesteps.device)
        alpha_bar = self.alphas_cumprod[timesteps]
        snr = alpha_bar / (1 - alpha_bar)
        clipped = snr.clamp(max=self.min_snr_gamma)
        return clipped / snr if self.prediction_type == "epsilon" else clipped / (snr + 1)

    def loss(
        self,
        latents: torch.Tensor,
        contexts: Sequence[torch.Tensor],
        context_masks: Sequence[torch.Tensor | None] | None,
        *,
        timesteps: torch.Tensor,
        noise: torch.Tensor,
        latent_mask: torch.Tensor | None = None,
        weighted: bool = True,
    ) -> torch.Tensor:
        """MSE between the UNet output and the target, min-SNR-weighted per sample when `weighted` (training) and
        the model has a gamma; validation passes False, so runs trained with other weightings compare.

        latents (B,C,H,W) clean scaled latents; timesteps (B,) long; noise like latents; latent_mask (B,1,H,1)
        or (B,1,H,W) with 0 on padded time steps, which then do not count. Returns a scalar."""
        noisy = self.train_scheduler.add_noise(latents, noise, timesteps)
        prediction = self.unet(noisy, timesteps, contexts, context_masks)
        squared_error = F.mse_loss(prediction.float(), self.target(latents, noise, timesteps).float(), reduction="none")
        if latent_mask is None:
            per_sample = squared_error.mean(dim=(1, 2, 3))
        else:
            mask = latent_mask.expand_as(squared_error)
            per_sample = (squared_error * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp(min=1)
        return (per_sample * self.loss_weights(timesteps)).mean() if weighted else per_sample.mean()

    def guided_prediction(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        contexts: Sequence[torch.Tensor] | PrecomputedContexts,
        context_masks: Sequence[torch.Tensor | None] | None,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Classifier-free guidance (Ho & Salimans 2022) as one batched UNet call.

        With guidance, contexts hold 2B rows in the order [negative/unconditional, positive]; latents (B,C,H,W)
        are passed once: the UNet shares each latent row between its two context rows and runs the layers before
        the first cross-attention on B rows only (see ``AudioLDMUNet.forward``). ``contexts`` may also be the
        UNet's ``precompute_context`` of the 2B rows (``context_masks`` None).
        """
        if guidance_scale <= 1.0:
            return self.unet(latents, timestep, contexts, context_masks)
        negative, positive = self.unet(latents, timestep, contexts, context_masks).chunk(2)
        return self.combine_guidance(negative, positive, guidance_scale)

    @staticmethod
    def combine_guidance(negative: torch.Tensor, positive: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """Classifier-free guidance: ``negative + scale * (positive - negative)``, the predictions (B, C, H, W)
        for the negative (or unconditional) and the positive contexts."""
        return negative + guidance_scale * (positive - negative)
