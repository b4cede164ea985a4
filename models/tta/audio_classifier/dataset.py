"""Labelled whole-clip log-mels for the evaluation classifier, read from the processed layout.

`read_split_records` keeps every field of the split JSON ("Family" and "Attributes" included), which the
classifier's targets (`labels.record_targets`) and attribute adherence need.
"""

import json
import math
from pathlib import Path
from typing import Any

import torch

from models.base.data import LOG_MEL_FLOOR, ClipRecord, EpochSeededDataset, MelSegmentDataset
from models.tta.audio_classifier.labels import record_targets


def read_split_records(
    processed_dir: Path | str, datasets: list[str], splits: str | list[str]
) -> list[dict[str, Any]]:
    """The records of `<processed_dir>/<dataset>/<split>.json` for each dataset and split, "Dataset" filled in."""
    splits = [splits] if isinstance(splits, str) else splits
    records = []
    for dataset in datasets:
        for split in splits:
            path = Path(processed_dir) / dataset / f"{split}.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: run preprocessing for dataset {dataset!r} first")
            records += [{**item, "Dataset": dataset} for item in json.loads(path.read_text(encoding="utf-8"))]
    if not records:
        raise ValueError(f"splits {splits} of {datasets} under {processed_dir} are empty")
    return records


def clip_record(record: dict[str, Any]) -> ClipRecord:
    """The `models.base.data.ClipRecord` of a split record."""
    captions = record.get("Captions") or [record["Caption"]]
    return ClipRecord(record["Dataset"], record["Uid"], list(captions), record.get("Attributes") or {})


def shift_log_mel_gain(mel: torch.Tensor, gain_db: float) -> torch.Tensor:
    """The log-mel of the same audio `gain_db` louder; bins at the clamp floor (silence) stay there."""
    shifted = (mel + gain_db / 20.0 * math.log(10.0)).clamp(min=LOG_MEL_FLOOR)
    return torch.where(mel > LOG_MEL_FLOOR, shifted, mel)


class LabelledMelDataset(EpochSeededDataset):
    """Item: {"mel": (1, segment_frames, n_mels) from the clip's start, padded with silence, "uid": str,
    "targets": `labels.record_targets`} or None when the mel cannot be read (warned, dropped by
    `collate_labelled`). With `gain_jitter_db` > 0 the level is shifted by a gain drawn from (seed, epoch, index).
    """

    def __init__(
        self,
        *,
        processed_dir: Path | str,
        records: list[dict[str, Any]],
        segment_frames: int,
        n_mels: int,
        gain_jitter_db: float = 0.0,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.targets = [record_targets(record) for record in records]
        self.mels = MelSegmentDataset(
            processed_dir=processed_dir,
            records=[clip_record(record) for record in records],
            segment_frames=segment_frames,
            n_mels=n_mels,
            random_crop=False,
        )
        self.gain_jitter_db = gain_jitter_db

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict | None:
        item = self.mels[index]
        if item is None:
            return None
        mel = item["mel"]
        if self.gain_jitter_db > 0:
            gain_db = float(self.item_rng(index).uniform(-self.gain_jitter_db, self.gain_jitter_db))
            mel = shift_log_mel_gain(mel, gain_db)
        return {"mel": mel, "uid": item["uid"], "targets": self.targets[index]}


def collate_labelled(items: list[dict | None]) -> dict:
    """Stack "mel" (B, 1, T, n_mels) and each target; list "uid"; unreadable items (None) are dropped and
    counted in "num_skipped"."""
    present = [item for item in items if item is not None]
    batch: dict[str, Any] = {"num_skipped": len(items) - len(present)}
    if not present:
        return batch
    batch["mel"] = torch.stack([item["mel"] for item in present])
    batch["uid"] = [item["uid"] for item in present]
    batch["targets"] = {name: torch.stack([item["targets"][name] for item in present]) for name in present[0]["targets"]}
    return batch

