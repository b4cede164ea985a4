"""Attribute adherence: measure physical attributes of a clip from the signal and score them against captions.

The built-in procedural dataset (`preprocessors.builtin`) gives every clip structured attributes
(`record["Attributes"]`); for sound effects the flat keys describe the clip's last event ("a low hum, then three
short high beeps": pitch high, count 3, length short). Physical ones are read off the waveform here:

- events: onsets and offsets of a smoothed RMS envelope with hysteresis thresholds placed between the clip's
  noise floor and its peak (steady background noise neither splits nor merges events); the trailing run of
  events alike in frequency and duration is the "last event" (its repeats);
- pitch: median dominant frequency of those events ("f0_hz"), "high" above `pitch_hz`, else "low";
- count: the number of events in that run;
- sweep: per event, the Theil-Sen slope of log2(dominant frequency) over time, kept only when its 99%
  confidence interval excludes 0 (noise bands give random peaks, not sweeps); "rising" / "falling" beyond
  +- `sweep_octaves_per_s`, else None;
- length: median event duration, against a threshold that depends on the prompt's sound type ("a long beep"
  is shorter than "a short tone" in the built-in set);
- loudness: RMS over the frames of every event, in dBFS, "loud" above `loudness_dbfs`. This equals the
  built-in set's "active RMS" (`preprocessors.builtin.levels.active_rms_db`) on clean clips, but unlike it
  ignores background noise between events, which would otherwise pull a few short loud beeps down to "quiet".

`measure_clip` returns the raw numbers and the labels; `attribute_accuracy` compares labels with the records,
table-driven by `SCORED_ATTRIBUTES`, so labels predicted by a classifier (sound type, instrument, animal sources)
are scored the same way by merging them into the measurement dicts.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import librosa
import numpy as np
import scipy.stats

# Categorical attributes scored per family (keys of record["Attributes"]); an attribute counts for a clip when
# both its record and its measurement have it. Continuous values ("f0_hz", "bpm", "onsets_s") are not listed.
SCORED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "sfx": ("sound", "pitch", "count", "sweep", "loudness", "length"),
    "animals": ("sources",),
    "music": ("instrument", "tempo", "register", "texture"),
}
# Attributes for which a record's None is itself a label ("no sweep"); for the others it means "does not apply"
# (a sweep has no pitch) and the record is not scored on that attribute.
NONE_IS_A_LABEL = frozenset({"sweep"})
# Label vocabulary of the signal measurements: (at or below threshold, above threshold).
PITCH_LABELS = ("low", "high")
LOUDNESS_LABELS = ("quiet", "loud")
LENGTH_LABELS = ("short", "long")
SWEEP_LABELS = ("falling", "rising")
# Level given to digital silence so every number stays finite (and JSON-serialisable).
SILENCE_FLOOR_DB = -120.0


@dataclass(frozen=True)
class MeasurementSettings:
    """Analysis settings of the envelope and the spectral peak tracker (times in seconds, levels in dB).

    Event thresholds: the noise floor is the `noise_floor_percentile` of the envelope, at most `max_depth_db`
    below the peak (so digital silence does not drag thresholds down); when the floor is within
    `min_contrast_db` of the peak the clip is one continuous sound and the floor is put `default_depth_db`
    below the peak. An event starts when the envelope rises above floor + `onset_fraction` x (peak - floor) and
    ends when it falls below floor + `offset_fraction` x (peak - floor); gaps shorter than `min_gap_s` are
    bridged and events shorter than `min_event_s` dropped. A clip whose peak is under `silence_dbfs` has none.
    Events count as repeats of the last one when their frequencies are within a factor `repeat_f0_ratio` (a
    semitone) and durations within a factor `repeat_duration_ratio` of it (decaying knocks vary in measured length).
    """

    hop_s: float = 0.01
    frame_s: float = 0.02
    smoothing_s: float = 0.03
    silence_dbfs: float = -60.0
    noise_floor_percentile: float = 10.0
    min_contrast_db: float = 6.0
    default_depth_db: float = 30.0
    max_depth_db: float = 60.0
    onset_fraction: float = 0.5
    offset_fraction: float = 0.3
    min_event_s: float = 0.03
    min_gap_s: float = 0.05
    repeat_f0_ratio: float = 1.06
    repeat_duration_ratio: float = 2.5
    # Spectral peak tracking: FFT size (64 ms at 16 kHz: fine enough for a 55 Hz hum, short enough to follow a
    # fast sweep) and lowest frequency searched. The sweep fit uses one frame per FFT window (overlapping frames
    # are correlated and would make the confidence interval too narrow) and needs `min_sweep_points` of them.
    n_fft: int = 1024
    min_frequency_hz: float = 30.0
    min_sweep_points: int = 5
    sweep_confidence: float = 0.99


def _default_length_by_sound() -> dict[str, float]:
    # Built-in set: beeps 0.06-0.12 s vs 0.3-0.5 s; knocks always short (0.25 s burst); sustained sounds
    # 0.4-0.7 s vs >= 1 s. Measured durations run a few tens of ms long (envelope smoothing).
    return {"beep": 0.2, "knock": 0.35, "tone": 0.85, "hum": 0.85, "noise": 0.85, "sweep": 0.85}


@dataclass(frozen=True)
class AttributeThresholds:
    """Decision thresholds turning measurements into labels, set between the built-in generator's ranges
    (`preprocessors/builtin/sfx.py`): tones 150-350 vs 1000-2000 Hz, knocks 90-200 vs 700-1400 Hz, noise bands
    40-400 vs 3000-7000 Hz; active RMS -19 vs -36 dBFS; sweeps of 0.6 octave/s or faster. `length_s` applies
    when the prompt's sound type is not in `length_s_by_sound`."""

    pitch_hz: float = 500.0
    loudness_dbfs: float = -27.5
    sweep_octaves_per_s: float = 0.3
    length_s: float = 0.5
    length_s_by_sound: dict[str, float] = field(default_factory=_default_length_by_sound)


def _level_db(values: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(values, 10.0 ** (SILENCE_FLOOR_DB / 20.0)))


def frame_rms(waveform: np.ndarray, sample_rate: int, settings: MeasurementSettings) -> np.ndarray:
    """Centred RMS per hop, (1 + S // hop,): the frame grid shared by the envelope and the peak tracker."""
    hop_length = round(settings.hop_s * sample_rate)
    frame_length = max(round(settings.frame_s * sample_rate), hop_length)
    return librosa.feature.rms(y=waveform, frame_length=frame_length, hop_length=hop_length, center=True,
                               pad_mode="constant")[0]


def detect_events(rms: np.ndarray, settings: MeasurementSettings = MeasurementSettings()) -> list[tuple[int, int]]:
    """Sound events as [start, end) frame ranges of a `frame_rms` envelope (thresholds: `MeasurementSettings`)."""
    smoothing = max(1, round(settings.smoothing_s / settings.hop_s))
    envelope = _level_db(np.convolve(rms, np.ones(smoothing) / smoothing, mode="same"))
    peak = float(envelope.max())
    if peak < settings.silence_dbfs:
        return []
    floor = float(np.percentile(envelope, settings.noise_floor_percentile))
    if peak - floor < settings.min_contrast_db:
        floor = peak - settings.default_depth_db
    floor = max(floor, peak - settings.max_depth_db)
    onset_level = floor + settings.onset_fraction * (peak - floor)
    offset_level = floor + settings.offset_fraction * (peak - floor)

    events: list[tuple[int, int]] = []
    start = None
    for index, level in enumerate(envelope):
        if start is None and level > onset_level:
            start = index
        elif start is not None and level < offset_level:
            events.append((start, index))
            start = None
    if start is not None:
        events.append((start, len(envelope)))

    min_gap = round(settings.min_gap_s / settings.hop_s)
    merged: list[tuple[int, int]] = []
    for start, end in events:
        if merged and start - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    min_event = round(settings.min_event_s / settings.hop_s)
    return [(start, end) for start, end in merged if end - start >= min_event]


def dominant_frequency_track(
    waveform: np.ndarray, sample_rate: int, settings: MeasurementSettings = MeasurementSettings()
) -> np.ndarray:
    """Per-frame frequency (Hz) of the largest STFT peak above `min_frequency_hz`, on the `frame_rms` grid; the
    peak bin is refined by parabolic interpolation of the log magnitude."""
    hop_length = round(settings.hop_s * sample_rate)
    magnitude = np.abs(librosa.stft(waveform, n_fft=settings.n_fft, hop_length=hop_length, center=True))
    lowest_bin = max(1, int(np.ceil(settings.min_frequency_hz * settings.n_fft / sample_rate)))
    log_magnitude = _level_db(magnitude)
    peak_bins = lowest_bin + np.argmax(log_magnitude[lowest_bin:-1], axis=0)
    frames = np.arange(magnitude.shape[1])
    below, at, above = (log_magnitude[peak_bins + step, frames] for step in (-1, 0, 1))
    # <= 0 at a maximum; the cap keeps a flat top (below == at == above) at offset 0 instead of 0 / 0. A peak on
    # the lowest searched bin may have a larger bin below it (no maximum there): the clip keeps the offset within
    # half a bin, as it is at a true maximum, instead of a huge or negative frequency.
    curvature = np.minimum(below - 2.0 * at + above, -1e-9)
    offset = np.clip(0.5 * (below - above) / curvature, -0.5, 0.5)
    return (peak_bins + offset) * sample_rate / settings.n_fft


def _sweep_rate(frequencies: np.ndarray, sample_rate: int, settings: MeasurementSettings) -> float:
    """Theil-Sen slope of log2(frequency) over time (octaves / s) of one event; 0 unless significant."""
    step = max(1, round(settings.n_fft / (settings.hop_s * sample_rate)))
    frequencies = frequencies[::step]
    if len(frequencies) < settings.min_sweep_points:
        return 0.0
    times = np.arange(len(frequencies)) * step * settings.hop_s
    fit = scipy.stats.theilslopes(np.log2(frequencies), times, alpha=settings.sweep_confidence)
    return float(fit.slope) if fit.low_slope > 0 or fit.high_slope < 0 else 0.0


def _last_run(events: list[dict[str, float]], settings: MeasurementSettings) -> list[dict[str, float]]:
    """The trailing events alike in frequency and duration to the last one (the repeats of the last event)."""
    if not events:
        return []
    last = events[-1]
    run = [last]
    for event in reversed(events[:-1]):
        f0_ratio = max(event["f0_hz"], last["f0_hz"]) / min(event["f0_hz"], last["f0_hz"])
        duration_ratio = max(event["duration_s"], last["duration_s"]) / min(event["duration_s"], last["duration_s"])
        if f0_ratio > settings.repeat_f0_ratio or duration_ratio > settings.repeat_duration_ratio:
            break
        run.insert(0, event)
    return run


def measure_clip(
    waveform: np.ndarray,
    sample_rate: int,
    *,
    sound: str | None = None,
    settings: MeasurementSettings = MeasurementSettings(),
    thresholds: AttributeThresholds = AttributeThresholds(),
) -> dict[str, Any]:
    """Measure one mono clip (S,).

    `sound` is the sound type the prompt asked for (record["Attributes"]["sound"]), used only to pick the
    length threshold. Returns "detected_events" (every event: onset_s, duration_s, f0_hz, sweep_octaves_per_s),
    the last event's run summarised as "onsets_s", "f0_hz", "event_duration_s", "sweep_octaves_per_s", the
    level of all events "loudness_dbfs", and the labels of `label_measurements`. A silent clip has no events,
    count 0, None for frequency and duration, and the level of the whole clip.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be mono (S,), got shape {waveform.shape}")
    frequencies = dominant_frequency_track(waveform, sample_rate, settings)
    rms = frame_rms(waveform, sample_rate, settings)
    # With an odd RMS frame length the two grids can differ by one frame at the end.
    frame_count = min(len(rms), len(frequencies))
    frequencies, rms = frequencies[:frame_count], rms[:frame_count]
    events = detect_events(rms, settings)
    detected = [
        {
            "onset_s": round(start * settings.hop_s, 3),
            "duration_s": round((end - start) * settings.hop_s, 3),
            "f0_hz": float(np.median(frequencies[start:end])),
            "sweep_octaves_per_s": _sweep_rate(frequencies[start:end], sample_rate, settings),
        }
        for start, end in events
    ]
    active = np.zeros(frame_count, dtype=bool)
    for start, end in events:
        active[start:end] = True
    level_frames = rms[active] if active.any() else rms
    run = _last_run(detected, settings)
    measurement: dict[str, Any] = {
        "detected_events": detected,
        "onsets_s": [event["onset_s"] for event in run],
        "f0_hz": float(np.median([event["f0_hz"] for event in run])) if run else None,
        "event_duration_s": float(np.median([event["duration_s"] for event in run])) if run else None,
        "sweep_octaves_per_s": float(np.median([event["sweep_octaves_per_s"] for event in run])) if run else 0.0,
        "loudness_dbfs": float(_level_db(np.sqrt(np.mean(level_frames.astype(np.float64) ** 2)))),
    }
    return {**measurement, **label_measurements(measurement, sound=sound, thresholds=thresholds)}


def label_measurements(
    measurement: Mapping[str, Any], *, sound: str | None = None, thresholds: AttributeThresholds = AttributeThresholds()
) -> dict[str, Any]:
    """Labels "pitch", "count", "loudness", "sweep", "length" from raw measurements (re-tunable without
    measuring again); `sound` picks the length threshold from `thresholds.length_s_by_sound`."""

    def split(value: float | None, threshold: float, labels: tuple[str, str]) -> str | None:
        return None if value is None else labels[int(value > threshold)]

    sweep = measurement["sweep_octaves_per_s"]
    length_threshold = thresholds.length_s_by_sound.get(sound, thresholds.length_s)
    return {
        "pitch": split(measurement["f0_hz"], thresholds.pitch_hz, PITCH_LABELS),
        "count": len(measurement["onsets_s"]),
        "loudness": split(measurement["loudness_dbfs"], thresholds.loudness_dbfs, LOUDNESS_LABELS),
        "sweep": SWEEP_LABELS[int(sweep > 0)] if abs(sweep) > thresholds.sweep_octaves_per_s else None,
        "length": split(measurement["event_duration_s"], length_threshold, LENGTH_LABELS),
    }


def _normalised_label(value: Any) -> Any:
    """Compare labels leniently: case and surrounding spaces ignored, "none"/"" equal None, lists as multisets."""
    if isinstance(value, (list, tuple)):
        return tuple(sorted(_normalised_label(item) for item in value))
    if isinstance(value, str):
        value = value.strip().lower()
        return None if value in ("", "none") else value
    return value


def attribute_accuracy(
    records: Iterable[Mapping[str, Any]],
    measurements: Mapping[str, Mapping[str, Any]],
    *,
    scored_attributes: Mapping[str, tuple[str, ...]] = SCORED_ATTRIBUTES,
) -> dict[str, float]:
    """Accuracy per "family/attribute" of measured labels against the records' attributes.

    `records` are dataset metadata entries ({"Uid", "Family", "Attributes": {...}}); `measurements` maps each
    Uid to its labels (from `measure_clip`, a classifier, or both merged). Every record must have a measurement.
    An attribute counts for a record when its family lists it, the measurement has it, and the record has a
    value for it (None counts as a value only for attributes in `NONE_IS_A_LABEL`).
    """
    hits: dict[str, list[bool]] = {}
    missing = []
    for record in records:
        uid = record["Uid"]
        if uid not in measurements:
            missing.append(uid)
            continue
        family = record.get("Family")
        attributes = record.get("Attributes") or {}
        for name in scored_attributes.get(family, ()):
            if name not in attributes or name not in measurements[uid]:
                continue
            expected = _normalised_label(attributes[name])
            if expected is None and name not in NONE_IS_A_LABEL:
                continue
            hits.setdefault(f"{family}/{name}", []).append(expected == _normalised_label(measurements[uid][name]))
    if missing:
        raise ValueError(f"{len(missing)} records have no measurement, e.g. {missing[:5]}")
    return {key: float(np.mean(values)) for key, values in sorted(hits.items())}
