"""models.base.loader and models.base.rng: epoch reshuffling, process sharding, resumable positions, RNG state."""

import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, default_collate

from models.base.rng import capture_rng_state, isolated_rng, restore_rng_state, seed_everything
from models.base.loader import (
    ResumableTrainLoader,
    ShuffledBatchSampler,
    move_to_device,
    sharded_sequential_batches,
)


def test_each_epoch_is_a_fresh_permutation_with_the_last_partial_batch_dropped():
    sampler = ShuffledBatchSampler(10, batch_size=3, seed=0)
    epochs = []
    for epoch in range(3):
        sampler.set_position(epoch, 0)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 3 and all(len(batch) == 3 for batch in batches)
        flat = [index for batch in batches for index in batch]
        assert len(set(flat)) == 9
        epochs.append(flat)
    assert epochs[0] != epochs[1] != epochs[2]


def test_processes_share_each_global_batch_without_overlap():
    shards = [ShuffledBatchSampler(16, batch_size=2, seed=3, num_replicas=2, rank=rank) for rank in (0, 1)]
    single = ShuffledBatchSampler(16, batch_size=4, seed=3)
    for rank_0, rank_1, whole in zip(*shards, single):
        assert rank_0 + rank_1 == whole


def test_resuming_mid_epoch_continues_with_the_same_batches():
    full = ShuffledBatchSampler(20, batch_size=4, seed=1)
    full.set_position(2, 0)
    expected = list(full)[2:]
    resumed = ShuffledBatchSampler(20, batch_size=4, seed=1)
    resumed.set_position(2, 2)
    assert list(resumed) == expected and len(resumed) == 3
    with pytest.raises(ValueError, match="outside epoch"):
        resumed.set_position(0, 5)


def test_too_small_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ShuffledBatchSampler(5, batch_size=4, seed=0, num_replicas=2)


class EpochJitterSet(Dataset):
    """Items (index, epoch, jitter drawn from (seed, epoch, index))."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return torch.tensor([index, self.epoch, np.random.default_rng([0, self.epoch, index]).random()])


def make_loader(num_workers):
    return ResumableTrainLoader(
        EpochJitterSet(), batch_size=4, seed=0, num_replicas=1, rank=0, collate_fn=default_collate,
        num_workers=num_workers, pin_memory=False,
    )


def test_train_loader_resumes_mid_stream_with_or_without_workers():
    loader = make_loader(num_workers=1)
    stream = iter(loader)
    seen = [next(stream) for _ in range(4)]  # 3 batches per epoch: the 4th is the first of epoch 1
    position = loader.position
    expected = [next(stream) for _ in range(4)]
    stream.close()
    assert (position.epoch, position.batch) == (1, 1)
    assert seen[3][:, 1].eq(1).all() and expected[-1][:, 1].eq(2).all(), "set_epoch reaches the worker"

    resumed = make_loader(num_workers=0)
    resumed.restore(position.epoch, position.batch, saved_global_batch_size=4)
    stream = iter(resumed)
    for batch in expected:
        assert torch.equal(next(stream), batch)
    stream.close()


def test_validation_batches_cover_every_index_once():
    batches = [
        sharded_sequential_batches(11, batch_size=2, num_replicas=2, rank=rank, max_batches=None) for rank in (0, 1)
    ]
    assert sorted(i for shard in batches for batch in shard for i in batch) == list(range(11))
    assert sharded_sequential_batches(11, batch_size=2, num_replicas=1, rank=0, max_batches=2) == [[0, 1], [2, 3]]


def test_move_to_device_keeps_structure():
    batch = {"x": torch.ones(1), "pair": (torch.zeros(1), "text"), "items": [torch.ones(2)], "n": 3}
    moved = move_to_device(batch, torch.device("cpu"))
    assert moved["pair"][1] == "text" and moved["n"] == 3 and isinstance(moved["items"], list)


def test_rng_state_round_trips_through_torch_save(tmp_path):
    seed_everything(5)
    torch.save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_isolated_rng_is_repeatable_and_leaves_the_outer_stream_alone():
    seed_everything(1)
    with isolated_rng(9):
        first = torch.rand(2)
    after = torch.rand(1)
    seed_everything(1)
    with isolated_rng(9):
        assert torch.equal(torch.rand(2), first)
    assert torch.equal(torch.rand(1), after)
