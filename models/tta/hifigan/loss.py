"""HiFi-GAN losses (Kong et al. 2020, §2.4): least-squares GAN, feature matching, mel-spectrogram L1.

The discriminator outputs arrive as the lists returned by `modules.discriminators.hifigan` (concatenate the MPD
and MSD lists); each loss sums over sub-discriminators, as in the paper. Mels are computed by the caller with the
project's one front end (`utils.audio.LogMelSpectrogram`). The paper's weights are mel 45, fm 2, adv_g 1, disc 1.
"""

from collections.abc import Mapping, Sequence

import torch
from torch.nn import functional as F

GENERATOR_LOSS_NAMES = ("mel", "adv_g", "fm")
DISCRIMINATOR_LOSS_NAMES = ("disc",)
LOSS_NAMES = GENERATOR_LOSS_NAMES + DISCRIMINATOR_LOSS_NAMES


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ_k E[(D_k(G(s)) − 1)²]: the generator pushes every sub-discriminator's score on fakes towards 1."""
    return sum(torch.mean((1.0 - logits) ** 2) for logits in fake_logits)


def discriminator_adversarial_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Σ_k E[(D_k(x) − 1)²] + E[D_k(G(s))²]: real scored 1, fake scored 0 (pass fakes detached from G)."""
    if len(real_logits) != len(fake_logits):
        raise ValueError(f"{len(real_logits)} real vs {len(fake_logits)} fake discriminator outputs")
    return sum(
        torch.mean((1.0 - real) ** 2) + torch.mean(fake**2) for real, fake in zip(real_logits, fake_logits)
    )


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]], fake_features: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Σ_k Σ_l E|D_k^l(x) − D_k^l(G(s))|; real activations are targets, so they are detached."""
    if [len(f) for f in real_features] != [len(f) for f in fake_features]:
        raise ValueError("real and fake feature maps come from different discriminator layouts")
    return sum(
        torch.mean(torch.abs(real.detach() - fake))
        for real_maps, fake_maps in zip(real_features, fake_features)
        for real, fake in zip(real_maps, fake_maps)
    )


def mel_l1_loss(fake_mel: torch.Tensor, real_mel: torch.Tensor) -> torch.Tensor:
    """E|mel(G(s)) − mel(x)| over log-mels of identical shape, e.g. (B, n_mels, frames)."""
    if fake_mel.shape != real_mel.shape:
        raise ValueError(f"mel shapes differ: fake {tuple(fake_mel.shape)} vs real {tuple(real_mel.shape)}")
    return F.l1_loss(fake_mel, real_mel)


class HifiGanLoss:
    """Weighted sums of the HiFi-GAN losses. `weights` maps every name in `LOSS_NAMES` to a float.

    Each step returns (weighted total, {name: unweighted loss}) so the logged names equal the weight keys.
    """

    def __init__(self, *, weights: Mapping[str, float]):
        unknown = sorted(set(weights) - set(LOSS_NAMES))
        missing = sorted(set(LOSS_NAMES) - set(weights))
        if unknown or missing:
            raise ValueError(
                f"HiFi-GAN loss weights must name exactly {list(LOSS_NAMES)}: unknown {unknown}, missing {missing}"
            )
        self.weights = {name: float(value) for name, value in weights.items()}

    def _weighted(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return sum(self.weights[name] * value for name, value in losses.items()), losses

    def generator_step(
        self,
        *,
        fake_mel: torch.Tensor,
        real_mel: torch.Tensor,
        fake_logits: Sequence[torch.Tensor],
        real_features: Sequence[Sequence[torch.Tensor]],
        fake_features: Sequence[Sequence[torch.Tensor]],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Generator objective: mel L1 + LS adversarial + feature matching (names "mel", "adv_g", "fm")."""
        return self._weighted(
            {
                "mel": mel_l1_loss(fake_mel, real_mel),
                "adv_g": generator_adversarial_loss(fake_logits),
                "fm": feature_matching_loss(real_features, fake_features),
            }
        )

    def discriminator_step(
        self, *, real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Discriminator objective: LS real/fake loss (name "disc")."""
        return self._weighted({"disc": discriminator_adversarial_loss(real_logits, fake_logits)})
