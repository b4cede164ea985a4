"""The tiny AudioLDM 2 folder used by the parity tests: deterministic, and runnable by diffusers end to end."""

import filecmp
from pathlib import Path

import numpy as np
import torch

from tests.fixtures.tiny_audioldm2 import (  # noqa: F401  (pytest fixture)
    SAMPLING_RATE,
    build_tiny_audioldm2_folder,
    load_reference_pipeline,
    tiny_audioldm2_folder,
)


def _relative_files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_build_is_deterministic(tiny_audioldm2_folder, tmp_path) -> None:
    rebuilt = build_tiny_audioldm2_folder(tmp_path / "again")
    files = _relative_files(tiny_audioldm2_folder)
    assert {"model_index.json", "tokenizer/vocab.json", "tokenizer/merges.txt", "unet/config.json"} <= set(files)
    assert files == _relative_files(rebuilt)
    differing = [str(f) for f in files if not filecmp.cmp(tiny_audioldm2_folder / f, rebuilt / f, shallow=False)]
    assert differing == []


def test_reference_pipeline_generates_and_ranks(tiny_audioldm2_folder) -> None:
    """One DDIM step, two waveforms per prompt: exercises every component, including CLAP audio scoring."""
    pipeline = load_reference_pipeline(tiny_audioldm2_folder)
    assert pipeline.scheduler.config.beta_start == 0.0015 and pipeline.scheduler.config.steps_offset == 1
    audio_length_in_s = 0.32
    audios = pipeline(
        ["a dog barking", "rain falling on a roof"],
        negative_prompt=["low quality", "noise"],
        num_inference_steps=1,
        audio_length_in_s=audio_length_in_s,
        num_waveforms_per_prompt=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).audios
    assert audios.shape == (4, int(audio_length_in_s * SAMPLING_RATE))
    assert np.isfinite(audios).all()
    assert 1e-3 < np.abs(audios).max() < 1.0
