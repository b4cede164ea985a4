"""Shape and normalisation tests of the multi-period and multi-scale discriminators (tiny CPU widths)."""

import pytest
import torch
from torch.nn.utils import parametrize

from modules.discriminators.hifigan import MultiPeriodDiscriminator, MultiScaleDiscriminator

TINY_MPD = dict(channels=(4, 8, 16, 16, 16))
TINY_MSD = dict(channels=(8, 8, 16, 16, 32, 32, 32), groups=(1, 4, 4, 4, 4, 4, 1))


def _normalisation(module: torch.nn.Module) -> str:
    (parametrization,) = module.parametrizations.weight
    return type(parametrization).__name__


@pytest.mark.parametrize("num_samples", [1200, 1201])
def test_multi_period_shapes(num_samples):
    torch.manual_seed(0)
    discriminator = MultiPeriodDiscriminator(**TINY_MPD)
    logits, features = discriminator(torch.randn(2, num_samples))
    assert len(logits) == len(features) == 5
    for period, sub_logits, sub_features in zip((2, 3, 5, 7, 11), logits, features):
        # Five strided convs (the last with stride 1) and the output conv, as in the paper.
        assert len(sub_features) == 6
        assert [f.shape[1] for f in sub_features] == [4, 8, 16, 16, 16, 1]
        height = -(-num_samples // period)
        for _ in range(4):
            height = (height - 1) // 3 + 1
        assert sub_features[-1].shape == (2, 1, height, period)
        assert sub_logits.shape == (2, height * period)


def test_multi_period_uses_weight_norm_everywhere():
    discriminator = MultiPeriodDiscriminator(**TINY_MPD)
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 * 6
    assert {_normalisation(conv) for conv in convs} == {"_WeightNorm"}


def test_multi_scale_shapes_and_pooling():
    torch.manual_seed(0)
    discriminator = MultiScaleDiscriminator(**TINY_MSD)
    logits, features = discriminator(torch.randn(2, 1024))
    assert len(logits) == len(features) == 3
    # Strides multiply to 64; each later scale sees the waveform average-pooled by 2 (1024 → 513 → 257).
    for scale_logits, scale_features, length in zip(logits, features, (1024, 513, 257)):
        assert len(scale_features) == 8
        assert [f.shape[1] for f in scale_features] == [8, 8, 16, 16, 32, 32, 32, 1]
        assert scale_features[0].shape == (2, 8, length)
        assert scale_logits.shape == (2, -(-length // 64))


def test_multi_scale_spectral_norm_only_on_first_scale():
    discriminator = MultiScaleDiscriminator(**TINY_MSD)
    kinds = [
        {_normalisation(m) for m in sub.modules() if isinstance(m, torch.nn.Conv1d)}
        for sub in discriminator.discriminators
    ]
    assert kinds == [{"_SpectralNorm"}, {"_WeightNorm"}, {"_WeightNorm"}]
    assert all(parametrize.is_parametrized(conv) for conv in discriminator.discriminators[0].convs)


def test_multi_scale_bad_widths_raise():
    with pytest.raises(ValueError, match="7 entries"):
        MultiScaleDiscriminator(channels=(8, 8, 16), groups=(1, 4, 4))


def test_gradients_reach_waveform_and_parameters():
    torch.manual_seed(0)
    waveform = torch.randn(2, 900, requires_grad=True)
    for discriminator in (MultiPeriodDiscriminator(**TINY_MPD), MultiScaleDiscriminator(**TINY_MSD)):
        logits, _ = discriminator(waveform)
        sum(sub.mean() for sub in logits).backward()
        assert all(p.grad is not None for p in discriminator.parameters())
    assert waveform.grad.abs().sum() > 0


def _conv_size(c_in: int, c_out: int, kernel: int, groups: int = 1) -> int:
    return c_in // groups * c_out * kernel + c_out


def test_full_size_widths_follow_the_paper():
    with torch.device("meta"):
        mpd, msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    assert [conv.out_channels for conv in mpd.discriminators[0].convs] == [32, 128, 512, 1024, 1024]
    assert [conv.groups for conv in msd.discriminators[0].convs] == [1, 4, 16, 16, 16, 16, 1]
    # Weight counts of the layer lists in Kong et al. 2020 (appendix), leaving out the norm gains g.
    period_size = sum(
        _conv_size(c_in, c_out, 5) for c_in, c_out in [(1, 32), (32, 128), (128, 512), (512, 1024), (1024, 1024)]
    ) + _conv_size(1024, 1, 3)
    scale_size = sum(
        _conv_size(*layer)
        for layer in [
            (1, 128, 15), (128, 128, 41, 4), (128, 256, 41, 16), (256, 512, 41, 16), (512, 1024, 41, 16),
            (1024, 1024, 41, 16), (1024, 1024, 5), (1024, 1, 3),
        ]
    )

    def without_gains(module: torch.nn.Module) -> int:
        return sum(p.numel() for name, p in module.named_parameters() if not name.endswith("original0"))

    assert without_gains(mpd) == 5 * period_size
    assert without_gains(msd) == 3 * scale_size
