"""The latent scale factor stage 2 multiplies VAE latents by: 1 / std of posterior samples over training clips.

Rombach et al. 2022 (LDM, "scale_by_std") and AudioLDM rescale latents to unit variance so the diffusion noise
schedule fits them; AudioLDM measured the std on its first batch, we measure it over a sample of the training set.
The result is written next to the weights it was measured on, as `<checkpoint>/latent_scale.json`:

    {"scale_factor", "latent_std", "latent_mean", "num_clips", "num_values", "weights": "ema" | "raw", "step"}

(`bins/tta/vae_scale_factor.py` writes it; `models.tta.autoencoderkl.loading.load_vae` reads it back.)
"""

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from models.base.data import MelSegmentDataset, collate_skipping_missing, read_split
from models.tta.autoencoderkl.config import AutoencoderKLExperiment
from models.tta.autoencoderkl.model import AutoencoderKL
from utils.checkpoint import write_json_atomic

logger = logging.getLogger(__name__)

LATENT_SCALE_FILE = "latent_scale.json"


@dataclass
class LatentStatistics:
    """Mean and (unbiased) standard deviation of every latent value measured, and how many there were."""

    latent_mean: float
    latent_std: float
    num_clips: int
    num_values: int

    @property
    def scale_factor(self) -> float:
        return 1.0 / self.latent_std


def latent_frame_mask(mask: torch.Tensor, *, latent_frames: int, factor: int) -> torch.Tensor:
    """Mel frame mask (B, 1, T, 1) -> latent frame mask (B, latent_frames): a latent frame counts only when all
    `factor` mel frames under it are real (frames past T, added by the VAE's padding, count as padding)."""
    frames = mask[:, 0, :, 0]
    frames = F.pad(frames, (0, latent_frames * factor - frames.shape[1]))
    return frames.view(frames.shape[0], latent_frames, factor).amin(dim=-1) > 0


@torch.no_grad()
def measure_latents(
    vae: AutoencoderKL, batches: Iterable[dict], *, generator: torch.Generator | None = None
) -> LatentStatistics:
    """Statistics of posterior samples z ~ q(z | mel) over `batches` of {"mel": (B, 1, T, F), "mask": (B, 1, T, 1)},
    counting only latent frames that lie over real (unpadded) mel frames. Sums are kept in float64."""
    count, total, total_squares, clips = 0, 0.0, 0.0, 0
    for batch in batches:
        if "mel" not in batch:
            continue
        mel = batch["mel"]
        latent = vae.encode(mel).sample(generator).double()
        keep = latent_frame_mask(batch["mask"], latent_frames=latent.shape[2], factor=vae.downsample_factor)
        values = latent.permute(0, 2, 1, 3)[keep]
        count += values.numel()
        total += float(values.sum())
        total_squares += float(values.square().sum())
        clips += mel.shape[0]
    if count < 2:
        raise ValueError("no latent values to measure: every clip was missing or shorter than one latent frame")
    mean = total / count
    variance = max(total_squares / count - mean**2, 0.0) * count / (count - 1)
    if variance == 0.0:
        raise ValueError("every latent value is identical: the scale factor 1 / std is undefined")
    return LatentStatistics(latent_mean=mean, latent_std=math.sqrt(variance), num_clips=clips, num_values=count)


def training_clip_batches(
    config: AutoencoderKLExperiment, *, num_clips: int, batch_size: int, seed: int
) -> DataLoader:
    """Batches of `num_clips` training clips (a random subset drawn with `seed`; all when there are fewer), random
    crops of `data.segment_frames` frames, as the VAE saw them in training."""
    records = read_split(config.preprocess.processed_dir, config.datasets, config.data.train_split)
    dataset = MelSegmentDataset(
        processed_dir=config.preprocess.processed_dir,
        records=records,
        segment_frames=config.data.segment_frames,
        n_mels=config.preprocess.mel.n_mels,
        random_crop=True,
        seed=seed,
    )
    chosen = np.random.default_rng(seed).permutation(len(dataset))[:num_clips]
    return DataLoader(Subset(dataset, sorted(chosen.tolist())), batch_size=batch_size,
                      collate_fn=collate_skipping_missing)


def write_latent_scale(checkpoint: Path | str, statistics: LatentStatistics, *, weights: str, step: int) -> Path:
    """Write `<checkpoint>/latent_scale.json` atomically; `weights` is "ema" or "raw" (which weights were used)."""
    path = Path(checkpoint) / LATENT_SCALE_FILE
    record = {"scale_factor": statistics.scale_factor, **asdict(statistics), "weights": weights, "step": step}
    write_json_atomic(path, record)
    return path


def read_latent_scale(checkpoint: Path | str, *, weights: str) -> float | None:
    """The scale factor stored with a checkpoint for its `weights` ("ema" or "raw"), or None when it has not been
    measured for those weights (run `bins/tta/vae_scale_factor.py`)."""
    path = Path(checkpoint) / LATENT_SCALE_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("weights") != weights:
        logger.warning("%s was measured on the %s weights, not the %s weights in use", path, record.get("weights"),
                       weights)
        return None
    return float(record["scale_factor"])
