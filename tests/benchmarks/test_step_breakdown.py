"""benchmarks/step_breakdown.py: ops land in the right part, FLOPs and profiled times are split by part, and the
ceiling moves only the products to the peak."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from torch.utils.flop_counter import FlopCounterMode

from benchmarks.step_breakdown import (
    PARTS,
    breakdown_lines,
    ceiling_seconds,
    flop_parts,
    layers_marked,
    op_part,
    part_rates,
    profile_parts,
)
from modules.packed_layers import NARROW_MAP_WIDTH, layers_packed, packing_supported


class TinyStep(torch.nn.Module):
    """A convolution, a linear layer, a self-attention and a norm: one op of each part."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.linear = torch.nn.Linear(channels, 3 * channels)
        self.norm = torch.nn.GroupNorm(4, channels)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(self.conv(sample))
        tokens = hidden.flatten(2).transpose(1, 2)
        query, key, value = self.linear(tokens).unflatten(-1, (3, 2, -1)).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(query, key, value)
        return attended.transpose(1, 2).flatten(2)


@pytest.mark.parametrize(
    "name, part",
    [
        ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
        ("aten::scaled_dot_product_attention", "attention"),
        ("aten.convolution", "convolution"),
        ("aten::conv2d", "convolution"),
        ("mkldnn::_convolution_pointwise", "convolution"),
        ("aten::linear", "linear"),
        ("mkldnn::_linear_pointwise", "linear"),
        ("aten.addmm", "linear"),
        ("aten::bmm", "linear"),
        ("aten::group_norm", "other"),
        ("aten::add_", "other"),
        ("aten::mul", "other"),
        ("aten::upsample_linear1d", "other"),
        ("aten::_convert_indices_from_coo_to_csr", "other"),
        ("aten::einsum", "linear"),
        ("aten::_efficient_attention_forward", "attention"),
        ("layer: linear", "linear"),
        ("layer: convolution", "convolution"),
    ],
)
def test_op_part_sorts_op_names_of_the_profiler_and_the_flop_counter(name, part):
    assert op_part(name) == part


def test_flop_parts_counts_each_part_exactly():
    torch.manual_seed(0)
    model, sample = TinyStep(), torch.randn(2, 16, 8, 4)
    flops = flop_parts(lambda: model(sample))
    tokens = 8 * 4
    assert flops["convolution"] == 2 * 2 * 16 * 16 * 9 * tokens
    assert flops["linear"] == 2 * 2 * tokens * 16 * 48
    # QK^T and AV: 2 products of 2 * batch * heads * tokens^2 * head size.
    assert flops["attention"] == 2 * 2 * 2 * 2 * tokens * tokens * 8
    assert flops["other"] == 0


def test_flop_parts_without_attention_is_the_counters_own_total():
    torch.manual_seed(0)
    model, sample = TinyStep(), torch.randn(2, 16, 8, 4)
    flops = flop_parts(lambda: model(sample))
    plain = FlopCounterMode(display=False)
    with plain, torch.inference_mode():
        model(sample)
    assert sum(flops.values()) - flops["attention"] == plain.get_total_flops()


def test_profile_parts_times_every_part_within_the_step():
    torch.manual_seed(0)
    model, sample = TinyStep(), torch.randn(2, 16, 8, 4)
    # Top-level ops only: a nested op counted again would push the parts past the step's wall time.
    parts = profile_parts(lambda: model(sample), model, contextlib.nullcontext, repeats=3)
    assert set(parts) == {*PARTS, "between ops", "step"}
    assert all(parts[name] > 0 for name in PARTS)
    assert 0 <= parts["between ops"] < parts["step"]


def test_ceiling_runs_only_the_products_at_the_peak_and_never_slows_a_faster_part():
    parts = {"attention": 0.3, "linear": 0.4, "convolution": 0.2, "other": 0.1, "between ops": 0.05}
    flops = {"attention": 1e9, "linear": 100e9, "convolution": 100e9, "other": 0.0}
    # linear at 400 GFLOP/s: 0.25 s; convolution as measured (0.2 s, faster than 100 GFLOPs at the peak).
    assert ceiling_seconds(parts, flops, peak=400e9) == pytest.approx(0.3 + 0.25 + 0.2 + 0.1 + 0.05)


def test_part_rates_skip_parts_without_flops_or_time():
    parts = {"attention": 0.5, "linear": 0.0, "convolution": 0.25, "other": 0.1}
    flops = {"attention": 0.0, "linear": 10e9, "convolution": 50e9, "other": 0.0}
    assert part_rates(parts, flops) == {"attention": None, "linear": None, "convolution": 200e9}


def test_breakdown_lines_report_every_call_against_the_first():
    torch.manual_seed(0)
    model, sample = TinyStep(), torch.randn(2, 16, 8, 4)

    def call():
        return model(sample)

    lines = breakdown_lines(
        {"reference": (call, model), "same": (call, model)},
        {"reference": flop_parts(call), "same": flop_parts(call)},
        contextlib.nullcontext,
        peak=1e11,
        repeats=2,
    )
    rows = [line.split() for line in lines if line.strip().startswith(("reference", "same"))]
    assert [row[0] for row in rows] == ["reference", "same"]
    assert all(len(row) == 1 + len(PARTS) + 2 + 2 for row in rows)
    rates = lines[lines.index(next(line for line in lines if line.strip().startswith("reference"))) + 1].split()
    assert len(rates) == 3 and all(float(rate) > 0 for rate in rates)
    assert "x max: reference's profiled step / ceiling" in lines[-1]


def marked_events(model: torch.nn.Module, sample: torch.Tensor) -> list:
    """The top-level events of one profiled call of ``model`` with its layers marked."""
    with layers_marked(model), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        model(sample)
    return [event for event in profiler.events() if event.cpu_parent is None]


def descendants(event) -> list[str]:
    """The names of every event under ``event``."""
    return [name for child in event.cpu_children for name in (child.name, *descendants(child))]


@pytest.mark.skipif(not packing_supported(torch.float32), reason="oneDNN packing unavailable")
def test_a_packed_convolution_on_a_narrow_map_counts_as_convolution_whatever_ops_it_runs():
    torch.manual_seed(0)
    model, sample = TinyStep(), torch.randn(2, 16, 8, NARROW_MAP_WIDTH)
    with torch.no_grad(), layers_packed(model) as swapped:
        assert swapped == 2
        events = marked_events(model, sample)
    parts = [op_part(event.name) for event in events]
    # The narrow-map path's gather and matrix product are inside the convolution's range, not a second "linear".
    assert parts.count("convolution") == 1 and parts.count("linear") == 1 and parts.count("attention") == 1
    convolution = events[parts.index("convolution")]
    assert "mkldnn::_linear_pointwise" in descendants(convolution)
    assert "mkldnn::_convolution_pointwise" not in descendants(convolution)


def test_layers_marked_removes_its_hooks():
    model = TinyStep()
    with layers_marked(model):
        assert model.conv._forward_pre_hooks and model.linear._forward_hooks
    assert not model.conv._forward_pre_hooks and not model.linear._forward_hooks


class FailingLinear(torch.nn.Linear):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("broken layer")


def test_a_layer_that_raises_closes_its_range_at_once_and_the_hooks_go():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), FailingLinear(4, 4))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        with layers_marked(model):
            with pytest.raises(RuntimeError, match="broken layer"):
                model(torch.randn(2, 4))
            # Still inside the marks: a range left open would hold this op.
            torch.ones(3).mul_(2)
    assert [event.cpu_parent for event in profiler.events() if event.name == "aten::mul_"] == [None]
    marks = [event for event in profiler.events() if event.name == "layer: linear"]
    assert len(marks) == 2 and all(event.cpu_parent is None for event in marks)
    assert not any(layer._forward_pre_hooks or layer._forward_hooks for layer in model)
