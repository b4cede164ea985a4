"""Probability distributions used by latent models."""

import torch

# Bounds on the log-variance predicted by the VAE encoder (as in LDM / AudioLDM): keep exp() finite and the
# standard deviation away from exactly zero.
LOGVAR_MIN = -30.0
LOGVAR_MAX = 20.0


class DiagonalGaussian:
    """Gaussian with diagonal covariance over latent maps, the VAE posterior q(z | x).

    ``mean`` and ``logvar`` are (B, C, H, W); the log-variance is clamped to [-30, 20].
    Kingma & Welling 2014, "Auto-Encoding Variational Bayes".
    """

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
        self.mean = mean
        self.logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    @classmethod
    def from_parameters(cls, parameters: torch.Tensor) -> "DiagonalGaussian":
        """Split (B, 2C, H, W) encoder moments into mean (first C channels) and log-variance (last C)."""
        if parameters.shape[1] % 2 != 0:
            raise ValueError(f"expected an even channel count (mean and log-variance), got {parameters.shape[1]}")
        mean, logvar = torch.chunk(parameters, 2, dim=1)
        return cls(mean, logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw ``mean + std * eps`` (B, C, H, W); differentiable in mean and std."""
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        """The most likely latent, i.e. the mean (B, C, H, W)."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) summed over all non-batch dimensions: (B,).

        Closed form 0.5 * sum(mean^2 + var - 1 - logvar).
        """
        per_element = self.mean.pow(2) + self.var - 1.0 - self.logvar
        return 0.5 * per_element.flatten(start_dim=1).sum(dim=1)
