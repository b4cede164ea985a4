"""Linear and convolution layers run by oneDNN on weights reordered once, for inference on the CPU.

At every call, ``F.linear`` on a float32 CPU tensor hands the weight to the BLAS (MKL in PyTorch's CPU wheels),
which repacks it for its kernel and, on AMD CPUs, picks slower kernels; ``F.conv2d`` reorders the weight into
oneDNN's blocked layout. ``layers_packed`` swaps every ``nn.Linear`` and ``nn.Conv2d`` of a module for a layer
that keeps the reordered weight (``PackedLinear``, ``PackedConv2d``) while a sampling run lasts, and puts the
original layers back afterwards. On a 2-core AVX-512 EPYC this made the AudioLDM 2 UNet's guided float32 step
about 1.2x faster (benchmarks/results/unet_step.txt). The arithmetic stays in the weight's own precision (float32
products summed in float32, or bfloat16 products summed in float32 as autocast's kernels do); only the
summation order differs.

The ops are the ones Inductor's weight freezing uses on the CPU (``torch.ops.mkldnn._reorder_linear_weight``,
``_linear_pointwise``, ``_reorder_convolution_weight``, ``_convolution_pointwise``). They are private to
PyTorch: ``packing_supported`` tries them once per dtype, and ``layers_packed`` changes nothing where they fail
or oneDNN is missing, on other devices, and under grad mode (a reordered weight has no autograd).
"""

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@functools.cache
def packing_supported(dtype: torch.dtype) -> bool:
    """True when this PyTorch build runs oneDNN linear and convolution layers on CPU weights of ``dtype``: one
    tiny call of each op, compared with ``F.linear`` and ``F.conv2d``."""
    if dtype not in (torch.float32, torch.bfloat16) or not torch.backends.mkldnn.is_available():
        return False
    try:
        with torch.no_grad():
            generator = torch.Generator().manual_seed(0)
            linear, conv = nn.Linear(4, 3).to(dtype), nn.Conv2d(2, 3, 3, padding=1).to(dtype)
            rows = torch.randn(5, 4, generator=generator).to(dtype)
            maps = torch.randn(1, 2, 4, 4, generator=generator).to(dtype)
            tolerance = 1e-5 if dtype == torch.float32 else 2e-2
            linear_ok = torch.allclose(PackedLinear(linear)(rows), linear(rows), atol=tolerance)
            return linear_ok and torch.allclose(PackedConv2d(conv)(maps), conv(maps), atol=tolerance)
    except (AttributeError, RuntimeError, TypeError):  # an op missing, renamed, or with another signature
        return False


class PackedLinear(nn.Module):
    """``y = x W^T + b`` for x (..., in_features) -> (..., out_features), with W held in oneDNN's blocked layout.

    Inputs are cast to the weight's dtype first (what autocast does for ``F.linear``), so a bfloat16 layer under
    autocast returns bfloat16 as the layer it replaces would. The reordered weight is a copy made at the first
    call; it goes stale if the weight changes afterwards. Under grad mode the layer computes ``F.linear``, so
    gradients still flow.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The layer's own parameters stay visible (code reads their dtype and device); only the copy is used.
        self.weight, self.bias = linear.weight, linear.bias
        self.packed_weight: torch.Tensor | None = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.weight.dtype)
        if torch.is_grad_enabled():
            return F.linear(inputs, self.weight, self.bias)
        leading = inputs.shape[:-1]
        rows = inputs.reshape(-1, self.in_features)
        if self.packed_weight is None:
            # oneDNN picks the blocked layout for this many rows; other row counts reuse it (still correct).
            self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), rows.shape[0])
        outputs = torch.ops.mkldnn._linear_pointwise(rows, self.packed_weight, self.bias, "none", [], "")
        return outputs.reshape(*leading, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.weight.dtype}"


# Maps at most this wide run a convolution with a kernel larger than 1x1 as one matrix product over gathered
# k_h*k_w*C_in columns instead of oneDNN's direct convolution, whose kernels block the output width for vector
# registers and waste most of them on a map 2 wide: on the AudioLDM 2 UNet's 32 x 2 maps the product was 1.3-2.7x
# faster (2-core AVX-512 EPYC, bf16 and fp32), on its 64 x 4 maps slower (benchmarks/results/unet_step.txt,
# session-14 log).
NARROW_MAP_WIDTH = 2


class PackedConv2d(nn.Module):
    """A zero-padded 2-D convolution (B, C_in, H, W) -> (B, C_out, H', W') on a weight reordered by oneDNN.

    The reordered weight depends on the input's shape, so one is made per input shape seen (a sampling run sees
    one per layer). The output may come back channels-last whatever the input's memory format (oneDNN's choice,
    kept: converting back costs a copy and measured slower); values and shape are the convolution's. Inputs are
    cast to the weight's dtype, as autocast does. Under grad mode the layer computes ``F.conv2d``. A stride-1,
    undilated, ungrouped convolution with a kernel larger than 1x1 on a map at most ``NARROW_MAP_WIDTH`` wide runs
    as a matrix product over gathered columns (im2col) with a oneDNN-packed (C_out, k_h*k_w*C_in) weight instead.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        # In the order and form (lists) the oneDNN ops take; F.conv2d takes them too.
        self.padding, self.stride, self.dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
        self.groups = conv.groups
        self.packed_weights: dict[tuple[int, ...], torch.Tensor] = {}
        self.packed_columns_weight: torch.Tensor | None = None
        kernel_height, kernel_width = conv.kernel_size
        self.columns_apply = (
            kernel_height * kernel_width > 1 and self.stride == [1, 1] and self.dilation == [1, 1] and self.groups == 1
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.weight.dtype)
        if torch.is_grad_enabled():
            return F.conv2d(inputs, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.columns_apply and inputs.shape[-1] <= NARROW_MAP_WIDTH:
            out_height, out_width = self._output_size(inputs)
            if out_height > 0 and out_width > 0:  # else oneDNN's path raises the convolution's own error
                return self._as_matrix_product(inputs, out_height, out_width)
        geometry = (self.padding, self.stride, self.dilation, self.groups)
        shape = tuple(inputs.shape)
        if shape not in self.packed_weights:
            self.packed_weights[shape] = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight.detach(), *geometry, list(shape)
            )
        return torch.ops.mkldnn._convolution_pointwise(
            inputs, self.packed_weights[shape], self.bias, *geometry, "none", [], ""
        )

    def _output_size(self, inputs: torch.Tensor) -> tuple[int, int]:
        """(H', W') of the stride-1, undilated convolution of ``inputs`` (B, C_in, H, W); < 1 if the kernel does
        not fit in the padded map."""
        return tuple(
            size + 2 * pad - kernel + 1
            for size, pad, kernel in zip(inputs.shape[-2:], self.padding, self.weight.shape[-2:], strict=True)
        )

    def _as_matrix_product(self, inputs: torch.Tensor, out_height: int, out_width: int) -> torch.Tensor:
        """The stride-1 convolution of (B, C_in, H, W) as (B*H'*W', k_h*k_w*C_in) columns times the packed weight;
        returns (B, C_out, H', W'), channels-last in memory."""
        out_channels, in_channels, kernel_height, kernel_width = self.weight.shape
        batch = inputs.shape[0]
        pad_height, pad_width = self.padding
        if self.packed_columns_weight is None:
            # Columns are ordered (kernel row, kernel column, input channel), as gathered below.
            matrix = self.weight.detach().permute(0, 2, 3, 1).reshape(out_channels, -1).contiguous()
            self.packed_columns_weight = torch.ops.mkldnn._reorder_linear_weight(
                matrix, batch * out_height * out_width
            )
        padded = F.pad(inputs.permute(0, 2, 3, 1), (0, 0, pad_width, pad_width, pad_height, pad_height))
        columns = torch.stack(
            [padded[:, row : row + out_height, column : column + out_width]
             for row in range(kernel_height) for column in range(kernel_width)],
            dim=3,
        )  # (B, H', W', k_h * k_w, C_in)
        outputs = torch.ops.mkldnn._linear_pointwise(
            columns.reshape(-1, kernel_height * kernel_width * in_channels), self.packed_columns_weight, self.bias,
            "none", [], "",
        )
        return outputs.view(batch, out_height, out_width, out_channels).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        out_channels, in_channels_per_group, *kernel = self.weight.shape
        return (f"{in_channels_per_group * self.groups}, {out_channels}, kernel_size={tuple(kernel)}, "
                f"stride={tuple(self.stride)}, padding={tuple(self.padding)}, groups={self.groups}, "
                f"dtype={self.weight.dtype}")


def _packed(layer: nn.Module, dtype: torch.dtype) -> nn.Module | None:
    """The packed stand-in for ``layer``, or None when it cannot or should not be packed."""
    if type(layer) is nn.Linear:
        packed_type = PackedLinear
    elif type(layer) is nn.Conv2d and layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        packed_type = PackedConv2d
    else:
        return None
    weight = layer.weight
    if weight.device.type != "cpu" or weight.dtype != dtype or not torch.backends.mkldnn.enabled:
        return None
    return packed_type(layer) if packing_supported(dtype) else None


@contextmanager
def layers_packed(module: nn.Module, dtype: torch.dtype = torch.float32) -> Iterator[int]:
    """Run every packable ``nn.Linear`` and ``nn.Conv2d`` inside ``module`` on oneDNN-reordered weights until the
    block ends; yields how many layers were swapped.

    Packable: a plain ``nn.Linear`` or zero-padded ``nn.Conv2d`` on the CPU whose weight is in ``dtype`` (the
    precision the caller computes in: float32, or bfloat16 where oneDNN supports it, for weights held in bf16
    under bf16 autocast), entered with grad mode off. Enter it after anything that replaces the weights (e.g.
    ``weights_held_in``): each layer keeps the weight it had at entry and reorders it at its first call. Costs one
    more copy of those weights while active. The original layers are put back on exit, also on errors; forward
    hooks registered on them do not run meanwhile.
    """
    targets = []
    if not torch.is_grad_enabled():
        targets = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()]
    swapped = []
    try:
        for parent, name, child in targets:
            packed = _packed(child, dtype)
            if packed is not None:
                setattr(parent, name, packed)
                swapped.append((parent, name, child))
        yield len(swapped)
    finally:
        for parent, name, child in reversed(swapped):
            setattr(parent, name, child)
