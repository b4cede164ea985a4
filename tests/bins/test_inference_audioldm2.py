"""bins/tta/inference_audioldm2.py and egs/tta/audioldm2/run_inference.sh on the tiny AudioLDM 2 folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch

from bins.tta.inference_audioldm2 import main
from models.tta.audioldm2.pipeline import AudioLDM2Pipeline
from tests.fixtures.tiny_audioldm2 import build_tiny_audioldm2_folder, tiny_audioldm2_folder  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = ["--num_inference_steps", "2", "--audio_length_in_s", "0.32"]


def test_writes_ranked_candidates_for_every_prompt(tiny_audioldm2_folder, tmp_path, capsys) -> None:
    text_file = tmp_path / "prompts.txt"
    text_file.write_text("# a comment\nrain falling on a roof\n\n")
    output_dir = tmp_path / "out"
    argv = ["--model_dir", str(tiny_audioldm2_folder), "--text", "a dog barks", "--text_file", str(text_file),
            "--num_waveforms_per_prompt", "2", "--batch_size", "2", "--seed", "5", "--output_dir", str(output_dir)]
    assert main(argv + FAST) == 0
    printed = capsys.readouterr().out.split()
    stems = ["a_dog_barks_0", "a_dog_barks_1", "rain_falling_on_a_roof_0", "rain_falling_on_a_roof_1"]
    assert printed == [str(output_dir / f"{stem}.wav") for stem in stems]
    assert sorted(path.name for path in output_dir.iterdir()) == sorted(
        f"{stem}.{suffix}" for stem in stems for suffix in ("wav", "png", "json")
    )
    for prompt_stem, prompt in (("a_dog_barks", "a dog barks"), ("rain_falling_on_a_roof", "rain falling on a roof")):
        records = [json.loads((output_dir / f"{prompt_stem}_{rank}.json").read_text()) for rank in (0, 1)]
        assert [record["prompt"] for record in records] == [prompt, prompt]
        assert [record["candidate"] for record in records] == [0, 1]
        assert sorted(record["generation_index"] for record in records) == [0, 1]
        assert records[0]["clap_score"] >= records[1]["clap_score"]
        assert records[0]["seed"] == 5 and records[0]["mel_frames"] == 32 and records[0]["scheduler"] == "dpmsolver++"
        audio, sample_rate = soundfile.read(output_dir / f"{prompt_stem}_0.wav")
        assert sample_rate == 16000 and audio.shape == (5120,)


def test_output_is_the_pipeline_output_and_is_never_overwritten(tiny_audioldm2_folder, tmp_path, capsys) -> None:
    output_dir = tmp_path / "out"
    # The checkpoint's own sampler (DDIM) in fp32: what the pipeline does by default.
    argv = ["--model_dir", str(tiny_audioldm2_folder), "--text", "a dog barks", "--seed", "7",
            "--negative_prompt", "low quality", "--output_dir", str(output_dir), "--scheduler", "checkpoint",
            "--precision", "fp32", *FAST]
    assert main(argv) == 0
    assert main(argv) == 0
    assert (output_dir / "a_dog_barks.wav").is_file() and (output_dir / "a_dog_barks_1.wav").is_file()
    first, _ = soundfile.read(output_dir / "a_dog_barks.wav", dtype="float32")
    second, _ = soundfile.read(output_dir / "a_dog_barks_1.wav", dtype="float32")
    assert (first == second).all()  # same seed, same audio
    pipeline = AudioLDM2Pipeline.from_pretrained_folder(tiny_audioldm2_folder)
    expected = pipeline.generate(
        "a dog barks", negative_prompt="low quality", num_inference_steps=2, audio_length_in_s=0.32,
        generator=torch.Generator().manual_seed(7),
    ).waveforms[0, 0]
    assert (torch.from_numpy(first) - expected).abs().max().item() <= 1.0 / 16384  # 16-bit PCM rounding
    record = json.loads((output_dir / "a_dog_barks.json").read_text())
    assert (record["scheduler"], record["precision"]) == ("DDIMScheduler", "fp32")


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        ([], "--text"),
        (["--text", "  "], "--text"),
        (["--text", "a dog", "--num_inference_steps", "0"], "--num_inference_steps"),
        (["--text", "a dog", "--audio_length_in_s", "-1"], "--audio_length_in_s"),
        (["--text", "a dog", "--audio_length_in_s", "90"], "--audio_length_in_s"),
        (["--text", "a dog", "--audio_length_in_s", "0.02"], "--audio_length_in_s"),
        (["--text", "a dog", "--num_waveforms_per_prompt", "0"], "--num_waveforms_per_prompt"),
        (["--text", "a dog", "--batch_size", "0"], "--batch_size"),
        (["--text", "a dog", "--scheduler", "fancy"], "--scheduler"),
        (["--text", "a dog", "--text_file", "/no/such/file.txt"], "--text_file"),
    ],
)
def test_bad_input_names_the_flag_and_writes_nothing(tiny_audioldm2_folder, tmp_path, capsys, extra, flag) -> None:
    output_dir = tmp_path / "out"
    assert main(["--model_dir", str(tiny_audioldm2_folder), "--output_dir", str(output_dir), *extra]) == 2
    error = capsys.readouterr().err
    assert f"error: {flag}" in error
    assert not output_dir.exists()


def test_bad_model_folder_names_the_flag(tiny_audioldm2_folder, tmp_path, capsys) -> None:
    assert main(["--model_dir", str(tmp_path / "nowhere"), "--text", "a dog"]) == 2
    assert "error: --model_dir: " in capsys.readouterr().err
    folder = tmp_path / "no_vocoder"
    shutil.copytree(tiny_audioldm2_folder, folder)
    shutil.rmtree(folder / "vocoder")
    assert main(["--model_dir", str(folder), "--text", "a dog"]) == 2
    assert "lacks vocoder" in capsys.readouterr().err


def _run_script(shell: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # The script runs `python3`: put this interpreter first on PATH so it is the one with the test environment.
    environment = {**os.environ, "OMP_NUM_THREADS": "1",
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [shell, str(REPO_ROOT / "egs" / "tta" / "audioldm2" / "run_inference.sh"), *args]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


def test_run_inference_sh_generates_under_sh(tmp_path) -> None:
    folder = build_tiny_audioldm2_folder(tmp_path / "tiny_audioldm2")
    output_dir = tmp_path / "generated"
    result = _run_script("sh", "--model_dir", str(folder), "--text", "a dog barks", "--seed", "0",
                         "--output_dir", str(output_dir), *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert sorted(path.name for path in output_dir.iterdir()) == ["a_dog_barks.json", "a_dog_barks.png",
                                                                  "a_dog_barks.wav"]
    assert json.loads((output_dir / "a_dog_barks.json").read_text())["prompt"] == "a dog barks"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_run_inference_sh_rejects_bad_arguments(shell, tmp_path) -> None:
    result = _run_script(shell, "--text", "a dog barks", cwd=tmp_path)
    assert result.returncode == 2 and "--model_dir DIR is required" in result.stderr
    result = _run_script(shell, "--model_dir", str(tmp_path), "--bogus", cwd=tmp_path)
    assert result.returncode == 2 and "unknown argument '--bogus'" in result.stderr
    result = _run_script(shell, "--model_dir", cwd=tmp_path)
    assert result.returncode == 2 and "--model_dir needs a value" in result.stderr
    result = _run_script(shell, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--model_dir DIR --text" in result.stdout
