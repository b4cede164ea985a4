"""Training losses of the mel VAE: L1 reconstruction + KL + hinge GAN with an adaptive generator weight.

Esser et al. 2021, "Taming Transformers" (adaptive weight, PatchGAN hinge loss); Rombach et al. 2022 (KL-regularised
autoencoder). The loss holds only its weights: the trainer passes the discriminator, whether it has started, and
the decoder's last-layer weight at each call.

Reductions follow LDM / AudioLDM so their KL weights keep their meaning: ``rec`` and ``kl`` are both summed over
(C, T, F) per example and averaged over the batch; ``gan_g`` is the mean patch logit.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from modules.distributions import DiagonalGaussian

GENERATOR_LOSS_NAMES = ("rec", "kl", "gan_g")
# Bounds of the adaptive GAN weight, and the epsilon keeping its denominator away from zero (taming-transformers).
ADAPTIVE_WEIGHT_MAX = 1e4
ADAPTIVE_WEIGHT_EPS = 1e-4


def validate_loss_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Check that the weight map names exactly the generator losses ``rec``, ``kl``, ``gan_g``."""
    unknown = sorted(set(weights) - set(GENERATOR_LOSS_NAMES))
    missing = sorted(set(GENERATOR_LOSS_NAMES) - set(weights))
    if unknown or missing:
        raise ValueError(
            f"loss weights must name exactly {list(GENERATOR_LOSS_NAMES)}: unknown {unknown}, missing {missing}"
        )
    return {name: float(weights[name]) for name in GENERATOR_LOSS_NAMES}


@dataclass
class GeneratorLosses:
    """Named scalar losses (``rec``, ``kl``, ``gan_g``, ``total``) and the adaptive GAN weight, for logging."""

    losses: dict[str, torch.Tensor]
    adaptive_weight: torch.Tensor


def _check_inputs(mel: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor | None) -> None:
    if reconstruction.shape != mel.shape:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and mel {tuple(mel.shape)} differ in shape")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != mel.shape):
        raise ValueError(f"mask must be a bool tensor shaped like mel {tuple(mel.shape)}, got {mask.dtype} "
                         f"{tuple(mask.shape)}")


def _masked_for_discriminator(
    mel: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Copy the target into masked cells so the discriminator sees no difference (and no gradient) there."""
    return reconstruction if mask is None else torch.where(mask, reconstruction, mel)


def adaptive_gan_weight(
    rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer_weight: torch.Tensor
) -> torch.Tensor:
    """``||grad rec|| / (||grad gan|| + 1e-4)`` at the decoder's last layer, clamped to [0, 1e4] and detached.

    Scales the GAN term so its gradient at the output layer matches the reconstruction's (Esser et al. 2021, eq. 7).
    """
    rec_grad = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer_weight, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + ADAPTIVE_WEIGHT_EPS)
    return weight.clamp(0.0, ADAPTIVE_WEIGHT_MAX).detach()


class AutoencoderKLLoss:
    """Generator- and discriminator-side losses for one VAE training step.

    ``weights`` maps each generator loss name (``rec``, ``kl``, ``gan_g``) to its weight; ``gan_g``'s weight
    multiplies the adaptive weight (AudioLDM's ``disc_weight``), which is measured against the weighted ``rec``
    term so the GAN gradient tracks the reconstruction gradient as it enters ``total``.
    """

    def __init__(self, *, weights: Mapping[str, float]) -> None:
        self.weights = validate_loss_weights(weights)

    def generator_losses(
        self,
        *,
        mel: torch.Tensor,
        reconstruction: torch.Tensor,
        posterior: DiagonalGaussian,
        discriminator: Callable[[torch.Tensor], torch.Tensor],
        discriminator_active: bool,
        last_layer_weight: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> GeneratorLosses:
        """Losses for the autoencoder update.

        mel, reconstruction: (B, 1, T, F); mask: (B, 1, T, F) bool, True = real frame, or None. The
        discriminator is called only when ``discriminator_active``; the adaptive weight needs autograd, so under
        ``torch.no_grad`` (validation) it is 0 and ``total`` leaves out the GAN term.
        """
        _check_inputs(mel, reconstruction, mask)
        batch = mel.shape[0]
        error = (reconstruction - mel).abs()
        if mask is not None:
            error = error * mask
        rec = error.sum() / batch
        kl = posterior.kl().mean()
        total = self.weights["rec"] * rec + self.weights["kl"] * kl
        adaptive_weight = torch.zeros((), device=mel.device)
        if discriminator_active:
            logits_fake = discriminator(_masked_for_discriminator(mel, reconstruction, mask))
            gan_g = -logits_fake.mean()
            if torch.is_grad_enabled() and gan_g.requires_grad:
                adaptive_weight = adaptive_gan_weight(self.weights["rec"] * rec, gan_g, last_layer_weight)
            total = total + self.weights["gan_g"] * adaptive_weight * gan_g
        else:
            gan_g = torch.zeros((), device=mel.device)
        return GeneratorLosses(losses={"rec": rec, "kl": kl, "gan_g": gan_g, "total": total},
                               adaptive_weight=adaptive_weight)

    def discriminator_losses(
        self,
        *,
        mel: torch.Tensor,
        reconstruction: torch.Tensor,
        discriminator: Callable[[torch.Tensor], torch.Tensor],
        mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Hinge loss for the discriminator update (the reconstruction is detached).

        Returns ``disc`` = 0.5 * (mean relu(1 - D(real)) + mean relu(1 + D(fake))) and the mean logits
        ``logits_real`` / ``logits_fake`` (detached, for logging). Shapes as in ``generator_losses``.
        """
        _check_inputs(mel, reconstruction, mask)
        fake = _masked_for_discriminator(mel, reconstruction.detach(), mask)
        logits_real = discriminator(mel.detach())
        logits_fake = discriminator(fake)
        disc = 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
        return {"disc": disc, "logits_real": logits_real.mean().detach(), "logits_fake": logits_fake.mean().detach()}
