"""Small generated audio files and configs shared by the preprocessing tests."""

from pathlib import Path

import numpy as np
import soundfile

from preprocessors.config import PreprocessConfig, SourceConfig


def tone(seconds: float, sample_rate: int = 16000, frequency: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """A sine (S,) float32."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_audio(path: Path, waveform: np.ndarray, sample_rate: int = 16000, **kwargs) -> Path:
    """Write (S,) or (S, C) samples; the format follows the extension unless given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), waveform, sample_rate, **kwargs)
    return path


def folder_config(tmp_path: Path, **overrides) -> PreprocessConfig:
    """A "folder" source config over tmp_path/audio + tmp_path/captions.csv, output in tmp_path/out."""
    source = overrides.pop("source", None) or SourceConfig(
        kind="folder", audio_dir=str(tmp_path / "audio"), captions_file=str(tmp_path / "captions.csv")
    )
    values = {"processed_dir": str(tmp_path / "out"), "dataset": "mine", "num_workers": 1, "source": source}
    values.update(overrides)
    return PreprocessConfig(**values)
