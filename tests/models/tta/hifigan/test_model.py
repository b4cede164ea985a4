"""Shape, length, weight-norm and size tests of the HiFi-GAN generator."""

import pytest
import torch

from models.tta.hifigan.model import HifiGanGenerator

TINY = dict(
    model_in_dim=8,
    upsample_initial_channel=32,
    upsample_rates=(5, 4, 2, 2, 2),
    upsample_kernel_sizes=(16, 16, 8, 4, 4),
    resblock_kernel_sizes=(3, 7),
    resblock_dilation_sizes=((1, 3, 5), (1, 3)),
)


def _randomise(generator: HifiGanGenerator) -> HifiGanGenerator:
    """Fan-in scaled weights: HiFi-GAN's N(0, 0.01) initialisation gives waveforms too small to compare."""
    with torch.no_grad():
        for name, parameter in generator.named_parameters():
            fan_in = parameter[0].numel() if name.endswith("weight") else 1
            parameter.normal_(0.0, fan_in**-0.5)
    return generator


def test_waveform_shape_and_range():
    torch.manual_seed(0)
    generator = _randomise(HifiGanGenerator(**TINY))
    mel = torch.randn(3, 11, 8)
    waveform = generator(mel)
    assert generator.hop_length == 160
    # The AudioLDM 2 kernels make the first stage give 5 × frames + 1 (REFERENCE.md: output slightly longer).
    assert generator.num_samples(11) == 160 * 11 + 32
    assert waveform.shape == (3, generator.num_samples(11))
    assert waveform.abs().max() <= 1.0
    assert waveform.std() > 1e-3


def test_output_length_is_exact_hop_multiple_for_even_kernels():
    generator = HifiGanGenerator(**{**TINY, "upsample_rates": (4, 4), "upsample_kernel_sizes": (8, 8)})
    assert generator.hop_length == 16
    assert generator(torch.randn(1, 9, 8)).shape == (1, 9 * 16) == (1, generator.num_samples(9))


def test_normalize_before_uses_mean_and_scale():
    torch.manual_seed(0)
    generator = _randomise(HifiGanGenerator(**TINY, normalize_before=True)).eval()
    mel = torch.randn(2, 6, 8)
    with torch.no_grad():
        generator.mean.fill_(0.5)
        generator.scale.fill_(2.0)
        normalised = generator(mel)
        generator.normalize_before = False
        torch.testing.assert_close(normalised, generator((mel - 0.5) / 2.0))
        assert (normalised - generator(mel)).abs().max() > 0.01


def test_weight_norm_round_trip_keeps_output():
    torch.manual_seed(0)
    generator = HifiGanGenerator(**TINY, use_weight_norm=True).eval()
    assert generator.has_weight_norm
    assert "conv_in.parametrizations.weight.original0" in generator.state_dict()
    assert "stages.0.resblocks.1.dilated_convs.1.parametrizations.weight.original1" in generator.state_dict()
    mel = torch.randn(2, 7, 8)
    with torch.no_grad():
        before = generator(mel)
        generator.remove_weight_norm()
        after = generator(mel)
    assert not generator.has_weight_norm
    assert "conv_in.weight" in generator.state_dict()
    assert not any("parametrizations" in key for key in generator.state_dict())
    torch.testing.assert_close(before, after, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="not applied"):
        generator.remove_weight_norm()
    generator.apply_weight_norm()
    with pytest.raises(RuntimeError, match="already applied"):
        generator.apply_weight_norm()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    generator = HifiGanGenerator(**TINY, use_weight_norm=True)
    generator(torch.randn(2, 5, 8)).pow(2).mean().backward()
    missing = [name for name, p in generator.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize(
    "override, message",
    [
        ({"upsample_kernel_sizes": (16, 16, 8, 4)}, "equal length"),
        ({"resblock_dilation_sizes": ((1, 3, 5),)}, "equal length"),
        ({"upsample_initial_channel": 48}, "divisible"),
        ({"upsample_kernel_sizes": (4, 16, 8, 4, 4)}, "at least its rate"),
    ],
)
def test_bad_configuration_raises(override, message):
    with pytest.raises(ValueError, match=message):
        HifiGanGenerator(**{**TINY, **override})


def test_bad_input_shape_raises():
    generator = HifiGanGenerator(**TINY)
    with pytest.raises(ValueError, match=r"\(B, frames, 8\)"):
        generator(torch.randn(2, 8, 11, 1))
    with pytest.raises(ValueError, match=r"\(B, frames, 8\)"):
        generator(torch.randn(2, 8, 11))


def test_full_size_parameter_count_matches_reference():
    with torch.device("meta"):
        generator = HifiGanGenerator()
    count = sum(p.numel() for p in generator.parameters())
    # REFERENCE.md: the AudioLDM 2 vocoder has ≈55.3 M parameters.
    assert abs(count - 55.3e6) / 55.3e6 < 0.01
