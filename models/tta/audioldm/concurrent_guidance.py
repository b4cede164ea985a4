"""Classifier-free guidance with its two halves computed side by side on the CPU.

One batched UNet call over the [negative, positive] rows splits every operation across torch's intra-op threads
and synchronises them at every op (thousands per step). With OMP_WAIT_POLICY=PASSIVE, the setting to use on a
machine shared with other jobs, idle OpenMP threads sleep and each op first has to wake them.
``ConcurrentGuidance`` instead runs the negative and the positive rows as two UNet calls in two threads, each with
half of the intra-op threads, so nothing waits between ops. The layers before the first context read, the same
for both halves, run first, once, on all threads (``AudioLDMUNet.trunk``), as the batched call shares them too.

On a 2-core AVX-512 EPYC under PASSIVE, the AudioLDM 2 base UNet's guided step ran x1.08-1.14 faster than the
batched call (per-round medians of a 12-round run, fp32 / bf16 / bf16 weights; the "ours+...+concurrent" rows of
benchmarks/results/unet_step.txt, session 15). With GNU libgomp's default policy (threads spin briefly before
sleeping) it was x1.03-1.04 for that UNet, but x0.99-1.00 for the full AudioLDM UNet and x0.96 (bf16) to x1.01
(fp32) for the quickstart's, which shares no layers (pooled text embedding; `benchmarks/bench_sampling.py
--guidance compare`, results/sampling.txt); under ACTIVE x0.7 (an idle OpenMP thread spins without end and takes
a core from the halves). So it is the sampling loop's default only where the environment says PASSIVE. GPUs keep
the batched call.
"""

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from models.tta.audioldm.diffusion import Denoiser
from models.tta.audioldm.unet import UNetTrunk
from modules.transformer import PrecomputedContexts


def concurrent_guidance_applies(
    device: torch.device, guidance_scale: float, has_contexts: bool, *, any_wait_policy: bool = False
) -> bool:
    """True where ``ConcurrentGuidance`` is used by default: guided sampling with contexts on a CPU where torch
    runs at least two intra-op threads and the environment sets OMP_WAIT_POLICY=PASSIVE (read at call time;
    libgomp reads it when it loads, so set it before starting Python). ``any_wait_policy`` drops the last
    condition (to measure the halves under other policies)."""
    sleeping = any_wait_policy or os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"
    return device.type == "cpu" and guidance_scale > 1.0 and has_contexts and torch.get_num_threads() >= 2 and sleeping


class ConcurrentGuidance:
    """The guided prediction of ``unet`` (an ``AudioLDMUNet``) for contexts fixed over a sampling run, its halves
    in two threads.

    ``contexts`` and ``context_masks`` hold 2B rows, [negative, positive], as for ``Denoiser.guided_prediction``;
    each half's cross-attention keys and values are projected once here (``precompute_context``) under autocast to
    ``autocast_dtype`` (None: fp32), which the calls use too. Each thread computes with ``threads_per_half``
    intra-op threads (default: the caller's ``torch.get_num_threads()`` shared out between them), after the layers
    both halves share (``AudioLDMUNet.trunk``, where the UNet has them) ran once in the calling thread; the first
    call runs both halves in the calling thread instead, one after the other, as a warm-up. Grad mode is off in the
    threads: this is for sampling only. Use it as a context manager, or call ``close`` to stop the threads.
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
        self._lock = threading.Lock()
        caller_threads = torch.get_num_threads()
        if threads_per_half is None:  # the caller's threads shared out; an odd one goes to one of the halves
            self._thread_counts = [max(1, (caller_threads + 1) // 2), max(1, caller_threads // 2)]
        else:
            self._thread_counts = [threads_per_half] * 2
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="guidance-half", initializer=self._start_thread)
        # Start both threads now (two tasks that wait for each other need two threads). torch.set_num_threads also
        # stores the count as the process-wide default that threads created later start with, so it is put back to
        # the caller's once both have set their own.
        both_running = threading.Barrier(2)
        for started in [self._pool.submit(both_running.wait) for _ in range(2)]:
            started.result()
        torch.set_num_threads(caller_threads)

    def _start_thread(self) -> None:
        # A thread's first torch op copies the process-wide count into it; get_num_threads makes that happen here,
        # while the process-wide count is this thread's own (the lock keeps the other thread from changing it).
        with self._lock:
            torch.set_num_threads(self._thread_counts.pop())
            torch.get_num_threads()

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def _trunk(self, latents: torch.Tensor, timestep: torch.Tensor) -> UNetTrunk | None:
        """The layers both halves share, run in the calling thread (all its threads), or None if the UNet has
        none to share."""
        if self.unet.trunk_block is None:
            return None
        with torch.no_grad(), self._autocast():
            return self.unet.trunk(latents, timestep)

    def _half(
        self, latents: torch.Tensor, timestep: torch.Tensor, contexts: PrecomputedContexts, trunk: UNetTrunk | None
    ) -> torch.Tensor:
        # Grad mode and autocast are per thread, so each call sets them for its own.
        with torch.no_grad(), self._autocast():
            return self.unet(latents, timestep, contexts, trunk=trunk)

    def _half_outputs(self, latents: torch.Tensor, timestep: torch.Tensor) -> list[torch.Tensor]:
        """The negative and the positive outputs, each (B, C, H, W)."""
        trunk = self._trunk(latents, timestep)
        if not self._warmed_up:
            # The first call runs the halves one after the other here, on all threads: layers that prepare
            # something at their first call (packed layers reorder their weights) then do it once with every
            # thread, not twice at once with one thread each (an fp32 first step took 2.9 s instead of 4.3 s).
            self._warmed_up = True
            return [self._half(latents, timestep, half, trunk) for half in self.halves]
        calls = [self._pool.submit(self._half, latents, timestep, half, trunk) for half in self.halves]
        return [call.result() for call in calls]

    def unet_outputs(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The UNet's outputs (2B, C, H, W), [negative, positive], for latents (B, C, H, W), as one batched call of
        the UNet on both halves of the contexts would give them (up to summation order)."""
        return torch.cat(self._half_outputs(latents, timestep))

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """The guided prediction (B, C, H, W) for latents (B, C, H, W) at ``timestep``."""
        negative, positive = self._half_outputs(latents, timestep)
        return Denoiser.combine_guidance(negative, positive, guidance_scale)

    def close(self) -> None:
        """Stop the two threads (waits for a call in flight)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "ConcurrentGuidance":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
