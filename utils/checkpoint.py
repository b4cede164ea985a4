"""Checkpoint folders: safetensors weights + meta.json (resolved config, step, file checksums), written atomically.

Layout of one checkpoint (training or inference):

    step_00001000/
        <model>.safetensors          weights of each model (parameters + persistent buffers, by module name)
        <model>.ema.safetensors      EMA weights, for models with an EMA (training checkpoints)
        training_state.pt            optimizers, LR schedulers, grad scaler, data position (training only)
        rng_state_rank<r>.pt         python/numpy/torch RNG state of process r (training only)
        meta.json                    {"schema_version", "kind", "step", "config", "models", "ema_models",
                                      "extra", "files": {name: {"bytes", "sha256"}}}
        complete                     written last

A checkpoint is written into `.partial_<name>` next to its final place, every file is fsynced, and the folder
is renamed into place, so a crash never leaves a half-written `step_*` folder. A folder that was damaged later
(missing `complete`, unreadable meta.json, a file of the wrong size or checksum) is detected by
`validate_checkpoint`, and `latest_valid_checkpoint` falls back to the previous one with a warning. Because
meta.json holds the resolved config, a checkpoint alone rebuilds its models (`read_checkpoint_meta`).
"""

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
META_FILE = "meta.json"
COMPLETE_MARKER = "complete"
TRAINING_STATE_FILE = "training_state.pt"
STAGING_PREFIX = ".partial_"
_CHECKPOINT_NAME = re.compile(r"^step_(\d+)$")
_HASH_CHUNK_BYTES = 1 << 22


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupt, or does not fit the model it is loaded into."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def weights_file_name(model_name: str, *, ema: bool = False) -> str:
    return f"{model_name}.ema.safetensors" if ema else f"{model_name}.safetensors"


def rng_state_file_name(rank: int) -> str:
    return f"rng_state_rank{rank}.pt"


def module_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """What a weights file holds: every parameter once (tied parameters under their first name) and every
    persistent buffer, keyed by module path."""
    parameter_aliases = {name for name, _ in module.named_parameters(remove_duplicate=False)}
    tensors = {name: parameter.detach() for name, parameter in module.named_parameters()}
    for name, value in module.state_dict(keep_vars=True).items():
        if name in parameter_aliases:
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{type(module).__name__}.{name}: non-tensor module state cannot be saved as safetensors")
        tensors[name] = value.detach()
    return tensors


def save_tensors(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Write named tensors to a safetensors file."""
    save_file({name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}, str(path))


@torch.no_grad()
def load_module_tensors(module: nn.Module, tensors: Mapping[str, torch.Tensor], *, source: str = "") -> None:
    """Copy saved tensors into `module` in place; names and shapes must match exactly."""
    expected = module_tensors(module)
    missing = sorted(expected.keys() - tensors.keys())
    unexpected = sorted(tensors.keys() - expected.keys())
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not match {type(module).__name__}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    for name, target in expected.items():
        if tensors[name].shape != target.shape:
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(tensors[name].shape)}, the model expects {tuple(target.shape)}"
            )
        target.copy_(tensors[name])


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _file_record(path: Path, *, fsync: bool) -> dict[str, Any]:
    """{"bytes", "sha256"} of a file; with `fsync`, also flush it to disk (when sealing a checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
        if fsync:
            os.fsync(handle.fileno())
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _write_text_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_json_atomic(path: Path | str, data: Any) -> None:
    """Write JSON to a temporary name, fsync, and rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    _write_text_synced(temporary, json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def staging_dir_for(final_dir: Path) -> Path:
    """Where a checkpoint destined for `final_dir` is written before it is renamed into place."""
    return final_dir.parent / f"{STAGING_PREFIX}{final_dir.name}"


def prepare_staging_dir(final_dir: Path) -> Path:
    """An empty staging folder for `final_dir` (a leftover from a crash is removed)."""
    staging = staging_dir_for(final_dir)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def commit_checkpoint(staging: Path, final_dir: Path, meta: dict[str, Any]) -> Path:
    """Seal a staged checkpoint: fsync and checksum its files, write meta.json and the `complete` marker, then
    rename the folder into place (replacing an older folder of the same name, e.g. a damaged one)."""
    files = {path.name: _file_record(path, fsync=True) for path in sorted(staging.iterdir()) if path.is_file()}
    meta = {"schema_version": SCHEMA_VERSION, **meta, "files": files}
    _write_text_synced(staging / META_FILE, json.dumps(meta, indent=2) + "\n")
    _write_text_synced(staging / COMPLETE_MARKER, "")
    _fsync_directory(staging)
    if final_dir.exists():
        replaced = final_dir.parent / f"{STAGING_PREFIX}replaced_{final_dir.name}"
        if replaced.exists():
            shutil.rmtree(replaced)
        os.rename(final_dir, replaced)
        os.rename(staging, final_dir)
        shutil.rmtree(replaced)
    else:
        os.rename(staging, final_dir)
    _fsync_directory(final_dir.parent)
    return final_dir


def validate_checkpoint(path: Path | str, *, verify_checksums: bool = True) -> dict[str, Any]:
    """Return the checkpoint's meta after checking it is complete and intact; raise CheckpointError saying
    what is wrong otherwise. Without `verify_checksums` only file presence and sizes are checked (fast)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint folder")
    if not (path / COMPLETE_MARKER).is_file():
        raise CheckpointError(f"{path}: no '{COMPLETE_MARKER}' marker (the checkpoint was not finished)")
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable {META_FILE} ({error})") from error
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        raise CheckpointError(f"{path}: {META_FILE} has no file list")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(f"{path}: schema version {version!r}; this code reads up to {SCHEMA_VERSION}")
    for name, expected in meta["files"].items():
        file_path = path / name
        if not file_path.is_file():
            raise CheckpointError(f"{path}: missing file {name}")
        size = file_path.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(f"{path}: {name} has {size} bytes, expected {expected['bytes']} (truncated?)")
        if verify_checksums and _file_record(file_path, fsync=False)["sha256"] != expected["sha256"]:
            raise CheckpointError(f"{path}: {name} does not match its sha256 checksum")
    return meta


def read_checkpoint_meta(path: Path | str) -> dict[str, Any]:
    """meta.json of a complete checkpoint: `config` (the resolved experiment config), `step`, `models`,
    `ema_models`, `extra`."""
    return validate_checkpoint(path, verify_checksums=False)


def list_checkpoints(checkpoints_dir: Path | str) -> list[tuple[int, Path]]:
    """(step, folder) of every `step_*` folder, oldest first; validity is not checked."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.iterdir():
        match = _CHECKPOINT_NAME.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_valid_checkpoint(checkpoints_dir: Path | str) -> Path | None:
    """The newest checkpoint that passes `validate_checkpoint`; damaged newer ones are skipped with a warning."""
    for _, path in reversed(list_checkpoints(checkpoints_dir)):
        try:
            validate_checkpoint(path)
        except CheckpointError as error:
            logger.warning("skipping damaged checkpoint, falling back to an older one: %s", error)
            continue
        return path
    return None


def resolve_checkpoint(path: Path | str) -> Path:
    """A checkpoint folder (holding meta.json) as is; an experiment folder (holding checkpoints/) -> its newest
    valid checkpoint (damaged newer ones are skipped with a warning). Raises CheckpointError otherwise."""
    path = Path(path)
    if (path / META_FILE).is_file():
        return path
    if (path / "checkpoints").is_dir():
        latest = latest_valid_checkpoint(path / "checkpoints")
        if latest is None:
            raise CheckpointError(f"{path}: no valid checkpoint in {path / 'checkpoints'}")
        return latest
    raise CheckpointError(
        f"{path}: neither a checkpoint folder (with {META_FILE}) nor an experiment folder (with checkpoints/); "
        "check the path, or train the model first"
    )


def prune_checkpoints(checkpoints_dir: Path | str, keep_last_n: int) -> list[Path]:
    """Delete all but the newest `keep_last_n` checkpoints (0 keeps all) and leftover staging folders;
    returns the deleted checkpoint folders."""
    checkpoints_dir = Path(checkpoints_dir)
    for leftover in checkpoints_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(leftover)
    if keep_last_n <= 0:
        return []
    removed = [path for _, path in list_checkpoints(checkpoints_dir)[:-keep_last_n]]
    for path in removed:
        shutil.rmtree(path)
    return removed


def save_inference_checkpoint(
    path: Path | str,
    *,
    models: Mapping[str, nn.Module],
    config: dict[str, Any],
    step: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write models' weights (no training state) with the resolved config, atomically, to the folder `path`.

    `extra` holds small JSON facts learned in training that rebuilding needs (e.g. a latent scale factor)."""
    path = Path(path)
    staging = prepare_staging_dir(path)
    for name, module in models.items():
        save_tensors(module_tensors(module), staging / weights_file_name(name))
    return commit_checkpoint(staging, path, _inference_meta(step=step, config=config, models=models, extra=extra))


def _inference_meta(*, step: int, config: dict[str, Any], models: Iterable[str], extra: dict[str, Any] | None) -> dict:
    """meta.json of an inference checkpoint, before its file list: no EMA models, no training state."""
    return {"kind": "inference", "step": step, "config": config, "models": sorted(models), "ema_models": [],
            "extra": extra or {}}


def export_inference_checkpoint(source: Path | str, destination: Path | str, *, use_ema: bool | None = None) -> Path:
    """Write the models of the checkpoint or experiment folder `source` (its newest valid checkpoint) to the
    inference checkpoint folder `destination`: the weights only (EMA weights where they exist, unless `use_ema`
    is False), with the same resolved config, step and extra, and `exported_from` naming the source. Files
    written beside the sealed checkpoint later (e.g. a VAE's latent_scale.json) come along; training state and
    RNG states do not. This is how a trained model is shipped without its optimizer state. `destination` must
    not exist yet."""
    checkpoint = resolve_checkpoint(source)
    destination = Path(destination)
    if destination.exists():
        raise CheckpointError(f"{destination} already exists; remove it first or choose another folder")
    meta = read_checkpoint_meta(checkpoint)
    staging = prepare_staging_dir(destination)
    weights = {}
    try:
        for name in meta["models"]:
            file_path = checked_weights_file(checkpoint, meta, name, use_ema=use_ema)
            shutil.copyfile(file_path, staging / weights_file_name(name))
            weights[name] = "ema" if file_path.name == weights_file_name(name, ema=True) else "raw"
        sealed = {*meta["files"], META_FILE, COMPLETE_MARKER}
        for path in sorted(checkpoint.iterdir()):
            if path.is_file() and path.name not in sealed:
                shutil.copyfile(path, staging / path.name)
    except (CheckpointError, OSError):
        shutil.rmtree(staging)
        raise
    exported = _inference_meta(step=meta["step"], config=meta["config"], models=meta["models"], extra=meta.get("extra"))
    exported["exported_from"] = {"checkpoint": str(checkpoint), "weights": weights}
    return commit_checkpoint(staging, destination, exported)


def load_model_weights(
    checkpoint_dir: Path | str, model_name: str, module: nn.Module, *, use_ema: bool | None = None
) -> Path:
    """Load the weights of `model_name` from a checkpoint folder into `module` (after checking the file's
    checksum); returns the file read.

    use_ema: None takes the EMA weights when the checkpoint has them, True requires them, False takes the raw
    training weights."""
    checkpoint_dir = Path(checkpoint_dir)
    file_path = checked_weights_file(checkpoint_dir, read_checkpoint_meta(checkpoint_dir), model_name, use_ema=use_ema)
    load_module_tensors(module, load_file(str(file_path)), source=str(file_path))
    return file_path


def checked_weights_file(
    checkpoint_dir: Path, meta: dict[str, Any], model_name: str, *, use_ema: bool | None = None
) -> Path:
    """The weights file of `model_name` in a checkpoint with meta.json `meta`, after checking its checksum
    (use_ema as in `load_model_weights`)."""
    if model_name not in meta.get("models", []):
        raise CheckpointError(f"{checkpoint_dir}: no model {model_name!r}; it holds {meta.get('models')}")
    has_ema = model_name in meta.get("ema_models", [])
    if use_ema and not has_ema:
        raise CheckpointError(f"{checkpoint_dir}: no EMA weights for {model_name!r}")
    file_path = checkpoint_dir / weights_file_name(model_name, ema=has_ema if use_ema is None else use_ema)
    if _file_record(file_path, fsync=False)["sha256"] != meta["files"][file_path.name]["sha256"]:
        raise CheckpointError(f"{file_path} does not match its sha256 checksum")
    return file_path
