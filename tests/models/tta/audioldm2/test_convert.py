"""Conversion of an AudioLDM 2 diffusers folder into our checkpoint format, and its CLI."""

import json
import shutil

import pytest
import torch

from bins.tta.convert_audioldm2 import main as convert_main
from models.tta.audioldm2.convert import convert_audioldm2_folder, load_converted_audioldm2
from models.tta.audioldm2.pipeline import AudioLDM2Pipeline
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401  (fixture)
from utils.checkpoint import CheckpointError, validate_checkpoint


@pytest.fixture(scope="module")
def converted(tiny_audioldm2_folder, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("convert") / "audioldm2_converted"
    return convert_audioldm2_folder(tiny_audioldm2_folder, output_dir)


def test_layout_and_meta(converted, tiny_audioldm2_folder) -> None:
    meta = validate_checkpoint(converted)
    assert meta["models"] == ["projection", "unet", "vae", "vocoder"]
    assert sorted(meta["files"]) == ["projection.safetensors", "unet.safetensors", "vae.safetensors",
                                     "vocoder.safetensors"]
    config = meta["config"]
    assert config["model_type"] == "AudioLDM2"
    assert config["unet"]["cross_attention_dims"] == [None, 16, 32]
    assert config["vocoder"]["upsample_rates"] == [5, 4, 2, 2, 2]
    assert config["projection"] == {"clap_dim": 24, "t5_dim": 32, "language_model_dim": 16}
    extra = meta["extra"]
    assert extra["latent_scaling_factor"] == pytest.approx(0.4110932946205139)
    assert extra["sampling_rate"] == 16000
    assert extra["num_language_of_audio_vectors"] == 8
    assert extra["noise_schedule"] == {"num_train_timesteps": 1000, "beta_start": 0.0015, "beta_end": 0.0195,
                                       "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}
    assert extra["scheduler_config"]["_class_name"] == "DDIMScheduler"
    assert extra["scheduler_config"]["steps_offset"] == 1
    assert extra["source"] == str(tiny_audioldm2_folder.resolve())


def test_reloaded_modules_equal_the_diffusers_folder_modules(converted, tiny_audioldm2_folder) -> None:
    loaded = load_converted_audioldm2(converted)
    pipeline = AudioLDM2Pipeline.from_pretrained_folder(tiny_audioldm2_folder)
    references = {
        "unet": pipeline.unet,
        "vae": pipeline.vae,
        "vocoder": pipeline.vocoder,
        "projection": pipeline.conditioner.projection,
    }
    for name, reference in references.items():
        ours = getattr(loaded, name)
        assert not ours.training
        reference_state = reference.state_dict()
        assert ours.state_dict().keys() == reference_state.keys(), name
        for key, tensor in ours.state_dict().items():
            assert torch.equal(tensor, reference_state[key]), f"{name}.{key}"
    assert loaded.latent_scaling_factor == pytest.approx(pipeline.latent_scaling_factor)
    assert loaded.sampling_rate == 16000
    # The rebuilt vocoder is the same function, not just the same tensors.
    mel = torch.randn(1, 12, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.vocoder(mel), pipeline.vocoder(mel))


def test_damaged_checkpoint_is_rejected(converted, tmp_path) -> None:
    copy = tmp_path / "damaged"
    shutil.copytree(converted, copy)
    weights = copy / "unet.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="sha256"):
        load_converted_audioldm2(copy)
    meta_path = copy / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["model_type"] = "AudioLDM"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a converted AudioLDM 2 checkpoint"):
        load_converted_audioldm2(copy)


def test_refuses_to_overwrite_and_names_missing_components(converted, tiny_audioldm2_folder, tmp_path) -> None:
    with pytest.raises(FileExistsError, match="already exists"):
        convert_audioldm2_folder(tiny_audioldm2_folder, converted)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_audioldm2_folder(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks unet, vae, vocoder"):
        convert_audioldm2_folder(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli(tiny_audioldm2_folder, tmp_path, capsys) -> None:
    output_dir = tmp_path / "converted"
    assert convert_main(["--model_dir", str(tiny_audioldm2_folder), "--output_dir", str(output_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(output_dir)
    validate_checkpoint(output_dir)
    assert convert_main(["--model_dir", str(tiny_audioldm2_folder), "--output_dir", str(output_dir)]) == 2
    assert "--output_dir" in capsys.readouterr().err
    assert convert_main(["--model_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "x")]) == 2
    assert "--model_dir" in capsys.readouterr().err
