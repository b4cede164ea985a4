"""`bins/tta/evaluate.py reconstruction`: VAE reconstructions, vocoded audio, the vocoder alone, skipped clips
and usage errors, on the tiny built-in dataset with a VAE trained for two steps."""

import json
import math

import numpy as np
import pytest
import soundfile
import torch

from bins.tta.evaluate import main as evaluate_main
from evaluation.reconstruction_eval import evaluate_reconstruction, mel_log_spectral_distance
from models.base.data import ClipRecord, read_split
from models.tta.autoencoderkl.loading import load_vae
from tests.models.base.toy_stage import reset_accelerate_state
from tests.models.tta.autoencoderkl.tiny_recipe import (
    DEBUG_CONFIG,
    as_overrides,
    build_tiny_dataset,
    data_values,
    make_trainer,
    one_thread,
    tiny_config,
)

MEL_KEYS = {"mel_l1", "mel_l2", "mel_lsd", "mel_psnr", "mel_ssim"}
WAVEFORM_KEYS = {"lsd", "mr_stft", "level_db", "mel_l1", "mel_l2", "mel_psnr", "mel_ssim"}


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def processed_dir(tmp_path_factory):
    return build_tiny_dataset(tmp_path_factory.mktemp("data") / "processed")


@pytest.fixture(scope="module")
def exp_dir(processed_dir, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("exp")
    reset_accelerate_state()
    config = tiny_config(processed_dir, log_dir, **{"trainer.max_steps": 2})
    make_trainer(config, log_dir / config.exp_name).train()
    return log_dir / config.exp_name


def test_vae_and_vocoder_report_mel_and_waveform_metrics(exp_dir, processed_dir, tmp_path):
    output = tmp_path / "report.json"
    arguments = ["reconstruction", "--vae", str(exp_dir), "--vocoder", "griffin_lim", "--split", "train",
                 "--max_clips", "3", "--output", str(output), "--no_progress"]
    assert evaluate_main(arguments) == 0
    report = json.loads(output.read_text())
    assert report["vae"] == str(exp_dir / "checkpoints" / "step_00000002") and report["vae_weights"] == "raw"
    assert (report["split"], report["num_clips"], report["num_skipped"]) == ("train", 3, 0)
    assert set(report["mel"]) == MEL_KEYS and set(report["waveform"]) == WAVEFORM_KEYS

    loaded = load_vae(exp_dir)
    records = read_split(processed_dir, loaded.config.datasets, "train")[:3]
    mels = torch.from_numpy(np.stack([np.load(record.mel_path(processed_dir)) for record in records]))
    with torch.no_grad():
        reconstruction = loaded.model.reconstruct(mels.transpose(1, 2)[:, None])[:, 0].transpose(1, 2)
    assert report["mel"]["mel_l1"] == pytest.approx(float((reconstruction - mels).abs().mean()), rel=1e-5)
    assert report["mel"]["mel_lsd"] > 0 and report["waveform"]["lsd"] > 0


def test_vocoder_alone_needs_only_a_config_naming_the_data(processed_dir, capsys):
    arguments = ["reconstruction", "--vocoder", "griffin_lim", "--config", str(DEBUG_CONFIG),
                 *as_overrides(data_values(processed_dir)), "--no_progress"]
    assert evaluate_main(arguments) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["vae"] is None and "mel" not in report
    assert report["split"] == "test" and report["num_clips"] == 2
    assert set(report["waveform"]) == WAVEFORM_KEYS
    # Griffin-Lim of the real mel keeps the mel close, unlike an untrained VAE.
    assert report["waveform"]["mel_l1"] < 1.0


def test_missing_clips_are_skipped_and_listed(exp_dir, processed_dir):
    loaded = load_vae(exp_dir)
    records = read_split(processed_dir, loaded.config.datasets, "valid")
    missing = ClipRecord(records[0].dataset, "no_such_clip", ["nothing"], {})
    report = evaluate_reconstruction(
        records=[*records, missing], processed_dir=processed_dir, mel_config=loaded.config.preprocess.mel,
        vae=loaded.model,
    )
    assert report["num_clips"] == len(records) and report["num_skipped"] == 1
    assert report["skipped"][0]["uid"] == "no_such_clip"


def test_usage_errors_exit_with_status_2(exp_dir, tmp_path, capsys):
    assert evaluate_main(["reconstruction", "--split", "test"]) == 2
    assert "give --vae, --vocoder, or both" in capsys.readouterr().err
    assert evaluate_main(["reconstruction", "--vae", str(tmp_path)]) == 2
    assert "neither a checkpoint folder" in capsys.readouterr().err
    assert evaluate_main(["reconstruction", "--vocoder", "griffin_lim"]) == 2
    assert "name the data with --config" in capsys.readouterr().err
    assert evaluate_main(["reconstruction", "--vae", str(exp_dir), "--split", "nonexistent"]) == 2
    assert "nonexistent.json not found" in capsys.readouterr().err


def test_mel_log_spectral_distance_is_zero_for_equal_mels_and_scales_with_the_log_gap():
    mel = torch.randn(2, 64, 40)
    assert mel_log_spectral_distance(mel, mel) == 0.0
    assert mel_log_spectral_distance(mel, mel + 0.5) == pytest.approx(0.5 * 20 / math.log(10))


def test_save_audio_writes_one_vocoded_wav_per_clip(processed_dir, tmp_path, capsys):
    audio_dir = tmp_path / "reconstructed"
    data = [*as_overrides(data_values(processed_dir))]
    arguments = ["reconstruction", "--vocoder", "griffin_lim", "--config", str(DEBUG_CONFIG), *data,
                 "--split", "train", "--max_clips", "2", "--save_audio", str(audio_dir), "--no_progress"]
    assert evaluate_main(arguments) == 0
    records = read_split(processed_dir, ["builtin_sfx"], "train")[:2]
    written = sorted(path.name for path in audio_dir.iterdir())
    assert written == sorted(f"{record.uid}.wav" for record in records)
    real, _ = soundfile.read(records[0].wav_path(processed_dir))
    vocoded, rate = soundfile.read(audio_dir / f"{records[0].uid}.wav")
    assert rate == 16000 and abs(len(vocoded) - len(real)) < 160 and np.abs(vocoded).max() > 1e-3
    capsys.readouterr()
    assert evaluate_main(["reconstruction", "--vae", str(tmp_path), "--save_audio", str(audio_dir)]) == 2
    assert "--save_audio needs --vocoder" in capsys.readouterr().err
