"""Attribute measurements on synthesised clips (clean and noisy), on the built-in generator's clips, and the
table-driven accuracy."""

import numpy as np
import pytest

from evaluation.metrics.attributes import (
    AttributeThresholds,
    MeasurementSettings,
    attribute_accuracy,
    dominant_frequency_track,
    label_measurements,
    measure_clip,
)
from preprocessors.builtin.sfx import plan_sfx, render_sfx

SAMPLE_RATE = 16000
CLIP_SECONDS = 4.0
# White noise at -50 dBFS: 20 dB under the quiet test level, 40 dB under the loud one.
NOISE_LEVELS = (0.0, 0.003)


def _burst(start_hz: float, seconds: float, amplitude: float, end_hz: float | None = None) -> np.ndarray:
    """A sine (or an exponential sweep from start_hz to end_hz) with 10 ms raised-cosine fades."""
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    if end_hz is None:
        phase = 2 * np.pi * start_hz * time
    else:
        rate = np.log(end_hz / start_hz) / seconds
        phase = 2 * np.pi * start_hz * np.expm1(rate * time) / rate
    burst = amplitude * np.sin(phase)
    fade = int(0.01 * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    burst[:fade] *= ramp
    burst[-fade:] *= ramp[::-1]
    return burst


def _clip(bursts: list[tuple[float, np.ndarray]], noise: float, seed: int = 0) -> np.ndarray:
    waveform = np.zeros(int(CLIP_SECONDS * SAMPLE_RATE))
    for start_s, burst in bursts:
        start = int(start_s * SAMPLE_RATE)
        waveform[start : start + len(burst)] += burst
    waveform += noise * np.random.default_rng(seed).standard_normal(len(waveform))
    return waveform.astype(np.float32)


@pytest.mark.parametrize("noise", NOISE_LEVELS)
@pytest.mark.parametrize(("frequency_hz", "pitch"), [(200.0, "low"), (1500.0, "high")])
def test_pitch(noise, frequency_hz, pitch):
    measurement = measure_clip(_clip([(0.5, _burst(frequency_hz, 1.0, 0.3))], noise), SAMPLE_RATE)
    assert measurement["pitch"] == pitch
    assert measurement["f0_hz"] == pytest.approx(frequency_hz, rel=0.01)


@pytest.mark.parametrize("noise", NOISE_LEVELS)
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_count_of_beeps(noise, count):
    beeps = [(0.3 + 0.5 * index, _burst(1000.0, 0.1, 0.3)) for index in range(count)]
    measurement = measure_clip(_clip(beeps, noise, seed=count), SAMPLE_RATE, sound="beep")
    assert measurement["count"] == count
    assert measurement["onsets_s"] == pytest.approx([0.3 + 0.5 * index for index in range(count)], abs=0.03)
    assert measurement["length"] == "short"


def test_count_refers_to_the_repeats_after_a_sustained_sound():
    # "A low tone, then three high beeps": count 3 and pitch high describe the last event, as in the records.
    bursts = [(0.2, _burst(250.0, 1.0, 0.3))] + [(1.6 + 0.4 * index, _burst(1500.0, 0.1, 0.3)) for index in range(3)]
    measurement = measure_clip(_clip(bursts, 0.003), SAMPLE_RATE, sound="beep")
    assert (measurement["count"], measurement["pitch"]) == (3, "high")
    assert len(measurement["detected_events"]) == 4


@pytest.mark.parametrize("noise", NOISE_LEVELS)
@pytest.mark.parametrize(("amplitude", "loudness"), [(0.5, "loud"), (0.03, "quiet")])
def test_loudness(noise, amplitude, loudness):
    # Active RMS of a sine: 20 log10(amplitude / sqrt 2), i.e. -9 and -33.5 dBFS, whatever the silence around it.
    measurement = measure_clip(_clip([(1.0, _burst(440.0, 0.3, amplitude))], noise), SAMPLE_RATE)
    assert measurement["loudness"] == loudness
    assert measurement["loudness_dbfs"] == pytest.approx(20 * np.log10(amplitude / np.sqrt(2)), abs=1.0)


@pytest.mark.parametrize("noise", NOISE_LEVELS)
@pytest.mark.parametrize(("start_hz", "end_hz", "sweep"), [(300.0, 1200.0, "rising"), (1200.0, 300.0, "falling"),
                                                          (600.0, None, None)])
def test_sweep_direction(noise, start_hz, end_hz, sweep):
    measurement = measure_clip(_clip([(0.5, _burst(start_hz, 1.0, 0.3, end_hz))], noise), SAMPLE_RATE)
    assert measurement["sweep"] == sweep
    if sweep is not None:
        assert abs(measurement["sweep_octaves_per_s"]) == pytest.approx(2.0, rel=0.1)  # two octaves in one second


@pytest.mark.parametrize("noise", NOISE_LEVELS)
@pytest.mark.parametrize(("seconds", "length"), [(0.4, "short"), (1.5, "long")])
def test_length_of_a_tone(noise, seconds, length):
    measurement = measure_clip(_clip([(0.5, _burst(440.0, seconds, 0.3))], noise), SAMPLE_RATE, sound="tone")
    assert measurement["length"] == length
    assert measurement["event_duration_s"] == pytest.approx(seconds, abs=0.06)


def test_frequency_track_stays_in_the_searched_band_on_a_low_rumble():
    """Brown noise piles its energy below the lowest searched bin: the peak refinement must not extrapolate."""
    rumble = np.cumsum(np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE))
    rumble = (0.5 * (rumble - rumble.mean()) / np.abs(rumble - rumble.mean()).max()).astype(np.float32)
    settings = MeasurementSettings()
    frequencies = dominant_frequency_track(rumble, SAMPLE_RATE, settings)
    bin_hz = SAMPLE_RATE / settings.n_fft
    assert np.all(frequencies >= settings.min_frequency_hz - bin_hz) and np.all(frequencies <= SAMPLE_RATE / 2)
    assert measure_clip(rumble, SAMPLE_RATE)["pitch"] == "low"


def test_silence_has_no_events():
    measurement = measure_clip(np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    assert measurement["count"] == 0 and measurement["pitch"] is None and measurement["length"] is None
    assert measurement["loudness"] == "quiet"


def test_length_threshold_depends_on_the_prompted_sound():
    measurement = {"f0_hz": 440.0, "onsets_s": [0.1], "loudness_dbfs": -20.0, "sweep_octaves_per_s": 0.0,
                   "event_duration_s": 0.45}
    assert label_measurements(measurement, sound="beep")["length"] == "long"
    assert label_measurements(measurement, sound="tone")["length"] == "short"
    assert label_measurements(measurement, thresholds=AttributeThresholds(length_s=0.3))["length"] == "long"


def test_measurements_agree_with_the_builtin_generator():
    """Clips planned and rendered by the built-in dataset's own code, some with background noise."""
    records, measurements = [], {}
    for index in range(45):
        attributes = plan_sfx(np.random.default_rng(index), CLIP_SECONDS)
        waveform = render_sfx(attributes, np.random.default_rng(10_000 + index), int(CLIP_SECONDS * SAMPLE_RATE),
                              SAMPLE_RATE)
        noise = NOISE_LEVELS[index % 2] * np.random.default_rng(index).standard_normal(len(waveform))
        uid = f"clip{index}"
        records.append({"Uid": uid, "Family": "sfx", "Attributes": attributes})
        measurements[uid] = measure_clip(waveform + noise.astype(np.float32), SAMPLE_RATE, sound=attributes["sound"])
    accuracy = attribute_accuracy(records, measurements)
    assert set(accuracy) == {"sfx/pitch", "sfx/count", "sfx/sweep", "sfx/loudness", "sfx/length"}
    assert min(accuracy.values()) >= 0.95, accuracy


def test_attribute_accuracy_is_table_driven():
    records = [
        {"Uid": "a", "Family": "sfx", "Attributes": {"pitch": "high", "sweep": None, "count": 2}},
        {"Uid": "b", "Family": "sfx", "Attributes": {"pitch": None, "sweep": "rising", "count": 1}},
        {"Uid": "c", "Family": "animals", "Attributes": {"sources": ["dog", "cat"]}},
        {"Uid": "d", "Family": "music", "Attributes": {"instrument": "piano", "bpm": 120.0}},
    ]
    measurements = {
        "a": {"pitch": "High", "sweep": "none", "count": 3},
        "b": {"pitch": "low", "sweep": "falling", "count": 1},
        "c": {"sources": ["cat", "dog"]},
        "d": {"instrument": "organ", "bpm": 120.0},
    }
    assert attribute_accuracy(records, measurements) == {
        "animals/sources": 1.0,  # lists compare as multisets
        "music/instrument": 0.0,  # "bpm" is continuous: not scored
        "sfx/count": 0.5,
        "sfx/pitch": 1.0,  # record b's pitch None means "does not apply": not scored
        "sfx/sweep": 0.5,  # None is a label for sweep ("no sweep")
    }
    with pytest.raises(ValueError, match="no measurement"):
        attribute_accuracy(records, {"a": measurements["a"]})
