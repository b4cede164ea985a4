"""The sampling loop shared by AudioLDM and AudioLDM 2: a diffusers scheduler driving our guided denoiser."""

import inspect
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from models.tta.audioldm.diffusion import Denoiser


@torch.no_grad()
def sample_latents(
    denoiser: Denoiser,
    scheduler,
    *,
    shape: tuple[int, int, int, int],
    contexts: Sequence[torch.Tensor],
    context_masks: Sequence[torch.Tensor | None] | None,
    guidance_scale: float,
    num_inference_steps: int,
    generator: torch.Generator | None = None,
    latents: torch.Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = True,
) -> torch.Tensor:
    """Denoise Gaussian latents of `shape` (B, C, H, W) into scaled clean latents (B, C, H, W), float32.

    `contexts` carry 2B rows ([negative, positive]) when guidance_scale > 1, else B rows. The initial noise is
    drawn with `generator` on the CPU (so a seed gives the same audio on any device) unless `latents` is given.
    `autocast_dtype` (e.g. torch.bfloat16) runs the UNet under autocast; the scheduler arithmetic stays fp32.
    """
    device = next(denoiser.parameters()).device
    scheduler.set_timesteps(num_inference_steps, device=device)
    if latents is None:
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
    latents = latents * scheduler.init_noise_sigma
    step_kwargs = {}
    step_parameters = inspect.signature(scheduler.step).parameters
    if "generator" in step_parameters:
        step_kwargs["generator"] = generator
    if "eta" in step_parameters:
        step_kwargs["eta"] = 0.0
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    for timestep in tqdm(scheduler.timesteps, desc="sampling", disable=not show_progress, leave=False):
        model_input = scheduler.scale_model_input(latents, timestep)
        with autocast:
            prediction = denoiser.guided_prediction(model_input, timestep, contexts, context_masks, guidance_scale)
        latents = scheduler.step(prediction.float(), timestep, latents, **step_kwargs).prev_sample
    return latents
