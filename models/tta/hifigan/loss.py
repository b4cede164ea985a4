"""HiFi-GAN losses (Kong et al. 2020, §2.4): least-squares GAN, feature matching, mel-spectrogram L1, plus the
multi-resolution STFT loss of Parallel WaveGAN (Yamamoto et al. 2020, §2.3).

The discriminator outputs arrive as the lists returned by `modules.discriminators.hifigan` (concatenate the MPD
and MSD lists); each loss sums over sub-discriminators, as in the paper. Mels are computed by the caller with the
project's one front end (`utils.audio.LogMelSpectrogram`). The HiFi-GAN paper's weights are mel 45, fm 2, adv_g 1,
disc 1 and no STFT loss (stft 0, which skips computing it).
"""

from collections.abc import Mapping, Sequence

import torch
from torch.nn import functional as F

SPECTRAL_LOSS_NAMES = ("mel", "stft")
GENERATOR_LOSS_NAMES = (*SPECTRAL_LOSS_NAMES, "adv_g", "fm")
DISCRIMINATOR_LOSS_NAMES = ("disc",)
LOSS_NAMES = GENERATOR_LOSS_NAMES + DISCRIMINATOR_LOSS_NAMES
# Parallel WaveGAN's STFT resolutions (n_fft, hop_length, win_length) at 24 kHz; they suit 16 kHz as well.
STFT_LOSS_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))
# Floor on STFT power before the square root, so the log and its gradient stay finite in silence (Parallel WaveGAN).
_STFT_POWER_FLOOR = 1e-7


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


def _stft_magnitude(wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """(B, S) → |STFT| (B, n_fft // 2 + 1, frames), Hann window, centred, floored for a finite log."""
    window = torch.hann_window(win_length, dtype=wave.dtype, device=wave.device)
    spectrum = torch.stft(wave, n_fft, hop_length=hop_length, win_length=win_length, window=window,
                          return_complex=True)
    return (spectrum.real.square() + spectrum.imag.square()).clamp(min=_STFT_POWER_FLOOR).sqrt()


def multi_resolution_stft_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    *,
    resolutions: Sequence[tuple[int, int, int]] = STFT_LOSS_RESOLUTIONS,
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence ‖|S| − |Ŝ|‖_F / ‖|S|‖_F plus E|log|S| − log|Ŝ||, on
    waveforms (B, S) of identical shape (Yamamoto et al. 2020, eqs. 4–6). It constrains the linear-frequency
    magnitude at several time–frequency trade-offs, which the 64-bin mel L1 alone leaves loose."""
    if fake.shape != real.shape:
        raise ValueError(f"waveform shapes differ: fake {tuple(fake.shape)} vs real {tuple(real.shape)}")
    total = fake.new_zeros(())
    for n_fft, hop_length, win_length in resolutions:
        fake_magnitude = _stft_magnitude(fake, n_fft, hop_length, win_length)
        real_magnitude = _stft_magnitude(real, n_fft, hop_length, win_length)
        convergence = torch.linalg.norm(real_magnitude - fake_magnitude) / torch.linalg.norm(real_magnitude)
        total = total + convergence + F.l1_loss(fake_magnitude.log(), real_magnitude.log())
    return total / len(resolutions)


class HifiGanLoss:
    """Weighted sums of the HiFi-GAN losses. `weights` maps every name in `LOSS_NAMES` to a float;
    `stft_resolutions` are the (n_fft, hop_length, win_length) of the STFT loss (segments must be longer than
    half the largest n_fft).

    Each step returns (weighted total, {name: unweighted loss}) so the logged names equal the weight keys.
    """

    def __init__(
        self,
        *,
        weights: Mapping[str, float],
        stft_resolutions: Sequence[tuple[int, int, int]] = STFT_LOSS_RESOLUTIONS,
    ):
        unknown = sorted(set(weights) - set(LOSS_NAMES))
        missing = sorted(set(LOSS_NAMES) - set(weights))
        if unknown or missing:
            raise ValueError(
                f"HiFi-GAN loss weights must name exactly {list(LOSS_NAMES)}: unknown {unknown}, missing {missing}"
            )
        self.weights = {name: float(value) for name, value in weights.items()}
        self.stft_resolutions = tuple(stft_resolutions)

    def _weighted(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return sum(self.weights[name] * value for name, value in losses.items()), losses

    def _spectral(
        self, fake_mel: torch.Tensor, real_mel: torch.Tensor, fake_wave: torch.Tensor, real_wave: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        losses = {"mel": mel_l1_loss(fake_mel, real_mel)}
        if self.weights["stft"]:
            losses["stft"] = multi_resolution_stft_loss(fake_wave, real_wave, resolutions=self.stft_resolutions)
        return losses

    def spectral_step(
        self, *, fake_mel: torch.Tensor, real_mel: torch.Tensor, fake_wave: torch.Tensor, real_wave: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Generator objective before the discriminators start: mel L1 + multi-resolution STFT ("mel", "stft";
        "stft" only when its weight is not 0). Mels (B, n_mels, frames), waves (B, S)."""
        return self._weighted(self._spectral(fake_mel, real_mel, fake_wave, real_wave))

    def generator_step(
        self,
        *,
        fake_mel: torch.Tensor,
        real_mel: torch.Tensor,
        fake_wave: torch.Tensor,
        real_wave: torch.Tensor,
        fake_logits: Sequence[torch.Tensor],
        real_features: Sequence[Sequence[torch.Tensor]],
        fake_features: Sequence[Sequence[torch.Tensor]],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Generator objective: the spectral losses + LS adversarial + feature matching ("adv_g", "fm")."""
        return self._weighted(
            {
                **self._spectral(fake_mel, real_mel, fake_wave, real_wave),
                "adv_g": generator_adversarial_loss(fake_logits),
                "fm": feature_matching_loss(real_features, fake_features),
            }
        )

    def discriminator_step(
        self, *, real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Discriminator objective: LS real/fake loss (name "disc")."""
        return self._weighted({"disc": discriminator_adversarial_loss(real_logits, fake_logits)})
