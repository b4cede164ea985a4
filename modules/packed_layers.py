"""Linear and convolution layers run by oneDNN on weights reordered once, for inference on the CPU.

At every call, ``F.linear`` on a float32 CPU tensor hands the weight to the BLAS (MKL in PyTorch's CPU wheels),
which repacks it for its kernel and, on AMD CPUs, picks slower kernels; ``F.conv2d`` reorders the weight into
oneDNN's blocked layout. ``layers_packed`` swaps every ``nn.Linear`` and ``nn.Conv2d`` of a module for a layer
that keeps the reordered weight (``PackedLinear``, ``PackedConv2d``) while a sampling run lasts, and puts the
original layers back afterwards. On a 2-core AVX-512 EPYC this made the AudioLDM 2 UNet's guided float32 step
1.1-1.2x faster (benchmarks/results/unet_step.txt). The arithmetic stays in the weight's own precision (float32
products summed in float32, or bfloat16 products summed in float32 as autocast's kernels do); only the
summation order differs.

The ops are the ones Inductor's weight freezing uses on the CPU (``torch.ops.mkldnn._reorder_linear_weight``,
``_linear_pointwise``, ``_reorder_convolution_weight``, ``_convolution_pointwise``). They are private to
PyTorch: ``packing_supported`` checks that they exist, and ``layers_packed`` changes nothing where they or oneDNN
are missing, on other devices, and for weights that train (a reordered weight has no gradient).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_ONEDNN_OPS = ("_reorder_linear_weight", "_linear_pointwise", "_reorder_convolution_weight", "_convolution_pointwise")


def packing_supported(dtype: torch.dtype) -> bool:
    """True when this PyTorch build can run oneDNN linear and convolution layers on CPU weights of ``dtype``."""
    mkldnn = torch.ops.mkldnn
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    if not all(hasattr(mkldnn, name) for name in _ONEDNN_OPS):
        return False
    if dtype == torch.float32:
        return True
    return dtype == torch.bfloat16 and mkldnn._is_mkldnn_bf16_supported()


class PackedLinear(nn.Module):
    """``y = x W^T + b`` for x (..., in_features) -> (..., out_features), with W held in oneDNN's blocked layout.

    Inputs are cast to the weight's dtype first (what autocast does for ``F.linear``), so a bfloat16 layer under
    autocast returns bfloat16 as the layer it replaces would. Inference only: the reordered weight is a copy
    with no gradient, made at the first call, and it goes stale if the weight changes afterwards.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The layer's own parameters stay visible (code reads their dtype and device); only the copy is used.
        self.weight, self.bias = linear.weight, linear.bias
        self.packed_weight: torch.Tensor | None = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        leading = inputs.shape[:-1]
        rows = inputs.reshape(-1, self.in_features).to(self.weight.dtype)
        if self.packed_weight is None:
            # oneDNN picks the blocked layout for this many rows; other row counts reuse it (still correct).
            self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), rows.shape[0])
        bias = None if self.bias is None else self.bias.detach()
        outputs = torch.ops.mkldnn._linear_pointwise(rows, self.packed_weight, bias, "none", [], "")
        return outputs.reshape(*leading, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.weight.dtype}"


class PackedConv2d(nn.Module):
    """A zero-padded 2-D convolution (B, C_in, H, W) -> (B, C_out, H', W') on a weight reordered by oneDNN.

    The reordered weight depends on the input's shape, so one is made per input shape seen (a sampling run sees
    one per layer). The output may come back channels-last whatever the input's memory format (oneDNN's choice);
    values and shape are the convolution's. Inputs are cast to the weight's dtype, as autocast does.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.packed_weights: dict[tuple[int, ...], torch.Tensor] = {}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.weight.dtype)
        padding, stride, dilation, groups = self.geometry
        shape = tuple(inputs.shape)
        if shape not in self.packed_weights:
            self.packed_weights[shape] = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight.detach(), padding, stride, dilation, groups, list(shape)
            )
        bias = None if self.bias is None else self.bias.detach()
        return torch.ops.mkldnn._convolution_pointwise(
            inputs, self.packed_weights[shape], bias, padding, stride, dilation, groups, "none", [], ""
        )

    def extra_repr(self) -> str:
        out_channels, in_channels_per_group, *kernel = self.weight.shape
        padding, stride, _, groups = self.geometry
        return (f"{in_channels_per_group * groups}, {out_channels}, kernel_size={tuple(kernel)}, stride={stride}, "
                f"padding={padding}, groups={groups}, dtype={self.weight.dtype}")


def _packed(layer: nn.Module) -> nn.Module | None:
    """The packed stand-in for ``layer``, or None when it cannot or should not be packed."""
    if type(layer) is nn.Linear:
        packed_type = PackedLinear
    elif type(layer) is nn.Conv2d and layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        packed_type = PackedConv2d
    else:
        return None
    weight = layer.weight
    trains = torch.is_grad_enabled() and weight.requires_grad
    if weight.device.type != "cpu" or trains or not packing_supported(weight.dtype):
        return None
    return packed_type(layer)


@contextmanager
def layers_packed(module: nn.Module) -> Iterator[int]:
    """Meanwhile, run every packable ``nn.Linear`` and ``nn.Conv2d`` inside ``module`` on oneDNN-reordered
    weights; yields how many layers were swapped.

    Packable: a plain ``nn.Linear`` or zero-padded ``nn.Conv2d`` on the CPU, with float32 weights (bfloat16 where
    oneDNN supports it), not about to be trained (grad mode off or a frozen weight). Enter it after anything that
    replaces the weights (e.g. ``weights_held_in``): each layer keeps the weight it had at entry and reorders it
    at its first call. Costs one more copy of those weights while active. The original layers are put back on
    exit, also on errors; forward hooks registered on them do not run meanwhile.
    """
    targets = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()]
    swapped = []
    try:
        for parent, name, child in targets:
            packed = _packed(child)
            if packed is not None:
                setattr(parent, name, packed)
                swapped.append((parent, name, child))
        yield len(swapped)
    finally:
        for parent, name, child in reversed(swapped):
            setattr(parent, name, child)
