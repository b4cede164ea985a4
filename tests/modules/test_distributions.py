"""DiagonalGaussian: KL against a hand computation, clamping, sampling."""

import math

import pytest
import torch

from modules.distributions import DiagonalGaussian


def test_kl_matches_hand_computation():
    mean = torch.tensor([0.5, -1.0, 0.0, 2.0]).view(1, 4, 1, 1)
    logvar = torch.tensor([0.0, math.log(2.0), math.log(0.5), -1.0]).view(1, 4, 1, 1)
    posterior = DiagonalGaussian(mean, logvar)
    # 0.5 * (mu^2 + var - 1 - logvar) per element.
    expected = 0.5 * (
        (0.25 + 1.0 - 1.0 - 0.0)
        + (1.0 + 2.0 - 1.0 - math.log(2.0))
        + (0.0 + 0.5 - 1.0 - math.log(0.5))
        + (4.0 + math.exp(-1.0) - 1.0 + 1.0)
    )
    assert posterior.kl().shape == (1,)
    assert posterior.kl().item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_per_example_and_zero_for_standard_normal():
    parameters = torch.zeros(3, 4, 2, 5)
    parameters[1, :2] = 1.0
    kl = DiagonalGaussian.from_parameters(parameters).kl()
    assert kl.shape == (3,)
    assert kl[0].item() == 0.0 and kl[2].item() == 0.0
    assert kl[1].item() == pytest.approx(0.5 * 20 * 1.0)  # mean 1 on all 2 x 2 x 5 latent cells


def test_from_parameters_splits_and_clamps_logvar():
    parameters = torch.cat([torch.ones(1, 2, 3, 3), torch.full((1, 2, 3, 3), 50.0)], dim=1)
    posterior = DiagonalGaussian.from_parameters(parameters)
    assert torch.equal(posterior.mode(), torch.ones(1, 2, 3, 3))
    assert posterior.logvar.max().item() == 20.0
    assert DiagonalGaussian(torch.zeros(1), torch.full((1,), -100.0)).logvar.item() == -30.0
    with pytest.raises(ValueError, match="even"):
        DiagonalGaussian.from_parameters(torch.zeros(1, 3, 2, 2))


def test_sample_is_reproducible_with_generator_and_has_posterior_statistics():
    mean = torch.full((1, 1, 200, 200), 3.0)
    posterior = DiagonalGaussian(mean, torch.full_like(mean, math.log(4.0)))
    first = posterior.sample(torch.Generator().manual_seed(1))
    second = posterior.sample(torch.Generator().manual_seed(1))
    assert torch.equal(first, second)
    assert first.mean().item() == pytest.approx(3.0, abs=0.05)
    assert first.std().item() == pytest.approx(2.0, abs=0.05)
