"""models.base.data: crops, padding masks, epoch-seeded randomness and skipping of missing files."""

import json

import numpy as np
import pytest
import soundfile
import torch

from models.base.data import (
    LOG_MEL_FLOOR,
    MelSegmentDataset,
    WaveSegmentDataset,
    collate_skipping_missing,
    read_split,
)


@pytest.fixture
def processed(tmp_path):
    root = tmp_path / "processed" / "Toy"
    (root / "mel").mkdir(parents=True)
    (root / "wav").mkdir()
    records = []
    for index, frames in enumerate([40, 10, 25]):
        uid = f"clip{index}"
        np.save(root / "mel" / f"{uid}.npy", np.full((8, frames), float(index), dtype=np.float32))
        soundfile.write(root / "wav" / f"{uid}.wav", np.linspace(-0.5, 0.5, frames * 16, dtype=np.float32), 1600)
        records.append({"Dataset": "Toy", "Uid": uid, "Caption": f"c{index}", "Captions": [f"c{index}", f"d{index}"]})
    records.append({"Dataset": "Toy", "Uid": "missing", "Caption": "gone"})
    (root / "train.json").write_text(json.dumps(records))
    return tmp_path / "processed"


def test_mel_segments_crop_pad_and_mask(processed):
    records = read_split(processed, ["Toy"], "train")
    dataset = MelSegmentDataset(processed_dir=processed, records=records, segment_frames=20, n_mels=8, random_crop=True)
    long_item, short_item = dataset[0], dataset[1]
    assert long_item["mel"].shape == (1, 20, 8) and long_item["mask"].shape == (1, 20, 1)
    assert long_item["mask"].all()
    assert short_item["mask"][0, :10].all() and not short_item["mask"][0, 10:].any()
    assert torch.all(short_item["mel"][0, 10:] == LOG_MEL_FLOOR)
    assert long_item["caption"] in ("c0", "d0")


def test_randomness_is_a_function_of_seed_epoch_and_index(processed):
    records = read_split(processed, ["Toy"], "train")[:1]

    def make():
        return WaveSegmentDataset(
            processed_dir=processed, records=records, segment_samples=64, hop_length=16, sample_rate=1600,
            random_crop=True, seed=3,
        )

    first, second = make(), make()
    crops = []
    for epoch in range(6):
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        torch.manual_seed(epoch)  # the global RNG must not matter
        crops.append(first[0]["wave"])
        torch.manual_seed(epoch + 100)
        np.testing.assert_array_equal(crops[-1], second[0]["wave"])
    assert len({tuple(crop.tolist()) for crop in crops}) > 1


def test_missing_files_are_skipped_and_counted(processed):
    records = read_split(processed, ["Toy"], "train")
    dataset = MelSegmentDataset(processed_dir=processed, records=records, segment_frames=16, n_mels=8, random_crop=False)
    with pytest.warns(UserWarning, match="missing.npy"):
        batch = collate_skipping_missing([dataset[i] for i in range(len(dataset))])
    assert batch["num_skipped"] == 1
    assert batch["mel"].shape == (3, 1, 16, 8)
    assert batch["caption"] == ["c0", "c1", "c2"]


def test_missing_split_is_a_clear_error(processed):
    with pytest.raises(FileNotFoundError, match="valid.json not found"):
        read_split(processed, ["Toy"], "valid")
