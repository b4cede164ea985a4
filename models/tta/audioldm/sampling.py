"""The sampling loop shared by AudioLDM and AudioLDM 2: a diffusers scheduler driving our guided denoiser."""

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import nn
from tqdm.auto import tqdm

from models.tta.audioldm.concurrent_guidance import ConcurrentGuidance, concurrent_guidance_applies
from models.tta.audioldm.diffusion import Denoiser
from modules.packed_layers import layers_packed

# Layers whose weights autocast casts to the low precision at every call (torch's autocast op lists).
_AUTOCAST_CAST_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)


@contextmanager
def weights_held_in(module: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Hold the float32 weights and biases of ``module``'s convolutions and linear layers in ``dtype`` meanwhile.

    Autocast casts every such weight to its low precision at every call; its cast cache never applies to frozen
    weights, so a sampling run would re-read the float32 weights and write the casts at every step (a quarter of
    a bf16 CPU step at full size). Casting them once gives bitwise the same outputs under autocast to ``dtype``:
    the ops see the same bf16/fp16 values, and norms and other fp32 ops keep their fp32 parameters. Costs one
    extra copy of those weights in ``dtype`` while active; the original parameters are put back on exit.
    """
    originals = []
    try:
        for layer in module.modules():
            if isinstance(layer, _AUTOCAST_CAST_LAYERS):
                for name, parameter in list(layer.named_parameters(recurse=False)):
                    if parameter.dtype == torch.float32:
                        originals.append((layer, name, parameter))
                        setattr(layer, name, nn.Parameter(parameter.detach().to(dtype), requires_grad=False))
        yield
    finally:
        for layer, name, parameter in originals:
            setattr(layer, name, parameter)


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
    cast_weights_once: bool = True,
    pack_weights: bool = True,
    concurrent_guidance: bool | None = None,
    show_progress: bool = True,
    on_step: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Denoise Gaussian latents of `shape` (B, C, H, W) into scaled clean latents (B, C, H, W), float32.

    `contexts` carry 2B rows ([negative, positive]) when guidance_scale > 1, else B rows. The initial noise is
    drawn with `generator` on the CPU (so a seed gives the same audio on any device) unless `latents` is given.
    `autocast_dtype` (e.g. torch.bfloat16) runs the UNet under autocast; the scheduler arithmetic stays fp32.
    With autocast, `cast_weights_once` holds the UNet's conv/linear weights in `autocast_dtype` for the run
    (`weights_held_in`: same outputs, no per-step weight casts). On the CPU, `pack_weights` runs the UNet's
    linear and convolution layers through oneDNN on weights reordered once for the run (`layers_packed`: the same
    precision, another summation order; not under autocast without `cast_weights_once`, where the weights stay
    fp32). The cross-attention keys and values of the contexts are projected once per run
    (`AudioLDMUNet.precompute_context`), not at every step. With guidance on a CPU running two or more intra-op
    threads and OMP_WAIT_POLICY=PASSIVE, the negative and positive halves run in two threads after the layers
    they share (`ConcurrentGuidance`; another summation order), else guidance is one batched UNet call;
    `concurrent_guidance` True uses the two threads under any OMP_WAIT_POLICY, False never.
    `on_step(index, timestep, model_input, prediction)`, if given, sees every step's UNet input (B, C, H, W: the
    variance-preserving x_t, whatever the scheduler's own scaling) and guided prediction, from which
    `Denoiser.clean_estimate` gives the step's clean-latent estimate (exact at integer timesteps; Euler's
    interpolated ones read ᾱ at the step below).
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
    cast_once = autocast_dtype is not None and cast_weights_once
    with ExitStack() as run_weights:
        if cast_once:
            run_weights.enter_context(weights_held_in(denoiser.unet, autocast_dtype))
        if pack_weights and (autocast_dtype is None or cast_once):
            run_weights.enter_context(layers_packed(denoiser.unet, autocast_dtype or torch.float32))
        has_contexts = bool(denoiser.unet.context_dims)
        halves = None
        if concurrent_guidance is not False and concurrent_guidance_applies(
            device, guidance_scale, has_contexts, any_wait_policy=bool(concurrent_guidance)
        ):
            halves = run_weights.enter_context(
                ConcurrentGuidance(denoiser.unet, contexts, context_masks, autocast_dtype=autocast_dtype)
            )
        elif has_contexts:
            with autocast:
                contexts, context_masks = denoiser.unet.precompute_context(contexts, context_masks), None
        steps = tqdm(scheduler.timesteps, desc="sampling", disable=not show_progress, leave=False)
        for index, timestep in enumerate(steps):
            model_input = scheduler.scale_model_input(latents, timestep)
            if halves is not None:
                prediction = halves(model_input, timestep, guidance_scale)
            else:
                with autocast:
                    prediction = denoiser.guided_prediction(
                        model_input, timestep, contexts, context_masks, guidance_scale
                    )
            if on_step is not None:
                on_step(index, timestep, model_input, prediction.float())
            latents = scheduler.step(prediction.float(), timestep, latents, **step_kwargs).prev_sample
    return latents
