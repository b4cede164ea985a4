"""Classifier-free guidance with its two halves computed side by side on the CPU.

One batched UNet call over the [negative, positive] rows splits every operation across torch's intra-op threads,
which on few cores pays a synchronisation at every op (thousands per step) and splits small matrix products
finely. ``ConcurrentGuidance`` instead runs the negative and the positive rows as two UNet calls in two threads,
each with half of the intra-op threads. On a 2-core AVX-512 EPYC this made the AudioLDM 2 base UNet's guided step
x1.10 faster in bf16 and x1.17 in fp32, although each half then runs the layers before the first cross-attention
on its own (``AudioLDMUNet.forward`` shares them between the halves of one batched call); see the
"ours+...+concurrent" rows in benchmarks/results/unet_step.txt. GPUs keep the batched call.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from models.tta.audioldm.diffusion import Denoiser
from modules.transformer import PrecomputedContexts


def concurrent_guidance_applies(device: torch.device, guidance_scale: float, has_contexts: bool) -> bool:
    """True where ``ConcurrentGuidance`` is used by default: guided sampling with contexts on a CPU where torch
    runs at least two intra-op threads, unless OMP_WAIT_POLICY=ACTIVE. With ACTIVE the calling thread's idle
    OpenMP workers spin without end and take a core from the two halves (a bf16 step took 1.78 s instead of
    1.24 s); with PASSIVE or the default policy they sleep."""
    spinning = os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "ACTIVE"
    return (
        device.type == "cpu" and guidance_scale > 1.0 and has_contexts and torch.get_num_threads() >= 2
        and not spinning
    )


class ConcurrentGuidance:
    """The guided prediction of ``unet`` (an ``AudioLDMUNet``) for contexts fixed over a sampling run, its halves
    in two threads.

    ``contexts`` and ``context_masks`` hold 2B rows, [negative, positive], as for ``Denoiser.guided_prediction``;
    each half's cross-attention keys and values are projected once here (``precompute_context``) under autocast to
    ``autocast_dtype`` (None: fp32), which the calls use too. Each thread computes with ``threads_per_half``
    intra-op threads (default: half of ``torch.get_num_threads()``); the first call runs both halves in the
    calling thread instead, one after the other, as a warm-up. Grad mode is off in the threads: this is for
    sampling only. Use it as a context manager, or call ``close`` to stop the threads.
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        contexts: Sequence[torch.Tensor],
        context_masks: Sequence[torch.Tensor | None] | None,
        *,
        autocast_dtype: torch.dtype | None = None,
        threads_per_half: int | None = None,
    ) -> None:
        rows = contexts[0].shape[0]
        if rows % 2 != 0:
            raise ValueError(f"guided contexts need an even number of rows ([negative, positive]), got {rows}")
        self.unet = unet
        self.device_type = next(unet.parameters()).device.type
        self.autocast_dtype = autocast_dtype
        masks = [None] * len(contexts) if context_masks is None else list(context_masks)
        self.halves: list[PrecomputedContexts] = []
        with torch.no_grad(), self._autocast():
            for half in range(2):
                half_contexts = [context.chunk(2)[half] for context in contexts]
                half_masks = [None if mask is None else mask.chunk(2)[half] for mask in masks]
                self.halves.append(self.unet.precompute_context(half_contexts, half_masks))
        self._warmed_up = False
        threads = threads_per_half or max(1, torch.get_num_threads() // 2)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="guidance-half", initializer=torch.set_num_threads,
                                        initargs=(threads,))

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def _half(self, latents: torch.Tensor, timestep: torch.Tensor, contexts: PrecomputedContexts) -> torch.Tensor:
        # Grad mode and autocast are per thread, so each call sets them for its own.
        with torch.no_grad(), self._autocast():
            return self.unet(latents, timestep, contexts)

    def unet_outputs(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The UNet's outputs (2B, C, H, W), [negative, positive], for latents (B, C, H, W), as one batched call of
        the UNet on both halves of the contexts would give them (up to summation order)."""
        if not self._warmed_up:
            # The first call runs the halves one after the other here, on all threads: layers that prepare
            # something at their first call (packed layers reorder their weights) then do it once with every
            # thread, not twice at once with one thread each (an fp32 first step took 4.3 s instead of 3.0 s).
            self._warmed_up = True
            return torch.cat([self._half(latents, timestep, half) for half in self.halves])
        calls = [self._pool.submit(self._half, latents, timestep, half) for half in self.halves]
        return torch.cat([call.result() for call in calls])

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """The guided prediction (B, C, H, W) for latents (B, C, H, W) at ``timestep``."""
        negative, positive = self.unet_outputs(latents, timestep).chunk(2)
        return Denoiser.combine_guidance(negative, positive, guidance_scale)

    def close(self) -> None:
        """Stop the two threads (waits for a call in flight)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "ConcurrentGuidance":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
