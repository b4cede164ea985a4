"""One clip's preprocessing: source audio -> checked, cropped 16-bit wav -> log-mel .npy, written atomically.

Each output is written under a temporary name and renamed into place, the wav first and the mel last, so a mel
under its final name means the clip is complete; a later run trusts such clips and redoes everything else. The
source file is only ever read.
"""

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile
import torch

from utils.audio import (
    AudioLoadError,
    LogMelSpectrogram,
    MelConfig,
    build_log_mel,
    compute_log_mel,
    load_audio,
    save_wav,
)

PARTIAL_SUFFIX = ".partial"

# Short skip categories used for counting in report.json; the free-text reason carries the details.
_LOAD_ERROR_CATEGORIES = {"missing file": "missing", "empty audio": "empty"}


@dataclass(frozen=True)
class ClipSettings:
    """What happens to every clip; derived from PreprocessConfig (samples at `sample_rate`)."""

    sample_rate: int
    min_samples: int
    max_samples: int | None
    silence_peak_threshold: float
    peak_normalize: float | None


@dataclass(frozen=True)
class ClipJob:
    """One clip to make: read `source_path`, write `wav_path` then `mel_path`."""

    uid: str
    source_path: str
    wav_path: str
    mel_path: str


@dataclass(frozen=True)
class ClipResult:
    """The outcome for one clip; sizes are those of the outputs on disk, category/reason say why it was skipped."""

    uid: str
    status: Literal["processed", "resumed", "skipped"]
    num_samples: int = 0
    mel_frames: int = 0
    category: str = ""
    reason: str = ""


class ClipSkipped(Exception):
    """The source clip cannot be used; `category` is a short key for counts, `reason` a readable cause."""

    def __init__(self, category: str, reason: str):
        super().__init__(reason)
        self.category = category
        self.reason = reason


def finished_sizes(wav_path: Path, mel_path: Path) -> tuple[int, int] | None:
    """(num_samples, mel_frames) of a completed clip, or None if either output is absent or unreadable."""
    if not (mel_path.is_file() and wav_path.is_file()):
        return None
    try:
        mel_frames = np.load(mel_path, mmap_mode="r").shape[1]
        num_samples = soundfile.info(str(wav_path)).frames
    except (OSError, ValueError, IndexError, RuntimeError):
        return None
    return num_samples, mel_frames


def load_checked_waveform(source_path: Path, settings: ClipSettings) -> np.ndarray:
    """Source file -> mono float32 (S,) at the target rate, cropped and optionally peak-normalised.

    Raises ClipSkipped for a missing, empty, unreadable, non-finite, too short or silent clip.
    """
    if source_path.is_file() and source_path.stat().st_size == 0:
        raise ClipSkipped("empty", "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():  # librosa's fallback decoder warns before it tries; the skip says enough
            warnings.simplefilter("ignore")
            waveform = load_audio(source_path, settings.sample_rate)
    except AudioLoadError as error:
        if error.reason.startswith("contains NaN"):
            raise ClipSkipped("non_finite", error.reason) from error
        raise ClipSkipped(_LOAD_ERROR_CATEGORIES.get(error.reason, "unreadable"), error.reason) from error
    except Exception as error:  # a decoder or resampler failing on a malformed file is a bad file, not a crash
        raise ClipSkipped("unreadable", f"unreadable audio ({type(error).__name__}: {error})") from error
    if waveform.shape[0] < settings.min_samples:
        raise ClipSkipped(
            "too_short",
            f"too short ({waveform.shape[0] / settings.sample_rate:.3f} s < "
            f"{settings.min_samples / settings.sample_rate:.3f} s)",
        )
    if settings.max_samples is not None:
        waveform = waveform[: settings.max_samples]
    peak = float(np.abs(waveform).max())
    if peak < settings.silence_peak_threshold:
        raise ClipSkipped("silent", f"silent (peak {peak:.2e} < {settings.silence_peak_threshold:.2e})")
    if settings.peak_normalize is not None:
        waveform = waveform * np.float32(settings.peak_normalize / peak)
    return waveform


def _save_mel(path: Path, mel: np.ndarray) -> None:
    temp_path = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    with open(temp_path, "wb") as handle:
        np.save(handle, mel)
    os.replace(temp_path, path)


def process_clip(job: ClipJob, settings: ClipSettings, front_end: LogMelSpectrogram) -> ClipResult:
    """Make one clip's wav and mel (status "processed"), or say why not ("skipped"); never raises for a bad
    source file."""
    wav_path, mel_path = Path(job.wav_path), Path(job.mel_path)
    mel_path.unlink(missing_ok=True)  # a stale mel must not mark a clip complete while its wav is rewritten
    try:
        waveform = load_checked_waveform(Path(job.source_path), settings)
    except ClipSkipped as skip:
        return ClipResult(job.uid, "skipped", category=skip.category, reason=skip.reason)
    save_wav(wav_path, waveform, settings.sample_rate)
    # The mel is computed from the 16-bit samples as stored, so wav and mel on disk agree exactly.
    stored, _ = soundfile.read(str(wav_path), dtype="float32")
    mel = compute_log_mel(stored, front_end)
    _save_mel(mel_path, mel)
    return ClipResult(job.uid, "processed", num_samples=stored.shape[0], mel_frames=mel.shape[1])


_worker_settings: ClipSettings | None = None
_worker_front_end: LogMelSpectrogram | None = None


def init_worker(settings: ClipSettings, mel_config: MelConfig) -> None:
    """Pool initializer: one single-threaded front end per worker process (workers already fill the cores)."""
    global _worker_settings, _worker_front_end
    torch.set_num_threads(1)
    _worker_settings = settings
    _worker_front_end = build_log_mel(mel_config)


def process_clip_in_worker(job: ClipJob) -> ClipResult:
    """`process_clip` with the worker's settings and front end (see `init_worker`)."""
    return process_clip(job, _worker_settings, _worker_front_end)
