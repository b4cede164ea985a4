"""The stage-2 recipe end to end from its real debug config, shrunk onto tiny data and a tiny VAE: egs
run_train.sh trains and saves, --resume continues, egs run_inference.sh (under sh) generates from a quoted
multi-word prompt; and bins/tta/inference.py refuses bad input with a clear message, exit status 2 and no output."""

import json
import os
import subprocess
import sys

import pytest
import soundfile

from bins.tta import inference
from tests.models.tta.audioldm.tiny_stage2 import (
    DEBUG_CONFIG,
    REPO_ROOT,
    make_tiny_data,
    make_tiny_vae_checkpoint,
    shrink_overrides,
)
from utils.checkpoint import list_checkpoints

PROMPT = "three short high beeps, then a low hum"


def run(command: list[str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train 2 steps with egs run_train.sh, then resume to 3; returns the experiment folder."""
    root = tmp_path_factory.mktemp("recipe")
    processed = make_tiny_data(root)
    vae = make_tiny_vae_checkpoint(root / "vae_checkpoint", processed)
    config = root / "exp_config.json"
    config.write_text(json.dumps({"base_config": str(DEBUG_CONFIG)}), encoding="utf-8")
    overrides = [part for item in shrink_overrides(processed, vae, root / "exp") for part in ("--set", item)]
    overrides += ["--set", "trainer.sample_every=0", "--set", "trainer.valid_every=0"]
    exp_dir = root / "exp" / "audioldm_debug"
    first = run(["sh", "egs/tta/audioldm/run_train.sh", "--config", str(config), *overrides])
    assert first.returncode == 0, first.stderr[-3000:]
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [1, 2]
    resumed = run(["sh", "egs/tta/audioldm/run_train.sh", "--config", str(config), *overrides,
                   "--set", "trainer.max_steps=3", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "step 2" in resumed.stderr
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")][-1] == 3
    return exp_dir


def test_run_inference_sh_generates_from_a_quoted_multi_word_prompt(trained, tmp_path):
    output_dir = tmp_path / "out"
    result = run([
        "sh", "egs/tta/audioldm/run_inference.sh", "--checkpoint", str(trained), "--text", PROMPT,
        "--text", "a dog barks", "--seed", "3", "--num_inference_steps", "2", "--audio_length_in_s", "0.5",
        "--output_dir", str(output_dir), "--scheduler", "ddim", "--batch_size", "2",
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(path.name for path in output_dir.iterdir())
    assert names == [f"{stem}.{ext}" for stem in ("a_dog_barks", "three_short_high_beeps_then_a_low_hum")
                     for ext in ("json", "png", "wav")]
    record = json.loads((output_dir / "three_short_high_beeps_then_a_low_hum.json").read_text())
    assert record["prompt"] == PROMPT and record["seed"] == 3 and record["scheduler"] == "ddim"
    assert record["checkpoint"].endswith("step_00000003") and record["audio_length_in_s"] == 0.5
    wave, rate = soundfile.read(output_dir / "a_dog_barks.wav")
    assert rate == 16000 and wave.shape == (8000,)

    # Same seed and prompts again, one clip at a time: the same audio, written next to the first files.
    assert inference.main([
        "--checkpoint", str(trained), "--text", PROMPT, "--text", "a dog barks", "--seed", "3",
        "--num_inference_steps", "2", "--audio_length_in_s", "0.5", "--output_dir", str(output_dir),
        "--scheduler", "ddim",
    ]) == 0
    again, _ = soundfile.read(output_dir / "a_dog_barks_1.wav")
    # Griffin-Lim amplifies the last-bit differences of batch 2 vs batch 1 a little.
    assert abs(again - wave).mean() < 1e-3 and abs(again - wave).max() < 0.05


def test_over_long_prompt_is_truncated_with_a_warning(trained, tmp_path):
    with pytest.warns(UserWarning, match="prompt truncated to 32 tokens"):
        code = inference.main([
            "--checkpoint", str(trained), "--text", "beep " * 200, "--num_inference_steps", "1",
            "--audio_length_in_s", "0.1", "--output_dir", str(tmp_path / "out"), "--guidance_scale", "1",
        ])
    assert code == 0 and len(list((tmp_path / "out").glob("*.wav"))) == 1


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--text", "  "], "--text: the prompt is empty"),
        (["--text", "a dog", "--audio_length_in_s", "0"], "--audio_length_in_s: must be a positive"),
        (["--text", "a dog", "--audio_length_in_s", "-2"], "--audio_length_in_s: must be a positive"),
        (["--text", "a dog", "--audio_length_in_s", "600"], "longer than the allowed 60.0 s"),
        (["--text", "a dog", "--num_inference_steps", "0"], "--num_inference_steps: must be at least 1"),
        (["--text", "a dog", "--scheduler", "heun"], "--scheduler: unknown 'heun'"),
        (["--text", "a dog", "--num_waveforms_per_prompt", "0"], "--num_waveforms_per_prompt: must be at least 1"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(trained, tmp_path, capsys, arguments, message):
    output_dir = tmp_path / "out"
    assert inference.main(["--checkpoint", str(trained), "--output_dir", str(output_dir), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not output_dir.exists()


def test_missing_checkpoint_exits_non_zero_with_a_clear_message(tmp_path):
    output_dir = tmp_path / "out"
    result = run([sys.executable, "bins/tta/inference.py", "--checkpoint", str(tmp_path / "nowhere"),
                  "--text", "a dog barks", "--output_dir", str(output_dir)])
    assert result.returncode == 2
    assert "--checkpoint" in result.stderr and "does not exist" in result.stderr
    assert not output_dir.exists()


def test_long_audio_needs_the_explicit_flag(trained, tmp_path, capsys):
    arguments = ["--checkpoint", str(trained), "--text", "a dog", "--audio_length_in_s", "61",
                 "--output_dir", str(tmp_path / "out")]
    assert inference.main(arguments) == 2
    assert "longer than the allowed 60.0 s" in capsys.readouterr().err
    _, _, _, settings, _ = inference._check(inference.build_parser().parse_args([*arguments, "--allow_long_audio"]))
    assert settings["audio_length_in_s"] == 61.0
