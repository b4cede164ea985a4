"""utils.outputs: safe names, no overwriting, complete files, argument checks."""

import json

import numpy as np
import pytest

from utils.outputs import check_generation_args, read_prompts, safe_stem, save_generation


def test_safe_stem_never_yields_a_path():
    assert safe_stem("A dog barks!") == "a_dog_barks"
    assert safe_stem("../../etc/passwd") == "etc_passwd"
    assert safe_stem("   ") == "prompt"
    assert safe_stem("ünïcödé  café") == "unicode_cafe"
    assert len(safe_stem("x" * 500)) == 60


def test_save_generation_writes_three_files_and_never_overwrites(tmp_path):
    wave = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    mel = np.random.default_rng(0).standard_normal((10, 64)).astype(np.float32)
    first = save_generation(tmp_path, stem="a dog", waveform=wave, sample_rate=16000, log_mel=mel, settings={"prompt": "a dog", "seed": 1})
    second = save_generation(tmp_path, stem="a dog", waveform=wave, sample_rate=16000, log_mel=mel, settings={"prompt": "a dog", "seed": 2})
    assert first["wav"].name == "a_dog.wav" and second["wav"].name == "a_dog_1.wav"
    assert first["png"].read_bytes()[:4] == b"\x89PNG"
    record = json.loads(second["json"].read_text())
    assert record["seed"] == 2 and record["files"]["wav"] == "a_dog_1.wav"
    assert json.loads(first["json"].read_text())["seed"] == 1
    assert not list(tmp_path.glob(".*partial"))


def test_read_prompts(tmp_path):
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("a cat meows\n\n# comment\n  rain on a roof  \n")
    assert read_prompts(["a dog"], prompt_file) == ["a dog", "a cat meows", "rain on a roof"]
    with pytest.raises(ValueError, match="--text: the prompt is empty"):
        read_prompts(["  "], None)
    with pytest.raises(ValueError, match="--text_file: .* does not exist"):
        read_prompts(None, tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="at least one non-empty prompt"):
        read_prompts(None, None)


@pytest.mark.parametrize(
    "overrides, flag",
    [
        ({"audio_length_in_s": 0.0}, "--audio_length_in_s"),
        ({"audio_length_in_s": float("nan")}, "--audio_length_in_s"),
        ({"audio_length_in_s": 3600.0}, "--audio_length_in_s"),
        ({"num_inference_steps": 0}, "--num_inference_steps"),
        ({"guidance_scale": -1.0}, "--guidance_scale"),
        ({"num_waveforms_per_prompt": 0}, "--num_waveforms_per_prompt"),
        ({"batch_size": 0}, "--batch_size"),
    ],
)
def test_bad_generation_args_name_the_flag(overrides, flag):
    arguments = dict(audio_length_in_s=5.0, num_inference_steps=10, guidance_scale=3.5, num_waveforms_per_prompt=1)
    check_generation_args(**arguments)
    with pytest.raises(ValueError, match=flag):
        check_generation_args(**{**arguments, **overrides})
