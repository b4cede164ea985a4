"""Linear and convolution layers on oneDNN-packed weights give ``nn.Linear``'s and ``nn.Conv2d``'s outputs, and the
swap is undone."""

import pytest
import torch
from torch import nn

import modules.packed_layers as packed_layers
from modules.packed_layers import PackedConv2d, PackedLinear, layers_packed, packing_supported

pytestmark = pytest.mark.skipif(not packing_supported(torch.float32), reason="this PyTorch build has no oneDNN")


def _linear(in_features=24, out_features=40, bias=True):
    torch.manual_seed(0)
    return nn.Linear(in_features, out_features, bias=bias)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("leading", [(5,), (2, 7), (2, 3, 4)])
def test_fp32_matches_nn_linear(bias, leading):
    linear = _linear(bias=bias)
    inputs = torch.randn(*leading, 24)
    with torch.no_grad():
        expected, actual = linear(inputs), PackedLinear(linear)(inputs)
    assert actual.shape == expected.shape == (*leading, 40)
    assert actual.dtype == torch.float32
    # Only the summation order differs: fp32 rounding of sums of 24 products of size ~1.
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not packing_supported(torch.bfloat16), reason="no oneDNN bfloat16 on this CPU")
def test_bf16_weights_match_autocast_and_return_bf16():
    linear = _linear()
    inputs = torch.randn(6, 24)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = linear(inputs)
        actual = PackedLinear(linear.to(torch.bfloat16))(inputs)
    assert actual.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(actual.float(), expected.float(), atol=0.02, rtol=0.02)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize(
    "geometry",
    [dict(kernel_size=3, padding=1), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=1, bias=False),
     dict(kernel_size=(3, 1), padding=(1, 0), dilation=(2, 1)), dict(kernel_size=3, padding=1, groups=4)],
    ids=["3x3", "stride2", "1x1-nobias", "dilated", "grouped"],
)
def test_conv_matches_nn_conv2d(geometry, memory_format):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, **geometry)
    packed = PackedConv2d(conv)
    with torch.no_grad():
        for height in (10, 7):  # a second input shape gets its own reordered weight
            inputs = torch.randn(2, 8, height, 6).contiguous(memory_format=memory_format)
            expected, actual = conv(inputs), packed(inputs)
            assert actual.shape == expected.shape
            torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert len(packed.packed_weights) == 2


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize(
    ("geometry", "width"),
    [(dict(kernel_size=3, padding=1), 2), (dict(kernel_size=3, padding=1), 1), (dict(kernel_size=(3, 5), padding=(0, 2)), 2),
     (dict(kernel_size=3, padding=1, bias=False), 2)],
    ids=["3x3-w2", "3x3-w1", "3x5-unpadded-rows", "3x3-nobias"],
)
def test_narrow_maps_run_as_a_matrix_product_and_match_nn_conv2d(geometry, width, memory_format):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, **geometry)
    packed = PackedConv2d(conv)
    inputs = torch.randn(2, 8, 9, width).contiguous(memory_format=memory_format)
    with torch.no_grad():
        expected, actual = conv(inputs), packed(inputs)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    # The matrix-product path ran (no oneDNN convolution weight was made); a wider map takes oneDNN's.
    assert packed.packed_columns_weight is not None and packed.packed_weights == {}
    with torch.no_grad():
        wider = torch.randn(2, 8, 9, packed_layers.NARROW_MAP_WIDTH + 1)
        torch.testing.assert_close(packed(wider), conv(wider), atol=1e-5, rtol=1e-5)
    assert len(packed.packed_weights) == 1


@pytest.mark.parametrize(
    "geometry",
    [dict(kernel_size=1), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, padding=1, groups=4)],
    ids=["1x1", "stride2", "grouped"],
)
def test_other_convolutions_on_narrow_maps_stay_on_onednn(geometry):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, **geometry)
    packed = PackedConv2d(conv)
    inputs = torch.randn(2, 8, 9, 2)
    with torch.no_grad():
        torch.testing.assert_close(packed(inputs), conv(inputs), atol=1e-5, rtol=1e-5)
    assert packed.packed_columns_weight is None and len(packed.packed_weights) == 1


def test_a_kernel_wider_than_the_padded_narrow_map_is_an_error_as_in_nn_conv2d():
    conv = nn.Conv2d(8, 12, kernel_size=3)
    inputs = torch.randn(1, 8, 9, 2)
    with torch.no_grad():
        with pytest.raises(RuntimeError):
            conv(inputs)
        with pytest.raises(RuntimeError):
            PackedConv2d(conv)(inputs)


@pytest.mark.skipif(not packing_supported(torch.bfloat16), reason="no oneDNN bfloat16 on this CPU")
@pytest.mark.parametrize("width", [6, 2], ids=["onednn", "narrow-map"])
def test_bf16_conv_matches_autocast_and_returns_bf16(width):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, kernel_size=3, padding=1)
    inputs = torch.randn(2, 8, 10, width)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = conv(inputs)
        packed = PackedConv2d(conv.to(torch.bfloat16))
        actual = packed(inputs)
    assert actual.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(actual.float(), expected.float(), atol=0.05, rtol=0.02)
    assert (packed.packed_columns_weight is not None) == (width <= packed_layers.NARROW_MAP_WIDTH)


class _Nested(nn.Module):
    """Three linear layers and a convolution to pack (at several depths); a reflect-padded Conv2d and a Conv1d
    that stay."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(8, 16)
        self.stack = nn.Sequential(nn.GELU(), nn.Linear(16, 16), nn.ModuleList([nn.Linear(16, 4)]))
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.reflect_conv = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
        self.conv1d = nn.Conv1d(4, 4, 1)

    def forward(self, inputs):
        """(B, N, 8) -> (B, 4, N), N even (the convolutions see N/2 x 2 maps)."""
        hidden = self.stack[2][0](self.stack[1](self.stack[0](self.first(inputs))))
        maps = hidden.transpose(1, 2).reshape(hidden.shape[0], 4, -1, 2)
        return self.conv1d(self.reflect_conv(self.conv(maps)).flatten(2))


def test_every_linear_and_conv2d_is_swapped_and_put_back():
    model = _Nested().eval()
    originals = dict(model.named_modules())
    inputs = torch.randn(2, 6, 8)
    with torch.no_grad():
        expected = model(inputs)
        with layers_packed(model) as swapped:
            assert swapped == 4
            assert isinstance(model.conv, PackedConv2d) and isinstance(model.stack[2][0], PackedLinear)
            assert type(model.reflect_conv) is nn.Conv2d and type(model.conv1d) is nn.Conv1d
            actual = model(inputs)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert dict(model.named_modules()).keys() == originals.keys()
    assert all(module is originals[name] for name, module in model.named_modules())


def test_layers_are_put_back_when_the_body_fails():
    model = _Nested().eval()
    originals = dict(model.named_modules())
    with pytest.raises(RuntimeError, match="boom"), torch.no_grad(), layers_packed(model):
        raise RuntimeError("boom")
    assert all(module is originals[name] for name, module in model.named_modules())


def test_nothing_is_packed_under_grad_mode_in_another_dtype_or_without_onednn(monkeypatch):
    model = _Nested().requires_grad_(False)
    with torch.enable_grad(), layers_packed(model) as swapped:
        assert swapped == 0  # a reordered weight has no autograd
    with torch.no_grad(), layers_packed(model, torch.bfloat16) as swapped:
        assert swapped == 0  # float32 weights: packing them would compute in float32, not in the caller's bf16
    monkeypatch.setattr(packed_layers, "packing_supported", lambda dtype: False)
    with torch.no_grad(), layers_packed(model) as swapped:
        assert swapped == 0
        assert isinstance(model.first, nn.Linear)


def test_unsupported_layers_stay():
    class Subclass(nn.Linear):
        pass

    model = nn.ModuleDict(
        dict(
            same_padding=nn.Conv2d(4, 4, 3, padding="same"),
            subclass=Subclass(4, 4),
            on_meta=nn.Linear(4, 4, device="meta"),
            packable=nn.Linear(4, 4),
        )
    )
    with torch.no_grad(), layers_packed(model) as swapped:
        assert swapped == 1
        assert isinstance(model["packable"], PackedLinear)


def test_gradients_flow_when_a_packed_layer_is_called_under_grad_mode():
    model = _Nested()
    inputs = torch.randn(2, 6, 8, requires_grad=True)
    model(inputs).square().sum().backward()
    expected = inputs.grad.clone()
    inputs.grad = None
    with torch.no_grad(), layers_packed(model) as swapped:
        assert swapped == 4
        with torch.enable_grad():
            model(inputs).square().sum().backward()
    torch.testing.assert_close(inputs.grad, expected)
