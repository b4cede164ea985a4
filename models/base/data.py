"""Training datasets over the processed layout: `<processed_dir>/<Dataset>/{mel,wav}/<Uid>.*` + `<split>.json`.

Every stage reads the same layout; random crops are drawn from a generator seeded by (seed, epoch, index), so a
resumed run sees exactly the crops an uninterrupted run would have seen, whatever the number of workers.
"""

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch.utils.data import Dataset

LOG_MEL_FLOOR = math.log(1e-5)


@dataclass
class ClipRecord:
    dataset: str
    uid: str
    captions: list[str]
    attributes: dict

    def mel_path(self, processed_dir: Path) -> Path:
        return processed_dir / self.dataset / "mel" / f"{self.uid}.npy"

    def wav_path(self, processed_dir: Path) -> Path:
        return processed_dir / self.dataset / "wav" / f"{self.uid}.wav"


def read_split(processed_dir: Path | str, datasets: list[str], split: str) -> list[ClipRecord]:
    """Records of one split over several datasets; a missing split file is a clear error."""
    records = []
    for dataset in datasets:
        path = Path(processed_dir) / dataset / f"{split}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run preprocessing for dataset {dataset!r} first")
        for item in json.loads(path.read_text(encoding="utf-8")):
            captions = item.get("Captions") or [item["Caption"]]
            records.append(ClipRecord(dataset, item["Uid"], list(captions), item.get("Attributes") or {}))
    if not records:
        raise ValueError(f"split {split!r} of {datasets} under {processed_dir} is empty")
    return records


class EpochSeededDataset(Dataset):
    """Base for datasets whose randomness is a pure function of (seed, epoch, index)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def item_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


def _crop_or_pad(frames: np.ndarray, length: int, offset: int, pad_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, ...) -> (length, ...) starting at `offset`, padded with `pad_value`; mask (length,) 1 = real."""
    segment = frames[offset : offset + length]
    mask = np.zeros(length, dtype=np.float32)
    mask[: len(segment)] = 1.0
    if len(segment) < length:
        pad = np.full((length - len(segment), *frames.shape[1:]), pad_value, dtype=frames.dtype)
        segment = np.concatenate([segment, pad], axis=0)
    return segment, mask


class MelSegmentDataset(EpochSeededDataset):
    """Log-mel segments for the VAE and diffusion stages.

    Item: {"mel": (1, segment_frames, n_mels), "mask": (1, segment_frames, 1) with 0 on padded frames,
    "caption": str, "uid": str, "offset": int (the crop's first frame in the clip)}, or None when the mel file is
    missing or unreadable (warned; the collate function drops and counts it). With `random_crop` the crop offset
    and the caption (out of all captions of the clip) are random; otherwise the first `segment_frames` frames and
    the first caption.
    """

    def __init__(
        self,
        *,
        processed_dir: Path | str,
        records: list[ClipRecord],
        segment_frames: int,
        n_mels: int,
        random_crop: bool,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.processed_dir = Path(processed_dir)
        self.records = records
        self.segment_frames = segment_frames
        self.n_mels = n_mels
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict | None:
        record = self.records[index]
        path = record.mel_path(self.processed_dir)
        try:
            mel = np.load(path).astype(np.float32).T
        except (OSError, ValueError) as error:
            warnings.warn(f"skipping {path}: {error}", stacklevel=2)
            return None
        if mel.ndim != 2 or mel.shape[1] != self.n_mels:
            warnings.warn(f"skipping {path}: expected ({self.n_mels}, frames), got {mel.T.shape}", stacklevel=2)
            return None
        rng = self.item_rng(index)
        spare = max(mel.shape[0] - self.segment_frames, 0)
        offset = int(rng.integers(0, spare + 1)) if self.random_crop else 0
        segment, mask = _crop_or_pad(mel, self.segment_frames, offset, LOG_MEL_FLOOR)
        caption = record.captions[int(rng.integers(len(record.captions)))] if self.random_crop else record.captions[0]
        return {
            "mel": torch.from_numpy(segment)[None],
            "mask": torch.from_numpy(mask)[None, :, None],
            "caption": caption,
            "uid": record.uid,
            "offset": offset,
        }


class WaveSegmentDataset(EpochSeededDataset):
    """16 kHz waveform segments for the vocoder: {"wave": (segment_samples,), "mask": (segment_samples,)}.

    Offsets are multiples of `hop_length`, so the mel of the segment lines up with the vocoder's frames."""

    def __init__(
        self,
        *,
        processed_dir: Path | str,
        records: list[ClipRecord],
        segment_samples: int,
        hop_length: int,
        sample_rate: int,
        random_crop: bool,
        seed: int = 0,
    ):
        super().__init__(seed)
        if segment_samples % hop_length:
            raise ValueError(f"segment_samples {segment_samples} must be a multiple of hop_length {hop_length}")
        self.processed_dir = Path(processed_dir)
        self.records = records
        self.segment_samples = segment_samples
        self.hop_length = hop_length
        self.sample_rate = sample_rate
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict | None:
        path = self.records[index].wav_path(self.processed_dir)
        try:
            wave, rate = soundfile.read(str(path), dtype="float32")
        except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
            warnings.warn(f"skipping {path}: {error}", stacklevel=2)
            return None
        if rate != self.sample_rate or wave.ndim != 1:
            warnings.warn(f"skipping {path}: expected mono {self.sample_rate} Hz, got {rate} Hz", stacklevel=2)
            return None
        hops = max(len(wave) - self.segment_samples, 0) // self.hop_length
        offset = int(self.item_rng(index).integers(0, hops + 1)) * self.hop_length if self.random_crop else 0
        segment, mask = _crop_or_pad(wave, self.segment_samples, offset, 0.0)
        return {"wave": torch.from_numpy(segment), "mask": torch.from_numpy(mask), "uid": self.records[index].uid}


def collate_skipping_missing(items: list[dict | None]) -> dict:
    """Stack tensor fields and list the rest; items that failed to load (None) are dropped and counted in
    `num_skipped`."""
    present = [item for item in items if item is not None]
    batch: dict = {"num_skipped": len(items) - len(present)}
    if not present:
        return batch
    for key in present[0]:
        values = [item[key] for item in present]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
