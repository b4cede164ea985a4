"""One guided UNet sampling step of AudioLDM 2 base at 10.24 s: our AudioLDMUNet against diffusers'.

    python benchmarks/bench_unet_step.py [--repeats 8] [--precision all] [--threads 2]
        [--output benchmarks/results/unet_step.txt] [--compile] [--breakdown]

On a machine shared with other jobs, run it with OMP_WAIT_POLICY=PASSIVE in the environment: OpenMP threads
that spin while waiting make every multi-threaded op many times slower once other processes take the cores.

The step is the classifier-free-guided UNet call of the sampling loop: batch 2 ([negative, positive]) on an
8 x 256 x 16 latent (10.24 s), contexts of 8 GPT-2 vectors (2, 8, 768) and Flan-T5 states (2, 20, 1024) with a
padding mask (the negative prompt is shorter), full base size (block_out_channels 128/256/384/640, two layers per
block, cross_attention_dim [None, 768, 1024], 8 heads). Both UNets hold the same random weights: diffusers'
`AudioLDM2UNet2DConditionModel` is built from its config and its state dict is loaded into ours through the key
map. Speed does not depend on the weights.

Calls, timed in turn (A B C D A B C D ...) after a warm-up, in one process:
  diffusers            the pipeline's call: the doubled latent, raw contexts and mask
  ours                 the same call on our UNet
  ours+cache           the same, contexts projected once per sampling run by `precompute_context` (untimed)
  ours+cache+shared    the fast path: one latent row shared by both guidance halves (the UNet runs the layers
                       before the first cross-attention once) plus the cache
  ours+...+cast-once   (bf16 only) the fast path on a copy of our UNet whose conv/linear weights are held in bf16
                       for the run (`weights_held_in`; bitwise the outputs of autocast's own per-step casts, so
                       the same precision as the other bf16 calls)
  ours+...+packed      the sampling loop's default on the CPU: the fast path on a copy of our UNet whose linear
                       and convolution layers run through oneDNN on weights reordered once for the run
                       (`layers_packed`; the weights' own precision, another summation order), after the bf16
                       cast-once under autocast
  ours+...+concurrent  the sampling loop's default on a CPU with two or more threads under
                       OMP_WAIT_POLICY=PASSIVE: the packed UNet's layers before the first context read run
                       once on all threads (`AudioLDMUNet.trunk`), then the negative and the positive rows go
                       on in two threads at once, half of the intra-op threads each
                       (`ConcurrentGuidance.unet_outputs`; another summation order)
--compile adds, per precision (not bf16-weights), torch.compile of ours+cache+shared with Inductor's weight
freezing, timed against diffusers and eager ours+cache+shared (its compile time, minutes, is reported too).
--breakdown adds, per precision, where the time of diffusers' step and of ours+...+packed (the batched call the
sampling loop makes without PASSIVE) goes: attention, linear, convolution, other ops and the time between ops, each
part's GFLOP/s, and the ceiling of an exact step with that attention kernel: the linear and convolution layers at
the fastest rate the run showed (the measured matmul peak, or the step's own layers where faster), the rest as
profiled (`benchmarks/step_breakdown.py`).
Every call runs under `torch.inference_mode` and its own autocast region (the sampling loop enters autocast per
step). Precisions:
  fp32           fp32 weights, no autocast
  bf16           fp32 weights, bf16 autocast (`torch.autocast("cpu", dtype=torch.bfloat16)`): autocast casts every
                 conv/linear weight to bf16 at every step (its cast cache never applies to frozen or
                 inference-mode weights)
  bf16-weights   both models converted to bf16 (`.to(torch.bfloat16)`, as the AudioLDM 2 pipeline runs a bf16 UNet)
                 under the same autocast: no per-step weight casts, the step is compute only
Reported: median wall time per step, median CPU time (all threads; more robust than wall time when other
processes compete for the cores), the median of per-round ratios diffusers / ours, the FLOPs per step, the
achieved fraction of the measured matmul peak, and the max abs difference of each output to diffusers'.

The results file keeps everything from the line `## Optimisation log` on (hand-written notes), and rewrites the
measured part above it.
"""

import argparse
import contextlib
import copy
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import diffusers  # noqa: E402  (after the repo root is on sys.path)
import torch  # noqa: E402
from diffusers.utils import logging as diffusers_logging  # noqa: E402
from diffusers import AudioLDM2UNet2DConditionModel  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from benchmarks.step_breakdown import breakdown_lines, flop_parts  # noqa: E402
from models.tta.audioldm.concurrent_guidance import ConcurrentGuidance  # noqa: E402
from models.tta.audioldm.sampling import weights_held_in  # noqa: E402
from models.tta.audioldm.unet import AudioLDMUNet  # noqa: E402
from models.tta.audioldm.unet_key_map import (  # noqa: E402
    convert_diffusers_unet_state_dict,
    unet_kwargs_from_diffusers_config,
)
from modules.packed_layers import layers_packed  # noqa: E402

LOG_MARKER = "## Optimisation log"
PRECISIONS = ("fp32", "bf16", "bf16-weights")
LATENT_SHAPE = (8, 256, 16)
GPT2_SHAPE = (8, 768)
T5_SHAPE = (20, 1024)
NEGATIVE_T5_TOKENS = 6
BREAKDOWN_REPEATS = 5
TIMESTEP = 500
BASE_CONFIG = dict(
    sample_size=LATENT_SHAPE[1],
    in_channels=8,
    out_channels=8,
    block_out_channels=(128, 256, 384, 640),
    layers_per_block=2,
    attention_head_dim=8,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=[[None, 768, 1024]] * 4,
)

Step = Callable[[], torch.Tensor]


def autocast(dtype: torch.dtype | None) -> torch.autocast:
    """CPU autocast to ``dtype``, or a disabled region for None (fp32)."""
    return torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)


def build_models() -> tuple[AudioLDM2UNet2DConditionModel, AudioLDMUNet]:
    """diffusers' base UNet with random weights, and ours holding the same weights."""
    torch.manual_seed(0)
    reference = AudioLDM2UNet2DConditionModel(**BASE_CONFIG).eval()
    ours = AudioLDMUNet(**unet_kwargs_from_diffusers_config(dict(reference.config))).eval()
    ours.load_state_dict(convert_diffusers_unet_state_dict(reference.state_dict(), ours))
    return reference, ours


def build_inputs() -> dict[str, torch.Tensor]:
    """One latent, the guided batch (the latent twice), timestep, GPT-2 and T5 contexts, T5 mask ([neg, pos])."""
    torch.manual_seed(1)
    latent = torch.randn(1, *LATENT_SHAPE)
    t5_mask = torch.ones(2, T5_SHAPE[0], dtype=torch.bool)
    t5_mask[0, NEGATIVE_T5_TOKENS:] = False
    return dict(
        latent=latent,
        doubled=torch.cat([latent, latent]),
        timestep=torch.tensor(TIMESTEP),
        gpt2=torch.randn(2, *GPT2_SHAPE),
        t5=torch.randn(2, *T5_SHAPE),
        t5_mask=t5_mask,
    )


def step_calls(
    reference,
    ours,
    inputs,
    autocast_dtype: torch.dtype | None,
    ours_cast: AudioLDMUNet | None = None,
    ours_packed: AudioLDMUNet | None = None,
    concurrent: ConcurrentGuidance | None = None,
    compiled: Callable | None = None,
) -> dict[str, Step]:
    """The timed calls; the context caches are built here, once, under the same autocast as the steps.

    ``ours_cast``: a copy of our UNet whose conv/linear weights the caller holds in the autocast dtype
    (``weights_held_in``, as the sampling loop does under autocast); adds the "+cast-once" call.
    ``ours_packed``: a copy whose linear and convolution layers the caller runs packed (``layers_packed``, after
    the cast under autocast, as the sampling loop does on the CPU); adds the "+packed" call.
    ``concurrent``: the guidance halves of ``ours_packed`` in two threads; adds the "+concurrent" call.
    ``compiled``: ``torch.compile(ours)``; adds the "compiled" call, the fast path on ours' context cache.
    """
    contexts, masks = [inputs["gpt2"], inputs["t5"]], [None, inputs["t5_mask"]]
    with torch.no_grad(), autocast(autocast_dtype):
        cache = ours.precompute_context(contexts, masks)
        cast_cache = None if ours_cast is None else ours_cast.precompute_context(contexts, masks)
        packed_cache = None if ours_packed is None else ours_packed.precompute_context(contexts, masks)
    calls = {
        "diffusers": lambda: reference(
            inputs["doubled"],
            inputs["timestep"],
            encoder_hidden_states=inputs["gpt2"],
            encoder_hidden_states_1=inputs["t5"],
            encoder_attention_mask_1=inputs["t5_mask"],
        ).sample,
        "ours": lambda: ours(inputs["doubled"], inputs["timestep"], contexts, masks),
        "ours+cache": lambda: ours(inputs["doubled"], inputs["timestep"], cache),
        "ours+cache+shared": lambda: ours(inputs["latent"], inputs["timestep"], cache),
    }
    if ours_cast is not None:
        calls["ours+...+cast-once"] = lambda: ours_cast(inputs["latent"], inputs["timestep"], cast_cache)
    if ours_packed is not None:
        calls["ours+...+packed"] = lambda: ours_packed(inputs["latent"], inputs["timestep"], packed_cache)
    if concurrent is not None:
        calls["ours+...+concurrent"] = lambda: concurrent.unet_outputs(inputs["latent"], inputs["timestep"])
    if compiled is not None:
        calls["compiled"] = lambda: compiled(inputs["latent"], inputs["timestep"], cache)
    return calls


def time_alternated(
    calls: dict[str, Step], autocast_dtype: torch.dtype | None, repeats: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, torch.Tensor]]:
    """Wall and CPU seconds per call over ``repeats`` rounds of all calls in turn, and each call's last output."""
    walls = {name: [] for name in calls}
    cpus = {name: [] for name in calls}
    outputs = {}
    for round_index in range(warmup + repeats):
        for name, call in calls.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            with torch.inference_mode(), autocast(autocast_dtype):
                outputs[name] = call()
            if round_index >= warmup:
                walls[name].append(time.perf_counter() - started)
                cpus[name].append(time.process_time() - cpu_started)
    return walls, cpus, outputs


def count_flops(reference, ours, inputs) -> dict[str, dict[str, float]]:
    """FLOPs of one step per part (`step_breakdown.flop_parts`) for diffusers, ours+cache and ours+cache+shared.

    On CPU, `scaled_dot_product_attention` runs `_scaled_dot_product_flash_attention_for_cpu`, which
    FlopCounterMode does not know: its default count holds the convolutions and linear layers only, the
    "attention" part adds the kernel's two products.
    """
    calls = step_calls(reference, ours, inputs, None)
    return {name: flop_parts(calls[name]) for name in ("diffusers", "ours+cache", "ours+cache+shared")}


def matmul_peak(dtype: torch.dtype, sizes: tuple[int, ...] = (2048, 4096), repeats: int = 10) -> tuple[float, float]:
    """Best FLOP/s of square matmuls in ``dtype``: per wall second, and per CPU second (one core's peak).

    The CPU-time figure is the robust one on a shared machine: preemption stretches wall time, not CPU time.
    """
    best_wall, best_cpu = 0.0, 0.0
    for size in sizes:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        for _ in range(repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            a @ b
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            best_wall = max(best_wall, 2 * size**3 / wall)
            best_cpu = max(best_cpu, 2 * size**3 / max(cpu, 1e-9))
    return best_wall, best_cpu


def report_precision(
    label: str,
    walls: dict[str, list[float]],
    cpus: dict[str, list[float]],
    outputs: dict[str, torch.Tensor],
    flops: float,
    peak_per_cpu_second: float,
) -> list[str]:
    """Table rows for one precision: medians, paired ratios, throughput, fraction of peak, output differences."""
    base = "diffusers"
    lines = [
        label,
        f"  {'call':<19}{'wall s':>8}{'cpu s':>8}{'x wall':>8}{'x cpu':>8}{'GFLOP/s':>9}{'% peak':>8}"
        "  max|diff| vs diffusers",
    ]
    for name in walls:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        wall_ratio = statistics.median(b / a for a, b in zip(walls[name], walls[base], strict=True))
        cpu_ratio = statistics.median(b / a for a, b in zip(cpus[name], cpus[base], strict=True))
        difference = (outputs[name].float() - outputs[base].float()).abs().max().item()
        lines.append(
            f"  {name:<19}{wall:8.3f}{cpu:8.3f}{wall_ratio:8.2f}{cpu_ratio:8.2f}{flops / wall / 1e9:9.0f}"
            f"{100 * flops / cpu / peak_per_cpu_second:7.1f}%  {difference:.2e}"
        )
    rounds = "; ".join(f"{name} " + " ".join(f"{seconds:.2f}" for seconds in walls[name]) for name in walls)
    lines.append(f"  wall s per round: {rounds}")
    return lines


def compile_trial(
    reference, ours, inputs, autocast_dtype: torch.dtype | None, repeats: int, flops: float, peak_per_cpu_second: float
) -> list[str]:
    """torch.compile of our fast path, timed against diffusers and itself in eager mode (alternated, one process):
    the compile time (first call) and the same table rows as the precision's own table.

    Inductor's ``freezing`` is on (inference only: the weights become constants, so oneDNN convolutions and linear
    layers get pre-packed weights and constant folding applies)."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        all_calls = step_calls(reference, ours, inputs, autocast_dtype, compiled=torch.compile(ours))
        calls = {name: all_calls[name] for name in ("diffusers", "ours+cache+shared", "compiled")}
        started = time.perf_counter()
        with torch.inference_mode(), autocast(autocast_dtype):
            calls["compiled"]()
        compile_seconds = time.perf_counter() - started
        walls, cpus, outputs = time_alternated(calls, autocast_dtype, repeats, warmup=1)
    label = (f"  torch.compile (default mode, Inductor freezing) of ours+cache+shared, first call (compilation) "
             f"{compile_seconds:.0f} s; then {repeats} rounds:")
    return report_precision(label, walls, cpus, outputs, flops, peak_per_cpu_second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="timed rounds per precision")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--precision", choices=(*PRECISIONS, "all"), default="all")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "unet_step.txt")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile on our fast path (slow)")
    parser.add_argument(
        "--breakdown", action="store_true", help="also profile diffusers' and our batched step by part, with ceilings"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # diffusers warns on `.to(torch.bfloat16)` of a model built from a config; the conversion is what we want.
    diffusers_logging.set_verbosity_error()
    load_before = os.getloadavg()
    started = time.perf_counter()

    reference, ours = build_models()
    inputs = build_inputs()
    parameters = sum(parameter.numel() for parameter in ours.parameters())
    flops = count_flops(reference, ours, inputs)
    # FlopCounterMode's own count (no attention) and the count with the attention products, in GFLOPs.
    counted = {name: (sum(parts.values()) - parts["attention"]) / 1e9 for name, parts in flops.items()}
    with_attention = {name: sum(parts.values()) / 1e9 for name, parts in flops.items()}
    step_flops = with_attention["diffusers"] * 1e9
    precisions = PRECISIONS if args.precision == "all" else (args.precision,)
    # Only the peaks the chosen precisions report against: without bf16 units, a 4096^3 bf16 matmul is emulated
    # and the bf16 peak alone takes over 15 minutes.
    peak_dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {name: matmul_peak(dtype) for name, dtype in peak_dtypes.items() if any(
        precision.startswith(name) for precision in precisions)}
    if "bf16" in peaks:
        peaks["bf16-weights"] = peaks["bf16"]
    peak_text = "; ".join(
        f"{name} {peaks[name][0] / 1e9:.0f} GFLOP/s wall, {peaks[name][1] / 1e9:.0f} per CPU second"
        for name in peak_dtypes if name in peaks
    )

    lines = [
        f"bench_unet_step.py — {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {describe_cpu()}, {os.cpu_count()} CPUs, {args.threads} torch threads; torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}",
        f"load average at start {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f} (other processes may "
        "share the cores: compare the paired ratios and CPU times more than absolute wall times)",
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}",
        f"model: AudioLDM 2 base UNet, {parameters / 1e6:.1f} M parameters; step: latent {(2, *LATENT_SHAPE)}, "
        f"GPT-2 {(2, *GPT2_SHAPE)}, T5 {(2, *T5_SHAPE)} masked to {NEGATIVE_T5_TOKENS}/{T5_SHAPE[0]} tokens for the "
        "negative prompt",
        "",
        "FLOPs per step (FlopCounterMode):",
        f"  diffusers: {counted['diffusers']:.1f} GFLOPs counted by default (convolutions and linear layers; "
        f"the CPU attention kernel is not counted), {with_attention['diffusers']:.1f} GFLOPs with the "
        "attention products",
        f"  ours+cache: {counted['ours+cache']:.1f} / {with_attention['ours+cache']:.1f} GFLOPs "
        "(context keys/values projected once per run, outside the step); ours+cache+shared: "
        f"{counted['ours+cache+shared']:.1f} / {with_attention['ours+cache+shared']:.1f} GFLOPs "
        "(and the layers before the first cross-attention run on one row)",
        f"matmul peak (2048^3 and 4096^3, best of 10 each): {peak_text}",
        "GFLOP/s = diffusers' FLOPs with attention (the same work for every call) / median wall time; % peak = those "
        "FLOPs per median CPU second / the matmul's FLOPs per CPU second",
        "",
    ]
    for precision in precisions:
        dtype = None if precision == "fp32" else torch.bfloat16
        if precision == "bf16-weights":
            reference.to(torch.bfloat16)
            ours.to(torch.bfloat16)
        with contextlib.ExitStack() as stack, torch.no_grad():
            ours_cast, ours_packed = None, copy.deepcopy(ours)
            if precision == "bf16":
                ours_cast = copy.deepcopy(ours)
                stack.enter_context(weights_held_in(ours_cast, torch.bfloat16))
                stack.enter_context(weights_held_in(ours_packed, torch.bfloat16))
            packed_dtype = torch.float32 if precision == "fp32" else torch.bfloat16
            if stack.enter_context(layers_packed(ours_packed, packed_dtype)) == 0:
                raise RuntimeError(f"no layer of our UNet was packed for {precision} (oneDNN missing?)")
            concurrent = None
            if torch.get_num_threads() >= 2:
                concurrent = stack.enter_context(
                    ConcurrentGuidance(ours_packed, [inputs["gpt2"], inputs["t5"]], [None, inputs["t5_mask"]],
                                       autocast_dtype=dtype)
                )
            calls = step_calls(reference, ours, inputs, dtype, ours_cast, ours_packed, concurrent)
            walls, cpus, outputs = time_alternated(calls, dtype, args.repeats, args.warmup)
            breakdown = []
            if args.breakdown:
                breakdown = breakdown_lines(
                    {
                        "diffusers": (calls["diffusers"], reference),
                        "ours+...+packed": (calls["ours+...+packed"], ours_packed),
                    },
                    {"diffusers": flops["diffusers"], "ours+...+packed": flops["ours+cache+shared"]},
                    functools.partial(autocast, dtype),
                    peaks[precision][0],
                    BREAKDOWN_REPEATS,
                )
        del ours_cast, ours_packed, concurrent
        label = f"{precision}, {args.repeats} rounds (medians; x = diffusers / ours, median of the per-round ratios)"
        lines += report_precision(label, walls, cpus, outputs, step_flops, peaks[precision][1])
        if "ours+...+cast-once" in outputs:
            difference = (outputs["ours+...+cast-once"] - outputs["ours+cache+shared"]).abs().max().item()
            lines.append(f"  ours+...+cast-once vs ours+cache+shared (autocast's casts): max|diff| {difference:.1e}")
        lines += breakdown
        if args.compile and precision != "bf16-weights":
            lines += compile_trial(reference, ours, inputs, dtype, args.repeats, step_flops, peaks[precision][1])
        lines.append("")
    load_after = os.getloadavg()
    lines.append(
        f"load average at end {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f}; "
        f"benchmark took {time.perf_counter() - started:.0f} s"
    )
    text = "\n".join(lines) + "\n"
    print(text, end="")

    log = ""
    if args.output.is_file():
        previous = args.output.read_text(encoding="utf-8")
        if LOG_MARKER in previous:
            log = "\n" + previous[previous.index(LOG_MARKER) :]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + log, encoding="utf-8")


if __name__ == "__main__":
    main()
