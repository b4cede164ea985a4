"""load_audioldm2_pipeline: a converted checkpoint generates exactly what its diffusers folder generates; paths of
the wrong kind are clear errors; a moved text side is found again through text_model_dir."""

import json
import shutil

import pytest
import torch

from models.tta.audioldm2.convert import convert_audioldm2_folder
from models.tta.audioldm2.loading import load_audioldm2_pipeline
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401  (fixture)
from utils.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def converted(tiny_audioldm2_folder, tmp_path_factory):
    return convert_audioldm2_folder(tiny_audioldm2_folder, tmp_path_factory.mktemp("loading") / "converted")


def test_converted_checkpoint_generates_like_the_diffusers_folder(converted, tiny_audioldm2_folder) -> None:
    from_folder = load_audioldm2_pipeline(tiny_audioldm2_folder)
    from_checkpoint = load_audioldm2_pipeline(converted)
    assert from_checkpoint.scheduler_config == from_folder.scheduler_config
    assert from_checkpoint.schedule == from_folder.schedule
    settings = dict(negative_prompt="low quality", num_inference_steps=3, audio_length_in_s=0.32,
                    num_waveforms_per_prompt=2)
    expected = from_folder.generate(["a dog barks"], generator=torch.Generator().manual_seed(1), **settings)
    actual = from_checkpoint.generate(["a dog barks"], generator=torch.Generator().manual_seed(1), **settings)
    assert torch.equal(actual.waveforms, expected.waveforms)
    assert torch.equal(actual.candidate_indices, expected.candidate_indices)


def test_wrong_paths_are_clear_errors(converted, tiny_audioldm2_folder, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="neither a checkpoint folder"):
        load_audioldm2_pipeline(tmp_path)
    other = tmp_path / "other"
    shutil.copytree(converted, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["config"]["model_type"] = "AudioLDM"
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="is a 'AudioLDM' checkpoint, not an AudioLDM 2 one"):
        load_audioldm2_pipeline(other)
    moved = tmp_path / "moved"
    shutil.copytree(converted, moved)
    meta = json.loads((moved / "meta.json").read_text())
    meta["extra"]["source"] = str(tmp_path / "deleted_download")
    (moved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="--text_model_dir"):
        load_audioldm2_pipeline(moved)
    assert load_audioldm2_pipeline(moved, text_model_dir=tiny_audioldm2_folder).unet is not None
