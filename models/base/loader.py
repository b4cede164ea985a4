"""Batches for training and validation: reshuffled every epoch, sharded over processes, resumable.

The training order is a pure function of (seed, epoch): each epoch is a fresh permutation, cut into global
batches of `batch_size * num_processes` examples, and process `rank` takes its `batch_size` slice of each.
A run resumed at (epoch, batch) therefore continues with exactly the batches the uninterrupted run would have
drawn. Datasets with random crops should also derive them from (seed, epoch, index) (`set_epoch` is called at
every epoch start, see `models.base.data.EpochSeededDataset`), so worker processes do not change the data.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass
class DataPosition:
    """Where the training stream stands: `batch` batches of epoch `epoch` were consumed (per process)."""

    epoch: int = 0
    batch: int = 0


class ShuffledBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices for one process, starting at `set_position(epoch, batch)`.

    The incomplete last global batch of each epoch is dropped, so all processes see the same number of batches.
    """

    def __init__(self, dataset_size: int, *, batch_size: int, seed: int, num_replicas: int = 1, rank: int = 0):
        global_batch = batch_size * num_replicas
        if dataset_size < global_batch:
            raise ValueError(
                f"the training set has {dataset_size} examples, fewer than one global batch "
                f"(batch_size {batch_size} x {num_replicas} processes = {global_batch})"
            )
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.batches_per_epoch = dataset_size // global_batch
        self.position = DataPosition()

    def set_position(self, epoch: int, batch: int) -> None:
        if not 0 <= batch < self.batches_per_epoch:
            raise ValueError(f"batch {batch} outside epoch of {self.batches_per_epoch} batches")
        self.position = DataPosition(epoch, batch)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The permutation of all indices used in `epoch`: (dataset_size,)."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.dataset_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.epoch_order(self.position.epoch)
        global_batch = self.batch_size * self.num_replicas
        for batch in range(self.position.batch, self.batches_per_epoch):
            start = batch * global_batch + self.rank * self.batch_size
            yield order[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.batches_per_epoch - self.position.batch


class ResumableTrainLoader:
    """An endless stream of training batches for one process that can be stopped and restarted at any batch.

    `position` is what a checkpoint stores. Each epoch gets its own DataLoader over the same sampler; the
    dataset's `set_epoch(epoch)` (if it has one) is called first so worker copies see the new epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        seed: int,
        num_replicas: int,
        rank: int,
        collate_fn: Callable[[list], Any],
        num_workers: int,
        pin_memory: bool,
    ):
        self.dataset = dataset
        self.sampler = ShuffledBatchSampler(
            len(dataset), batch_size=batch_size, seed=seed, num_replicas=num_replicas, rank=rank
        )
        self.global_batch_size = batch_size * num_replicas
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.position = DataPosition()

    def restore(self, epoch: int, batch: int, saved_global_batch_size: int) -> None:
        """Continue from a saved position; a changed global batch size keeps the number of examples seen."""
        if saved_global_batch_size != self.global_batch_size:
            batch = min(batch * saved_global_batch_size // self.global_batch_size, self.sampler.batches_per_epoch - 1)
        self.position = DataPosition(epoch, batch)

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        while True:
            epoch, start = self.position.epoch, self.position.batch
            sampler.set_position(epoch, start)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            # An explicit generator keeps DataLoader from drawing worker seeds from the global torch RNG, which
            # would make the model's random stream depend on when iterators were created (i.e. on resumes).
            worker_seed = np.random.SeedSequence([sampler.seed, epoch, start, sampler.rank]).generate_state(1)[0]
            loader = DataLoader(
                self.dataset,
                batch_sampler=sampler,
                collate_fn=self.collate_fn,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                generator=torch.Generator().manual_seed(int(worker_seed)),
            )
            for batch in loader:
                consumed = self.position.batch + 1
                if consumed < sampler.batches_per_epoch:
                    self.position = DataPosition(epoch, consumed)
                else:
                    self.position = DataPosition(epoch + 1, 0)
                yield batch


def sharded_sequential_batches(
    dataset_size: int, *, batch_size: int, num_replicas: int, rank: int, max_batches: int | None
) -> list[list[int]]:
    """Validation batches of one process: indices rank, rank + num_replicas, ... in order, capped at
    `max_batches` per process."""
    indices = list(range(rank, dataset_size, num_replicas))
    batches = [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]
    return batches if max_batches is None else batches[:max_batches]


def build_validation_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    num_replicas: int,
    rank: int,
    max_batches: int | None,
    collate_fn: Callable[[list], Any],
    num_workers: int,
    pin_memory: bool,
    seed: int,
) -> DataLoader:
    """Fixed-order validation batches of this process (processes may get different numbers of batches)."""
    batches = sharded_sequential_batches(
        len(dataset), batch_size=batch_size, num_replicas=num_replicas, rank=rank, max_batches=max_batches
    )
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate_fn,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )


def move_to_device(batch, device: torch.device):
    """Move every tensor of a (nested dict / list / tuple) batch to `device`; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, list):
        return [move_to_device(value, device) for value in batch]
    if isinstance(batch, tuple):
        values = [move_to_device(value, device) for value in batch]
        return type(batch)(*values) if hasattr(batch, "_fields") else tuple(values)
    return batch
