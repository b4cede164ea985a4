"""AutoencoderKLLoss: weight map validation, reductions, masking, adaptive weight, discriminator gating."""

import pytest
import torch

from models.tta.autoencoderkl.loss import AutoencoderKLLoss, adaptive_gan_weight, validate_loss_weights
from models.tta.autoencoderkl.model import AutoencoderKL
from modules.discriminators.patchgan import NLayerDiscriminator
from modules.distributions import DiagonalGaussian

WEIGHTS = {"rec": 1.0, "kl": 1e-6, "gan_g": 0.5}


def _never_called(_: torch.Tensor) -> torch.Tensor:
    raise AssertionError("the discriminator must not run while inactive")


def _vae_step(discriminator_active: bool, discriminator=None):
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), norm_groups=4)
    discriminator = discriminator or NLayerDiscriminator(base_channels=8, num_layers=2)
    mel = torch.randn(2, 1, 24, 24)
    reconstruction, posterior = vae(mel, generator=torch.Generator().manual_seed(0))
    result = AutoencoderKLLoss(weights=WEIGHTS).generator_losses(
        mel=mel, reconstruction=reconstruction, posterior=posterior, discriminator=discriminator,
        discriminator_active=discriminator_active, last_layer_weight=vae.last_layer_weight,
    )
    return vae, result


def test_weight_map_must_name_exactly_the_losses():
    assert validate_loss_weights(WEIGHTS) == WEIGHTS
    with pytest.raises(ValueError, match="unknown \\['gan'\\]"):
        AutoencoderKLLoss(weights={"rec": 1.0, "kl": 1.0, "gan": 1.0})
    with pytest.raises(ValueError, match="missing \\['gan_g'\\]"):
        AutoencoderKLLoss(weights={"rec": 1.0, "kl": 1.0})


def test_reductions_follow_ldm():
    """rec: L1 summed per example then batch mean; kl: posterior KL summed per example then batch mean."""
    mel = torch.zeros(2, 1, 4, 4)
    reconstruction = torch.ones(2, 1, 4, 4)
    posterior = DiagonalGaussian(torch.ones(2, 3, 1, 1), torch.zeros(2, 3, 1, 1))
    losses = AutoencoderKLLoss(weights={"rec": 2.0, "kl": 0.1, "gan_g": 1.0}).generator_losses(
        mel=mel, reconstruction=reconstruction, posterior=posterior, discriminator=_never_called,
        discriminator_active=False, last_layer_weight=torch.zeros(1),
    ).losses
    assert set(losses) == {"rec", "kl", "gan_g", "total"}
    assert losses["rec"].item() == pytest.approx(16.0)
    assert losses["kl"].item() == pytest.approx(1.5)
    assert losses["gan_g"].item() == 0.0
    assert losses["total"].item() == pytest.approx(2.0 * 16.0 + 0.1 * 1.5)


def test_masked_frames_do_not_affect_rec_or_discriminator():
    torch.manual_seed(0)
    mel = torch.randn(2, 1, 24, 24)
    reconstruction = torch.randn(2, 1, 24, 24)
    mask = torch.ones(2, 1, 24, 24, dtype=torch.bool)
    mask[1, :, 16:] = False
    changed = reconstruction.clone()
    changed[1, :, 16:] += 100.0
    loss = AutoencoderKLLoss(weights=WEIGHTS)
    posterior = DiagonalGaussian(torch.zeros(2, 8, 6, 6), torch.zeros(2, 8, 6, 6))
    discriminator = NLayerDiscriminator(base_channels=8, num_layers=2, norm="none")
    # A stand-in "last layer": the reconstruction scaled by a leaf parameter equal to one.
    last_layer = torch.ones(1, requires_grad=True)
    results = [
        loss.generator_losses(mel=mel, reconstruction=candidate * last_layer, posterior=posterior,
                              discriminator=discriminator, discriminator_active=True,
                              last_layer_weight=last_layer, mask=mask).losses
        for candidate in (reconstruction, changed)
    ]
    assert torch.equal(results[0]["rec"], results[1]["rec"])
    assert torch.equal(results[0]["gan_g"], results[1]["gan_g"])
    unmasked = loss.generator_losses(mel=mel, reconstruction=changed, posterior=posterior,
                                     discriminator=_never_called, discriminator_active=False,
                                     last_layer_weight=torch.zeros(1)).losses
    assert unmasked["rec"] > results[0]["rec"] + 100.0
    disc = [loss.discriminator_losses(mel=mel, reconstruction=candidate, discriminator=discriminator, mask=mask)
            for candidate in (reconstruction, changed)]
    assert torch.equal(disc[0]["disc"], disc[1]["disc"])
    with pytest.raises(ValueError, match="bool"):
        loss.discriminator_losses(mel=mel, reconstruction=changed, discriminator=discriminator, mask=mask.float())


def test_discriminator_not_used_when_inactive():
    vae, result = _vae_step(discriminator_active=False, discriminator=_never_called)
    assert result.losses["gan_g"].item() == 0.0
    assert result.adaptive_weight.item() == 0.0
    result.losses["total"].backward()
    assert vae.last_layer_weight.grad is not None


def test_adaptive_weight_is_finite_detached_and_balances_gradients():
    vae, result = _vae_step(discriminator_active=True)
    weight = result.adaptive_weight
    assert torch.isfinite(weight) and 0.0 < weight.item() <= 1e4
    assert not weight.requires_grad
    rec_grad = torch.autograd.grad(result.losses["rec"], vae.last_layer_weight, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(result.losses["gan_g"], vae.last_layer_weight, retain_graph=True)[0]
    assert weight.item() == pytest.approx((rec_grad.norm() / (gan_grad.norm() + 1e-4)).item(), rel=1e-5)
    expected_total = result.losses["rec"] + 1e-6 * result.losses["kl"] + 0.5 * weight * result.losses["gan_g"]
    assert torch.allclose(result.losses["total"], expected_total)


def test_adaptive_weight_is_clamped():
    weight = torch.ones(3, requires_grad=True)
    huge = adaptive_gan_weight((weight * 1e9).sum(), (weight * 1e-9).sum(), weight)
    assert huge.item() == 1e4


def test_adaptive_weight_is_zero_without_autograd():
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), norm_groups=4)
    mel = torch.randn(1, 1, 24, 24)
    with torch.no_grad():
        reconstruction, posterior = vae(mel)
        result = AutoencoderKLLoss(weights=WEIGHTS).generator_losses(
            mel=mel, reconstruction=reconstruction, posterior=posterior,
            discriminator=NLayerDiscriminator(base_channels=8, num_layers=2), discriminator_active=True,
            last_layer_weight=vae.last_layer_weight,
        )
    assert result.adaptive_weight.item() == 0.0
    assert result.losses["gan_g"].item() != 0.0


def test_discriminator_hinge_loss():
    def constant_logits(value):
        return lambda mel: torch.full((mel.shape[0], 1, 2, 2), value)

    loss = AutoencoderKLLoss(weights=WEIGHTS)
    mel = torch.zeros(2, 1, 8, 8)

    def disc_loss(real_logit, fake_logit):
        return loss.discriminator_losses(
            mel=mel, reconstruction=mel + 1.0,
            discriminator=lambda x: constant_logits(real_logit if torch.equal(x, mel) else fake_logit)(x),
        )

    confident = disc_loss(2.0, -2.0)
    assert confident["disc"].item() == 0.0
    assert confident["logits_real"].item() == 2.0 and confident["logits_fake"].item() == -2.0
    assert disc_loss(0.0, 0.0)["disc"].item() == pytest.approx(1.0)
    assert disc_loss(-1.0, 0.5)["disc"].item() == pytest.approx(0.5 * (2.0 + 1.5))


def test_discriminator_loss_does_not_reach_the_autoencoder():
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), norm_groups=4)
    discriminator = NLayerDiscriminator(base_channels=8, num_layers=2)
    mel = torch.randn(2, 1, 24, 24)
    reconstruction, _ = vae(mel)
    losses = AutoencoderKLLoss(weights=WEIGHTS).discriminator_losses(
        mel=mel, reconstruction=reconstruction, discriminator=discriminator
    )
    losses["disc"].backward()
    assert vae.last_layer_weight.grad is None
    assert discriminator.main[0].weight.grad is not None
