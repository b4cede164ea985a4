"""The VAE recipe's debug config shrunk for tests: a tiny built-in dataset (24 clips of 2 s, sound effects only)
and a VAE of a few thousand weights on 32-frame crops, trained for a few steps."""

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from bins.tta.preprocess import main as preprocess_main
from models.tta.autoencoderkl.config import AutoencoderKLExperiment
from models.tta.autoencoderkl.trainer import AutoencoderKLTrainer
from utils.config import config_to_dict, load_config

REPO_ROOT = Path(__file__).resolve().parents[4]
DEBUG_CONFIG = REPO_ROOT / "egs/tta/autoencoderkl/exp_config_debug.json"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: models this small gain nothing from a second one, and on a busy machine the
    threads' synchronisation costs several times the work."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def assignments(values: dict) -> list[str]:
    """{"a.b": 1, "c": True} -> ["a.b=1", "c=true"]: strings as they are, other values as JSON."""
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()]


def as_overrides(values: dict) -> list[str]:
    """{"a.b": 1} -> ["--set", "a.b=1"], for a command line."""
    return [item for assignment in assignments(values) for item in ("--set", assignment)]


def data_values(processed_dir: Path) -> dict:
    return {
        "preprocess.processed_dir": str(processed_dir),
        "preprocess.builtin.num_clips": 24,
        "preprocess.builtin.clip_seconds": 2.0,
        "preprocess.builtin.families": ["sfx"],
        "preprocess.num_workers": 1,
    }


def build_tiny_dataset(processed_dir: Path) -> Path:
    """Generate and preprocess the tiny built-in dataset into `processed_dir` (21 train, 1 valid and 2 test clips:
    one of a held-out combination, one of a seen one)."""
    overrides = as_overrides(data_values(processed_dir))
    assert preprocess_main(["--config", str(DEBUG_CONFIG), "--no-progress", *overrides]) == 0
    return processed_dir


def tiny_values(processed_dir: Path, log_dir: Path, **extra) -> dict:
    """Overrides that shrink the debug config: 4 steps of batch 4, the discriminator from step 2."""
    values = {
        **data_values(processed_dir),
        "log_dir": str(log_dir),
        "model.block_out_channels": [8, 8, 16],
        "model.norm_groups": 4,
        "discriminator.base_channels": 8,
        "data.segment_frames": 32,
        "trainer.batch_size": 4,
        "trainer.max_steps": 4,
        "trainer.log_every": 1,
        "trainer.valid_every": 2,
        "trainer.valid_max_batches": 1,
        "trainer.sample_every": 0,
        "trainer.save_every": 2,
        "trainer.keep_last_n": 0,
        "loss.disc_start_step": 2,
        "samples.num_clips": 1,
        "latent_scale.num_clips": 8,
        "latent_scale.batch_size": 4,
    }
    values.update(extra)
    return values


def tiny_config(processed_dir: Path, log_dir: Path, **extra) -> AutoencoderKLExperiment:
    return load_config(DEBUG_CONFIG, AutoencoderKLExperiment, assignments(tiny_values(processed_dir, log_dir, **extra)))


def make_trainer(config: AutoencoderKLExperiment, exp_dir: Path, stage: type = AutoencoderKLTrainer):
    return stage(config, exp_dir, config_to_dict(config))
