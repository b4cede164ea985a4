"""Global random-number state of python, numpy and torch: seed it, capture it, restore it.

The trainer stores each process's state in every checkpoint so a resumed run draws the same numbers (dropout,
diffusion noise) as an uninterrupted one, and runs validation and sampling under a fixed seed that leaves the
training stream untouched. States are plain lists/ints/tensors so `torch.load(weights_only=True)` reads them.
"""

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); with `deterministic`, ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for reproducible matmuls; it is read when CUDA initialises.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def capture_rng_state() -> dict:
    """The current global RNG state of python, numpy, torch CPU and every CUDA device."""
    python_version, python_internal, python_gauss = random.getstate()
    numpy_name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state(legacy=True)
    return {
        "python": [python_version, list(python_internal), python_gauss],
        "numpy": [numpy_name, numpy_keys.tolist(), int(numpy_pos), int(numpy_has_gauss), float(numpy_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state`."""
    python_version, python_internal, python_gauss = state["python"]
    random.setstate((python_version, tuple(python_internal), python_gauss))
    numpy_name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = state["numpy"]
    np.random.set_state((numpy_name, np.asarray(numpy_keys, dtype=np.uint32), numpy_pos, numpy_has_gauss, numpy_gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block under `seed` and give the caller back its RNG state afterwards."""
    saved = capture_rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        restore_rng_state(saved)
