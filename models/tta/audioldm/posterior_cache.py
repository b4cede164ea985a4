"""The frozen VAE's posterior per training crop, kept in host memory, so that stage 2 encodes each crop once.

Stage 2 runs the frozen stage-1 encoder on every batch (a tenth of a CPU training step at the quickstart size).
The encoder is frozen and deterministic, so a crop's posterior (mean and log-variance; sampling from it stays per
step) never changes during a run: this cache keeps it under the crop's key (clip uid, crop offset in frames) and
later epochs skip the encoder for every crop seen before. Built-in clips are whole-clip crops (offset 0), as are
AudioCaps' 10 s clips in 10.24 s segments, so from the second epoch on every crop hits.

The cache is bounded by `max_megabytes` of host memory (posteriors are stored on the CPU in float32); once full
it stops storing new crops, which are then encoded every time as before. It lives in one training process and
starts empty on resume. Encoding a batch's misses together, or alone, gives the same posterior up to float32
rounding of the convolution kernels.
"""

import logging
from collections.abc import Sequence

import torch

from models.tta.autoencoderkl.model import AutoencoderKL
from modules.distributions import DiagonalGaussian

logger = logging.getLogger(__name__)

CropKey = tuple[str, int]


class PosteriorCache:
    """(uid, offset) -> the VAE posterior of that crop, up to `max_megabytes` of host memory."""

    def __init__(self, max_megabytes: float):
        if max_megabytes <= 0:
            raise ValueError(f"max_megabytes must be positive, got {max_megabytes}")
        self.max_bytes = int(max_megabytes * 2**20)
        self.stored_bytes = 0
        self.hits = 0
        self.misses = 0
        self._full = False
        self._entries: dict[CropKey, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @torch.no_grad()
    def encode(self, autoencoder: AutoencoderKL, mel: torch.Tensor, keys: Sequence[CropKey]) -> DiagonalGaussian:
        """Posterior of mel (B, 1, T, F) with keys[i] naming row i; rows not cached are encoded (together) and
        stored while the budget lasts. Returns a float32 DiagonalGaussian of (B, C, T/r, F/r) on mel's device
        (float32 whatever precision the encoder ran in, so cached and new rows stack)."""
        if len(keys) != mel.shape[0]:
            raise ValueError(f"got {len(keys)} crop keys for a batch of {mel.shape[0]}")
        missing = [row for row, key in enumerate(keys) if key not in self._entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        encoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if missing:
            posterior = autoencoder.encode(mel[missing])
            for index, row in enumerate(missing):
                encoded[row] = (posterior.mean[index].float(), posterior.logvar[index].float())
                self._store(keys[row], posterior.mean[index], posterior.logvar[index])
        means, logvars = [], []
        for row, key in enumerate(keys):
            mean, logvar = encoded[row] if row in encoded else self._entries[key]
            means.append(mean.to(mel.device))
            logvars.append(logvar.to(mel.device))
        return DiagonalGaussian(torch.stack(means), torch.stack(logvars))

    def _store(self, key: CropKey, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        size = 2 * mean.numel() * 4
        if self.stored_bytes + size > self.max_bytes:
            if not self._full:
                self._full = True
                logger.info(
                    "posterior cache full at %d crops (%.0f MB, data.latent_cache_mb); further crops are encoded "
                    "at every step", len(self._entries), self.stored_bytes / 2**20
                )
            return
        self._entries[key] = (mean.detach().cpu().clone(), logvar.detach().cpu().clone())
        self.stored_bytes += size
