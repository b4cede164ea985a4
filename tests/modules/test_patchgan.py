"""NLayerDiscriminator: layout, initialisation, output shape, and input-size check."""

import pytest
import torch
from torch import nn

from modules.discriminators.patchgan import NLayerDiscriminator


def test_default_layout_matches_taming_nlayer_discriminator():
    discriminator = NLayerDiscriminator()
    convs = [module for module in discriminator.main if isinstance(module, nn.Conv2d)]
    assert [(conv.in_channels, conv.out_channels, conv.stride[0]) for conv in convs] == [
        (1, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 1), (512, 1, 1)
    ]
    assert [conv.bias is not None for conv in convs] == [True, False, False, False, True]
    assert sum(isinstance(module, nn.BatchNorm2d) for module in discriminator.main) == 3
    assert sum(parameter.numel() for parameter in discriminator.parameters()) == 2_763_585


def test_initialisation_follows_dcgan():
    torch.manual_seed(0)
    discriminator = NLayerDiscriminator()
    conv_weights = torch.cat([m.weight.flatten() for m in discriminator.modules() if isinstance(m, nn.Conv2d)])
    norm_weights = torch.cat([m.weight for m in discriminator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert conv_weights.mean().abs().item() < 1e-3
    assert conv_weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert norm_weights.mean().item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_patch_logits_shape(norm):
    discriminator = NLayerDiscriminator(base_channels=8, norm=norm)
    logits = discriminator(torch.randn(2, 1, 64, 32))
    assert logits.shape == (2, 1, 6, 2)


def test_rejects_too_small_input_and_unknown_norm():
    with pytest.raises(ValueError, match="smaller than 24"):
        NLayerDiscriminator(base_channels=8)(torch.randn(1, 1, 64, 16))
    with pytest.raises(ValueError, match="unknown discriminator norm"):
        NLayerDiscriminator(norm="layer")
