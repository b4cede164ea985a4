"""The layout writer on a captioned folder: bad files, resampling, resume, settings guard, crop, CLI errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from preprocessors.common import write_processed_dataset
from preprocessors.config import SourceConfig
from preprocessors.folder import read_folder
from preprocessors.pipeline import run_preprocess
from tests.preprocessors.synthetic_audio import folder_config, tone, write_audio
from utils.audio import MelConfig, build_log_mel, compute_log_mel
from utils.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def write_captions(tmp_path: Path, rows: list[str]) -> None:
    (tmp_path / "captions.csv").write_text("\n".join(["file,caption,split", *rows]) + "\n", encoding="utf-8")


def make_mixed_folder(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    write_audio(audio / "good_a.wav", tone(1.0, frequency=300))
    write_audio(audio / "good_b.flac", tone(1.2, 22050, frequency=500), 22050)
    stereo = np.stack([tone(1.5, 44100, 440), tone(1.5, 44100, 660)], axis=1)
    write_audio(audio / "music" / "stereo.mp3", stereo, 44100, format="MP3")
    (audio / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio" * 8)
    (audio / "empty.wav").write_bytes(b"")
    write_audio(audio / "silent.wav", np.zeros(16000, dtype=np.float32))
    write_audio(audio / "short.wav", tone(0.2))
    with_nan = tone(1.0)
    with_nan[100] = np.nan
    write_audio(audio / "nan.wav", with_nan, subtype="FLOAT")
    write_captions(
        tmp_path,
        [
            "good_a.wav,a low tone,train",
            'good_a.wav,"a steady hum, low",train',
            "good_b,a higher tone,valid",
            "music/stereo.mp3,two tones in stereo,test",
            "corrupt.wav,broken,train",
            "empty.wav,nothing,train",
            "silent.wav,silence,train",
            "short.wav,a blip,train",
            "nan.wav,bad numbers,train",
            "absent.wav,not there,train",
        ],
    )


def test_bad_files_are_skipped_with_reasons_and_good_ones_processed(tmp_path):
    make_mixed_folder(tmp_path)
    config = folder_config(tmp_path, num_workers=2)
    summary = run_preprocess(config)
    dataset_dir = tmp_path / "out" / "mine"
    assert (summary.processed, summary.resumed, summary.skipped) == (3, 0, 6)

    expected_samples = {"good_a": 16000, "good_b": 19200, "music__stereo": 24000}
    front_end = build_log_mel(MelConfig())
    for uid, samples in expected_samples.items():
        info = soundfile.info(str(dataset_dir / "wav" / f"{uid}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.frames - samples) <= 2, uid
        mel = np.load(dataset_dir / "mel" / f"{uid}.npy")
        assert mel.dtype == np.float32 and mel.shape == (64, info.frames // 160)
        stored, _ = soundfile.read(str(dataset_dir / "wav" / f"{uid}.wav"), dtype="float32")
        np.testing.assert_array_equal(mel, compute_log_mel(stored, front_end))

    stereo, _ = soundfile.read(str(dataset_dir / "wav" / "music__stereo.wav"), dtype="float32")
    spectrum = np.abs(np.fft.rfft(stereo))
    peaks = sorted(np.argsort(spectrum)[-2:] * 16000 / len(stereo))
    assert peaks == pytest.approx([440, 660], abs=2)  # both channels mixed, pitch kept by the resampler

    train, valid, test = (read_json(dataset_dir / f"{split}.json") for split in ("train", "valid", "test"))
    assert train == [
        {"Dataset": "mine", "Uid": "good_a", "Caption": "a low tone", "Captions": ["a low tone", "a steady hum, low"]}
    ]
    assert [r["Uid"] for r in valid] == ["good_b"] and [r["Uid"] for r in test] == ["music__stereo"]

    report = read_json(dataset_dir / "report.json")
    reasons = {entry["Uid"]: entry["category"] for entry in report["skipped"]}
    assert reasons == {
        "corrupt": "unreadable",
        "empty": "empty",
        "silent": "silent",
        "short": "too_short",
        "nan": "non_finite",
        "absent": "missing",
    }
    assert all(entry["reason"] for entry in report["skipped"])
    assert report["counts"]["skipped_by_category"]["missing"] == 1
    manifest = read_json(dataset_dir / "manifest.json")
    assert manifest["totals"]["clips"] == 3
    assert manifest["totals"]["splits"]["valid"]["clips"] == 1
    clip = next(c for c in manifest["clips"] if c["Uid"] == "good_a")
    assert clip == {"Uid": "good_a", "Split": "train", "duration": 1.0, "num_samples": 16000, "mel_frames": 100}


def test_interrupted_run_resumes_without_redoing_finished_clips(tmp_path):
    for index in range(4):
        write_audio(tmp_path / "audio" / f"clip{index}.wav", tone(1.0, frequency=200 + 100 * index))
    write_captions(tmp_path, [f"clip{index}.wav,tone {index},train" for index in range(4)])
    config = folder_config(tmp_path)
    run_preprocess(config)
    dataset_dir = tmp_path / "out" / "mine"
    files = [dataset_dir / kind / f"clip{i}.{ext}" for i in range(4) for kind, ext in (("wav", "wav"), ("mel", "npy"))]
    before = {path: path.stat().st_mtime_ns for path in files}

    # An interruption while clip2 was being written: its mel never made it, temp files were left behind.
    (dataset_dir / "mel" / "clip2.npy").unlink()
    (dataset_dir / "mel" / ".clip2.npy.partial").write_bytes(b"half a mel")
    (dataset_dir / "wav" / ".clip3.wav.partial").write_bytes(b"half a wav")
    source_times = {p: p.stat().st_mtime_ns for p in (tmp_path / "audio").iterdir()}

    summary = run_preprocess(config)
    assert (summary.processed, summary.resumed, summary.skipped) == (1, 3, 0)
    for path, mtime in before.items():
        if "clip2" in path.name:
            assert path.is_file() and path.stat().st_mtime_ns != mtime
        else:
            assert path.stat().st_mtime_ns == mtime, path
    assert not list(dataset_dir.rglob("*.partial"))
    assert source_times == {p: p.stat().st_mtime_ns for p in (tmp_path / "audio").iterdir()}
    assert len(read_json(dataset_dir / "train.json")) == 4
    assert read_json(dataset_dir / "report.json")["counts"]["resumed"] == 3


def test_changed_settings_stop_the_resume_unless_overwrite(tmp_path):
    write_audio(tmp_path / "audio" / "a.wav", tone(1.0))
    write_captions(tmp_path, ["a.wav,a tone,train"])
    run_preprocess(folder_config(tmp_path))
    with pytest.raises(ConfigError, match="n_mels|mel"):
        run_preprocess(folder_config(tmp_path, mel=MelConfig(n_mels=80)))
    summary = run_preprocess(folder_config(tmp_path, mel=MelConfig(n_mels=80), overwrite=True))
    assert summary.processed == 1
    assert np.load(tmp_path / "out" / "mine" / "mel" / "a.npy").shape == (80, 100)


def test_crop_and_optional_peak_normalisation(tmp_path):
    write_audio(tmp_path / "audio" / "long.wav", tone(3.0, amplitude=0.05))
    write_audio(tmp_path / "audio" / "quiet.wav", tone(1.0, amplitude=0.05))
    write_captions(tmp_path, ["long.wav,long,train", "quiet.wav,quiet,train"])
    run_preprocess(folder_config(tmp_path, max_seconds=2.0))
    wav_dir = tmp_path / "out" / "mine" / "wav"
    long_clip, _ = soundfile.read(str(wav_dir / "long.wav"), dtype="float32")
    quiet, _ = soundfile.read(str(wav_dir / "quiet.wav"), dtype="float32")
    assert long_clip.shape == (32000,)
    assert np.abs(quiet).max() == pytest.approx(0.05, abs=1e-3)  # off by default: loudness survives

    run_preprocess(folder_config(tmp_path, max_seconds=2.0, peak_normalize=0.5, overwrite=True))
    quiet, _ = soundfile.read(str(wav_dir / "quiet.wav"), dtype="float32")
    assert np.abs(quiet).max() == pytest.approx(0.5, abs=1e-3)


def test_missing_inputs_fail_at_once_naming_the_key(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(ConfigError, match=r"preprocess\.source\.captions_file: file not found: .*captions\.csv"):
        read_folder(folder_config(tmp_path).source, valid_fraction=0.1, test_fraction=0.1)
    source = SourceConfig(kind="folder", audio_dir=str(tmp_path / "nope"), captions_file="x.csv")
    with pytest.raises(ConfigError, match=r"preprocess\.source\.audio_dir: folder not found: .*nope"):
        read_folder(source, valid_fraction=0.1, test_fraction=0.1)


def test_source_audio_inside_the_output_is_refused(tmp_path):
    write_audio(tmp_path / "out" / "mine" / "wav" / "a.wav", tone(1.0))
    (tmp_path / "captions.csv").write_text("file,caption\na.wav,a tone\n", encoding="utf-8")
    source = SourceConfig(
        kind="folder", audio_dir=str(tmp_path / "out" / "mine" / "wav"), captions_file=str(tmp_path / "captions.csv")
    )
    config = folder_config(tmp_path, source=source)
    with pytest.raises(ConfigError, match="never writes over its sources"):
        write_processed_dataset(config, read_folder(source, valid_fraction=0.0, test_fraction=0.0))


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO_ROOT / "bins" / "tta" / "preprocess.py"), "--no-progress", *args]
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=environment)


def test_cli_runs_from_any_directory_and_fails_cleanly_on_a_missing_folder(tmp_path):
    write_audio(tmp_path / "audio" / "a.wav", tone(1.0))
    write_captions(tmp_path, ["a.wav,a tone,train"])
    (tmp_path / "config.json").write_text(
        "// relative paths are relative to the working directory\n"
        '{preprocess: {processed_dir: "out", dataset: "mine",'
        ' source: {kind: "folder", audio_dir: "audio", captions_file: "captions.csv"}}, model: {ignored: true}}',
        encoding="utf-8",
    )
    done = run_cli(tmp_path, "--config", "config.json", "--set", "preprocess.num_workers=1")
    assert done.returncode == 0, done.stderr
    assert "1 clips processed" in done.stdout
    assert (tmp_path / "out" / "mine" / "mel" / "a.npy").is_file()

    failed = run_cli(tmp_path, "--config", "config.json", "--set", "preprocess.source.audio_dir=missing_dir")
    assert failed.returncode == 2
    message = failed.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "preprocess.source.audio_dir" in message and str(tmp_path / "missing_dir") in message
