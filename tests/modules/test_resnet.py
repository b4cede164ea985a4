"""ResnetBlock2D / Downsample2D / Upsample2D: shapes and numeric parity with diffusers on shared weights."""

import pytest
import torch
from diffusers.models.downsampling import Downsample2D as ReferenceDownsample2D
from diffusers.models.resnet import ResnetBlock2D as ReferenceResnetBlock2D
from diffusers.models.upsampling import Upsample2D as ReferenceUpsample2D

from modules.resnet import Downsample2D, ResnetBlock2D, Upsample2D


@pytest.mark.parametrize("out_channels, temb_channels", [(16, None), (32, 12), (16, 12)])
def test_resnet_block_matches_diffusers(out_channels, temb_channels):
    torch.manual_seed(0)
    reference = ReferenceResnetBlock2D(in_channels=16, out_channels=out_channels, temb_channels=temb_channels,
                                       groups=4, eps=1e-6).eval()
    ours = ResnetBlock2D(in_channels=16, out_channels=out_channels, temb_channels=temb_channels, groups=4).eval()
    ours.load_state_dict(reference.state_dict())
    hidden = torch.randn(2, 16, 6, 5)
    temb = torch.randn(2, temb_channels) if temb_channels else None
    with torch.no_grad():
        expected = reference(hidden, temb)
        actual = ours(hidden, temb)
    assert actual.shape == (2, out_channels, 6, 5)
    assert (ours.conv_shortcut is None) == (out_channels == 16)
    assert torch.allclose(actual, expected, atol=1e-6)


def test_resnet_block_temb_changes_output_and_is_required():
    torch.manual_seed(0)
    block = ResnetBlock2D(in_channels=8, temb_channels=4, groups=2).eval()
    hidden = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        first = block(hidden, torch.randn(1, 4))
        second = block(hidden, torch.randn(1, 4))
    assert not torch.allclose(first, second)
    with pytest.raises(ValueError, match="temb"):
        block(hidden)


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("size", [(8, 6), (7, 5)])
def test_downsample_matches_diffusers(padding, size):
    torch.manual_seed(0)
    reference = ReferenceDownsample2D(4, use_conv=True, out_channels=6, padding=padding, name="op")
    ours = Downsample2D(channels=4, out_channels=6, padding=padding)
    ours.load_state_dict(reference.state_dict())
    hidden = torch.randn(2, 4, *size)
    with torch.no_grad():
        expected = reference(hidden)
        actual = ours(hidden)
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, atol=1e-6)
    if size == (8, 6):
        assert actual.shape == (2, 6, 4, 3)


@pytest.mark.parametrize("output_size", [None, (9, 7)])
def test_upsample_matches_diffusers(output_size):
    torch.manual_seed(0)
    reference = ReferenceUpsample2D(4, use_conv=True, out_channels=6)
    ours = Upsample2D(channels=4, out_channels=6)
    ours.load_state_dict(reference.state_dict())
    hidden = torch.randn(2, 4, 5, 4)
    with torch.no_grad():
        expected = reference(hidden, output_size=output_size)
        actual = ours(hidden, output_size=output_size)
    assert actual.shape == ((2, 6, 10, 8) if output_size is None else (2, 6, 9, 7))
    assert torch.allclose(actual, expected, atol=1e-6)
