"""The trainer's full state as a checkpoint folder (layout in `utils.checkpoint`): weights and EMA weights per
model, `training_state.pt` (optimizers, schedulers, scaler, data position, step) and one RNG file per process."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch import nn

from models.base.ema import ExponentialMovingAverage
from models.base.rng import capture_rng_state
from utils.checkpoint import (
    TRAINING_STATE_FILE,
    CheckpointError,
    commit_checkpoint,
    load_module_tensors,
    module_tensors,
    prepare_staging_dir,
    prune_checkpoints,
    rng_state_file_name,
    save_tensors,
    staging_dir_for,
    validate_checkpoint,
    weights_file_name,
)


@dataclass
class LoadedTrainingState:
    meta: dict[str, Any]
    training_state: dict[str, Any]
    rng_state: dict[str, Any] | None  # None when the checkpoint has no file for this process


def save_training_checkpoint(
    final_dir: Path,
    *,
    accelerator: Accelerator,
    models: dict[str, nn.Module],
    emas: dict[str, ExponentialMovingAverage],
    training_state: dict[str, Any],
    meta: dict[str, Any],
    keep_last_n: int,
) -> None:
    """Collective: every process writes its RNG state, the main process the rest; then the folder is committed
    atomically and old checkpoints are pruned. `models` are unwrapped (no DDP)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        prepare_staging_dir(final_dir)
    accelerator.wait_for_everyone()
    staging = staging_dir_for(final_dir)
    torch.save(capture_rng_state(), staging / rng_state_file_name(accelerator.process_index))
    if accelerator.is_main_process:
        for name, model in models.items():
            save_tensors(module_tensors(model), staging / weights_file_name(name))
        for name, ema in emas.items():
            ema_tensors = {**module_tensors(models[name]), **ema.state_dict()}
            save_tensors(ema_tensors, staging / weights_file_name(name, ema=True))
        torch.save(training_state, staging / TRAINING_STATE_FILE)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        commit_checkpoint(staging, final_dir, {"kind": "training", **meta})
        prune_checkpoints(final_dir.parent, keep_last_n)
    accelerator.wait_for_everyone()


def load_training_checkpoint(
    path: Path,
    *,
    models: dict[str, nn.Module],
    emas: dict[str, ExponentialMovingAverage],
    process_index: int,
    verify_checksums: bool,
) -> LoadedTrainingState:
    """Load weights and EMAs into `models` / `emas` (unwrapped) and return the rest for the trainer to apply."""
    meta = validate_checkpoint(path, verify_checksums=verify_checksums)
    if meta.get("kind") != "training":
        raise CheckpointError(f"{path}: a {meta.get('kind')!r} checkpoint holds no training state")
    if meta["models"] != sorted(models) or meta["ema_models"] != sorted(emas):
        raise CheckpointError(
            f"{path}: holds models {meta['models']} (EMA {meta['ema_models']}), this run has "
            f"{sorted(models)} (EMA {sorted(emas)})"
        )
    for name, model in models.items():
        file_path = path / weights_file_name(name)
        load_module_tensors(model, load_file(str(file_path)), source=str(file_path))
    for name, ema in emas.items():
        saved = load_file(str(path / weights_file_name(name, ema=True)))
        ema.load_state_dict({key: value for key, value in saved.items() if key in ema.shadow})
    training_state = torch.load(path / TRAINING_STATE_FILE, map_location="cpu", weights_only=True)
    rng_path = path / rng_state_file_name(process_index)
    rng_state = torch.load(rng_path, weights_only=True) if rng_path.is_file() else None
    return LoadedTrainingState(meta=meta, training_state=training_state, rng_state=rng_state)
