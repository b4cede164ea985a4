"""Where the time of one UNet step goes, and the least time an exact step could take on this CPU.

Used by `bench_unet_step.py --breakdown`. A step is profiled (`torch.profiler`, CPU ops) with every linear and
convolution layer's call marked as one range (`layers_marked`: nn.Linear, nn.Conv2d and their packed stand-ins,
whatever ops they run: a packed convolution on a narrow map is a gather and a matrix product). The time of every
top-level event (a marked layer, or an op the model's Python code calls, its children included) goes into one of
four parts (`op_part`):
  attention     scaled_dot_product_attention (on the CPU: the flash kernel both models share)
  linear        linear layers, and matmuls outside them (aten::linear, addmm, mm, bmm; oneDNN's _linear_pointwise)
  convolution   convolution layers, and convolutions outside them (aten::conv2d / convolution)
  other         everything else: norms, activations, adds, copies, cat
The step's wall time minus those four is "between ops": Python and dispatch, plus what the profiler itself adds.

The FLOPs of each part come from FlopCounterMode on an unpacked call doing the same work (the counter does not
know the packed layers' oneDNN ops), with the CPU flash kernel's products added (`flop_parts`). The ceiling of an
exact step (`ceiling_seconds`) keeps the attention, other and between-ops time as measured and runs the linear
and convolution FLOPs at the fastest rate this CPU showed in the same run (the square-matmul peak, or a step's
linear or convolution layers where faster): the step if every product ran at that rate and nothing else changed.
"""

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from modules.packed_layers import PackedConv2d, PackedLinear

PARTS = ("attention", "linear", "convolution", "other")
PRODUCT_PARTS = ("attention", "linear", "convolution")  # the parts FlopCounterMode counts FLOPs for
LAYER_PARTS = ("linear", "convolution")  # the parts a ceiling runs at the peak
LAYER_MARKS = {"layer: linear": (nn.Linear, PackedLinear), "layer: convolution": (nn.Conv2d, PackedConv2d)}
# Op names (without the namespace) of each product part: the dispatcher's names (the profiler's events) and
# FlopCounterMode's packets. Exact names: "upsample_linear1d" is not a linear layer, "_convert_..." no convolution.
OPS = {
    "attention": frozenset({
        "scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_attention_math",
        "_flash_attention_forward", "_efficient_attention_forward",
    }),
    "linear": frozenset({
        "linear", "_linear_pointwise", "mkldnn_linear", "addmm", "_addmm_activation", "mm", "bmm", "baddbmm",
        "matmul", "addmv", "mv", "einsum",
    }),
    "convolution": frozenset({
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "convolution", "_convolution",
        "mkldnn_convolution", "_convolution_pointwise", "_slow_conv2d_forward", "cudnn_convolution",
    }),
}


@contextlib.contextmanager
def layers_marked(model: nn.Module) -> Iterator[None]:
    """Mark every linear and convolution layer's call inside ``model`` as one profiler range ("layer: linear",
    "layer: convolution") until the block ends. For calls made by one thread: the ranges are one stack.

    A layer that raises still closes its range (``always_call``); the hooks are removed on exit, also on errors.
    """
    open_ranges = []

    def opener(mark: str) -> Callable:
        def pre_hook(module, args) -> None:
            open_ranges.append(torch.profiler.record_function(mark))
            open_ranges[-1].__enter__()

        return pre_hook

    def close(module, args, output) -> None:
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for module in model.modules():
        for mark, layer_types in LAYER_MARKS.items():
            if isinstance(module, layer_types):
                handles.append(module.register_forward_pre_hook(opener(mark)))
                handles.append(module.register_forward_hook(close, always_call=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def op_part(name: str) -> str:
    """The part of a layer mark ("layer: linear") or an op, by the op's name ("aten::addmm", "aten.convolution",
    "mkldnn::_linear_pointwise")."""
    if name in LAYER_MARKS:
        return name.removeprefix("layer: ")
    pieces = name.replace("::", ".").split(".")
    short = pieces[1] if len(pieces) > 1 else pieces[0]
    return next((part for part, names in OPS.items() if short in names), "other")


def cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention kernel (its two products), which FlopCounterMode does not count itself."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_parts(call: Callable[[], object]) -> dict[str, float]:
    """FLOPs of one ``call`` per part (the attention products included), counted by FlopCounterMode."""
    counter = FlopCounterMode(
        display=False,
        custom_mapping={torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash_flops},
    )
    with counter, torch.inference_mode():
        call()
    parts = dict.fromkeys(PARTS, 0.0)
    for op, flops in counter.get_flop_counts()["Global"].items():
        parts[op_part(str(op))] += flops
    return parts


def profile_parts(
    call: Callable[[], object], model: nn.Module, autocast: Callable[[], object], repeats: int
) -> dict[str, float]:
    """Median seconds per part over ``repeats`` profiled calls, plus "between ops" and "step" (the wall time).

    ``model``: the module ``call`` runs, whose layers are marked (`layers_marked`); ``autocast`` makes the call's
    autocast region (entered inside the timed part, as the step timings do).
    """
    per_call = {name: [] for name in (*PARTS, "between ops", "step")}
    for _ in range(repeats):
        profiling = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        with layers_marked(model), profiling as profiler:
            started = time.perf_counter()
            with torch.inference_mode(), autocast():
                call()
            wall = time.perf_counter() - started
        seconds = dict.fromkeys(PARTS, 0.0)
        for event in profiler.events():
            if event.cpu_parent is None:
                seconds[op_part(event.name)] += event.cpu_time_total / 1e6
        for name in PARTS:
            per_call[name].append(seconds[name])
        per_call["between ops"].append(wall - sum(seconds.values()))
        per_call["step"].append(wall)
    return {name: statistics.median(values) for name, values in per_call.items()}


def ceiling_seconds(parts: dict[str, float], flops: dict[str, float], peak: float) -> float:
    """The step with linear and convolution at ``peak`` FLOP/s (or as measured where faster), the rest as measured."""
    products = sum(min(parts[part], flops[part] / peak) for part in LAYER_PARTS)
    return parts["attention"] + parts["other"] + parts["between ops"] + products


def part_rates(parts: dict[str, float], flops: dict[str, float]) -> dict[str, float | None]:
    """FLOP/s of each product part: its FLOPs over its seconds; None where either is zero (FLOPs are filed by op,
    times by the outermost marked layer, so a part can hold FLOPs without time, e.g. a matmul inside a convolution
    layer)."""
    return {part: flops[part] / parts[part] if flops[part] and parts[part] > 0 else None for part in PRODUCT_PARTS}


def breakdown_lines(
    calls: dict[str, tuple[Callable[[], object], nn.Module]],
    flops: dict[str, dict[str, float]],
    autocast: Callable[[], object],
    peak: float,
    repeats: int,
) -> list[str]:
    """Report rows: each call's profiled parts with the product parts' GFLOP/s, and each call's ceiling.

    ``calls`` and ``flops`` share their keys (``calls[name]``: the call and the module it runs; ``flops[name]``:
    `flop_parts` of an unpacked call doing the same work); the first call is the reference: "x max" is its profiled
    step over each ceiling (both profiled, so the profiler's own cost is on both sides), the largest speed-up over
    it an exact step could reach. ``peak``: the matmul peak in FLOP/s per wall second.
    """
    measured = {name: profile_parts(call, model, autocast, repeats) for name, (call, model) in calls.items()}
    rates = {name: part_rates(parts, flops[name]) for name, parts in measured.items()}
    # The fastest products this CPU demonstrably runs: the square matmul, or a step's layers where faster.
    product_peak = max(
        [peak] + [rate[part] for rate in rates.values() for part in LAYER_PARTS if rate[part]]
    )
    reference = next(iter(measured))
    header = "".join(f"{name:>13}" for name in (*PARTS, "between ops", "step"))
    lines = [
        f"  where the time goes (torch.profiler, median of {repeats} profiled calls each; profiling adds a little "
        "to every op): seconds, and GFLOP/s",
        f"  {'call':<19}{header}{'ceiling':>10}{'x max':>9}",
    ]
    for name, parts in measured.items():
        ceiling = ceiling_seconds(parts, flops[name], product_peak)
        cells = "".join(f"{parts[part]:13.3f}" for part in (*PARTS, "between ops", "step"))
        lines.append(f"  {name:<19}{cells}{ceiling:10.3f}{measured[reference]['step'] / ceiling:9.2f}")
        rate_cells = "".join(f"{'-':>13}" if rate is None else f"{rate / 1e9:13.0f}" for rate in rates[name].values())
        lines.append(f"  {'':<19}{rate_cells}")
    lines.append(
        f"  ceiling: attention, other and between ops as measured, linear and convolution FLOPs at "
        f"{product_peak / 1e9:.0f} GFLOP/s (the matmul peak, {peak / 1e9:.0f} GFLOP/s wall, or the fastest layers "
        f"above where faster); x max: {reference}'s profiled step / ceiling, the largest speed-up over it an exact "
        "step with that attention kernel could reach"
    )
    return lines
