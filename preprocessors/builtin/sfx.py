"""Procedural sound effects: beeps, knocks, tones, hums, noise bursts and pitch sweeps, synthesised with numpy.

A clip is one event or a sustained event followed by a repeated one ("a low hum, then three short high beeps").
`plan_sfx` draws every attribute the captions state (pitch, count, rising/falling, tone vs noise, loud vs quiet,
short vs long) plus the exact timing and frequencies; `render_sfx` turns that plan into samples, so the
attributes are true by construction and checkable: f0_hz / band_hz / sweep_hz by an FFT, onsets_s by an energy
envelope, rms_db by `levels.active_rms_db`.
"""

import numpy as np

from preprocessors.builtin.levels import PEAK_LIMIT, fade_edges, frame_energy_db, limit_peak, scale_to_active_rms

REPEATED_SOUNDS = ("beep", "knock")
SUSTAINED_SOUNDS = ("tone", "hum", "noise", "sweep")
# Probability of each sound for a single-event clip, in the order of REPEATED_SOUNDS + SUSTAINED_SOUNDS.
SINGLE_EVENT_WEIGHTS = (0.3, 0.2, 0.125, 0.125, 0.125, 0.125)
COMBO_PROBABILITY = 0.3

# Frequencies are a factor of 3+ apart between "low" and "high" so a pitch tracker separates them easily.
TONE_HZ = {"low": (150.0, 350.0), "high": (1000.0, 2000.0)}
KNOCK_HZ = {"low": (90.0, 200.0), "high": (700.0, 1400.0)}
HUM_HZ = (55.0, 120.0)
NOISE_BAND_HZ = {"low": (40.0, 400.0), "high": (3000.0, 7000.0)}
SWEEP_LOW_HZ = (200.0, 400.0)
SWEEP_HIGH_HZ = (1500.0, 2500.0)

# Active-RMS targets (dBFS): loud and quiet differ by 15-19 dB and loud never reaches the peak limit.
LOUDNESS_DB = {"loud": -19.0, "quiet": -36.0}
LOUDNESS_JITTER_DB = 1.0

BEEP_SECONDS = {"short": (0.06, 0.12), "long": (0.3, 0.5)}
KNOCK_SECONDS = 0.25
KNOCK_DECAY_SECONDS = (0.025, 0.05)
REPEAT_GAP_SECONDS = (0.15, 0.3)
SUSTAINED_SHORT_SECONDS = (0.4, 0.7)
SUSTAINED_LONG_MIN_SECONDS = 1.0
EVENT_GAP_SECONDS = (0.3, 0.6)
LEAD_IN_SECONDS = (0.1, 0.4)
TAIL_SECONDS = 0.15
MIN_CLIP_SECONDS = 2.0

HELD_OUT = ({"pitch": "high", "count": 3},)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _new_event(sound: str) -> dict:
    return {
        "sound": sound,
        "pitch": None,
        "count": 1,
        "sweep": None,
        "length": None,
        "f0_hz": None,
        "band_hz": None,
        "sweep_hz": None,
        "burst_s": None,
        "onsets_s": [],
    }


def _sample_repeated(rng: np.random.Generator, sound: str) -> dict:
    """A beep or knock repeated 1-4 times; timing is filled in by the layout."""
    event = _new_event(sound)
    event["pitch"] = str(rng.choice(("low", "high")))
    event["count"] = int(rng.integers(1, 5))
    if event["sound"] == "beep":
        event["length"] = str(rng.choice(("short", "long")))
        event["f0_hz"] = _uniform(rng, TONE_HZ[event["pitch"]])
        event["burst_s"] = _uniform(rng, BEEP_SECONDS[event["length"]])
    else:
        event["length"] = "short"
        event["f0_hz"] = _uniform(rng, KNOCK_HZ[event["pitch"]])
        event["burst_s"] = KNOCK_SECONDS
    return event


def _sample_sustained(rng: np.random.Generator, sound: str, clip_seconds: float) -> dict:
    """One tone, hum, noise or sweep of a short (0.4-0.7 s) or long (>= 1 s) duration."""
    event = _new_event(sound)
    event["length"] = str(rng.choice(("short", "long")))
    if event["length"] == "short":
        event["burst_s"] = _uniform(rng, SUSTAINED_SHORT_SECONDS)
    else:
        longest = max(SUSTAINED_LONG_MIN_SECONDS, min(3.0, 0.6 * clip_seconds))
        event["burst_s"] = _uniform(rng, (SUSTAINED_LONG_MIN_SECONDS, longest))
    if sound == "tone":
        event["pitch"] = str(rng.choice(("low", "high")))
        event["f0_hz"] = _uniform(rng, TONE_HZ[event["pitch"]])
    elif sound == "hum":
        event["pitch"] = "low"
        event["f0_hz"] = _uniform(rng, HUM_HZ)
    elif sound == "noise":
        event["pitch"] = str(rng.choice(("low", "high")))
        event["band_hz"] = list(NOISE_BAND_HZ[event["pitch"]])
    else:
        event["sweep"] = str(rng.choice(("rising", "falling")))
        low, high = _uniform(rng, SWEEP_LOW_HZ), _uniform(rng, SWEEP_HIGH_HZ)
        event["sweep_hz"] = [low, high] if event["sweep"] == "rising" else [high, low]
    return event


def _layout(rng: np.random.Generator, events: list[dict]) -> float:
    """Set each event's onsets_s in time order; returns the end time of the last sound (s)."""
    time = _uniform(rng, LEAD_IN_SECONDS)
    for position, event in enumerate(events):
        if position > 0:
            time += _uniform(rng, EVENT_GAP_SECONDS)
        onsets = []
        for repeat in range(event["count"]):
            if repeat > 0:
                time += _uniform(rng, REPEAT_GAP_SECONDS)
            onsets.append(time)
            time += event["burst_s"]
        event["onsets_s"] = onsets
    return time


def _rounded(event: dict) -> dict:
    """JSON-friendly copy: times and frequencies rounded so the caption file stays small and readable."""
    rounded = dict(event)
    for key in ("f0_hz", "burst_s"):
        if rounded[key] is not None:
            rounded[key] = round(rounded[key], 4)
    for key in ("band_hz", "sweep_hz", "onsets_s"):
        if rounded[key] is not None:
            rounded[key] = [round(value, 4) for value in rounded[key]]
    return rounded


def plan_sfx(rng: np.random.Generator, clip_seconds: float) -> dict:
    """Draw one clip's attributes.

    Returns {"loudness", "rms_db", "events": [event, ...] in time order, and the last event's keys copied flat:
    "sound", "pitch", "count", "sweep", "length", "f0_hz", "band_hz", "sweep_hz", "burst_s", "onsets_s"}. In a
    two-event clip the first event is sustained (count 1), so "count" and the held-out (pitch, count) pair always
    refer to the flat (last) event.
    """
    if clip_seconds < MIN_CLIP_SECONDS:
        raise ValueError(f"sound-effect clips need clip_seconds >= {MIN_CLIP_SECONDS}, got {clip_seconds}")
    loudness = str(rng.choice(("loud", "quiet")))
    rms_db = LOUDNESS_DB[loudness] + _uniform(rng, (-LOUDNESS_JITTER_DB, LOUDNESS_JITTER_DB))
    combo = bool(rng.random() < COMBO_PROBABILITY)
    # Rejection keeps every drawn layout inside the clip; with clip_seconds >= 2 s a fit is found within a few draws.
    for _ in range(1000):
        if combo:
            first = _sample_sustained(rng, str(rng.choice(SUSTAINED_SOUNDS)), clip_seconds)
            events = [first, _sample_repeated(rng, str(rng.choice(REPEATED_SOUNDS)))]
        else:
            sound = str(rng.choice(REPEATED_SOUNDS + SUSTAINED_SOUNDS, p=SINGLE_EVENT_WEIGHTS))
            repeated = sound in REPEATED_SOUNDS
            events = [_sample_repeated(rng, sound) if repeated else _sample_sustained(rng, sound, clip_seconds)]
        if _layout(rng, events) <= clip_seconds - TAIL_SECONDS:
            break
    else:
        raise RuntimeError(f"could not fit a sound-effect layout into {clip_seconds} s")
    events = [_rounded(event) for event in events]
    attributes = {"loudness": loudness, "rms_db": round(rms_db, 3), "events": events}
    attributes.update(dict(events[-1]))
    return attributes


def is_held_out(attributes: dict) -> bool:
    """True when any event has a held-out (pitch, count) pair; such clips go to the test split only."""
    return any(
        all(event[key] == value for key, value in combination.items())
        for event in attributes["events"]
        for combination in HELD_OUT
    )


def _sine(frequency_hz: float, num_samples: int, sample_rate: int, phase: float = 0.0) -> np.ndarray:
    time = np.arange(num_samples, dtype=np.float64) / sample_rate
    return np.sin(2.0 * np.pi * frequency_hz * time + phase)


def _band_noise(rng: np.random.Generator, num_samples: int, sample_rate: int, band_hz: list[float]) -> np.ndarray:
    """White noise kept only inside band_hz (FFT mask); band edges above Nyquist are clipped to it."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.fft.rfftfreq(num_samples, d=1.0 / sample_rate)
    spectrum[(frequencies < band_hz[0]) | (frequencies > min(band_hz[1], 0.95 * sample_rate / 2))] = 0.0
    return np.fft.irfft(spectrum, n=num_samples)


def _render_burst(event: dict, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One occurrence of the event (the clip level is set once all events are placed)."""
    num_samples = int(round(event["burst_s"] * sample_rate))
    sound = event["sound"]
    if sound in ("beep", "tone"):
        phase = rng.uniform(0.0, 2.0 * np.pi)
        burst = _sine(event["f0_hz"], num_samples, sample_rate, phase)
        burst += 0.15 * _sine(2.0 * event["f0_hz"], num_samples, sample_rate, 2.0 * phase)
        fade_seconds = 0.005 if sound == "beep" else 0.02
    elif sound == "knock":
        time = np.arange(num_samples, dtype=np.float64) / sample_rate
        decay = np.exp(-time / _uniform(rng, KNOCK_DECAY_SECONDS))
        # A resonance at f0 plus a weaker inharmonic mode, as in a struck plate or door panel.
        body = _sine(event["f0_hz"], num_samples, sample_rate)
        body += 0.3 * _sine(2.3 * event["f0_hz"], num_samples, sample_rate)
        click = rng.standard_normal(num_samples) * np.exp(-time / 0.003)
        burst = decay * body + 0.15 * click
        fade_seconds = 0.001
    elif sound == "hum":
        harmonics = np.arange(1, 9)
        phases = rng.uniform(0.0, 2.0 * np.pi, size=harmonics.size)
        burst = sum(_sine(event["f0_hz"] * k, num_samples, sample_rate, p) / k for k, p in zip(harmonics, phases))
        fade_seconds = 0.05
    elif sound == "noise":
        burst = _band_noise(rng, num_samples, sample_rate, event["band_hz"])
        fade_seconds = 0.03
    else:
        start_hz, end_hz = event["sweep_hz"]
        time = np.arange(num_samples, dtype=np.float64) / sample_rate
        duration = num_samples / sample_rate
        ratio = end_hz / start_hz
        # Exponential chirp: instantaneous frequency start * ratio**(t / duration).
        burst = np.sin(2.0 * np.pi * start_hz * duration / np.log(ratio) * (ratio ** (time / duration) - 1.0))
        fade_seconds = 0.01
    # Unit RMS in the loudest 20 ms frame: a knock's attack then sits at the level of a sustained sound, which
    # keeps its peak (and so every loud clip) below the limit when the clip level is set.
    burst = burst / np.sqrt(10.0 ** (frame_energy_db(burst, sample_rate).max() / 10.0))
    return fade_edges(burst.astype(np.float32), int(round(fade_seconds * sample_rate)))


def render_sfx(attributes: dict, rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    """Plan -> float32 samples (num_samples,) whose active RMS equals attributes["rms_db"]."""
    waveform = np.zeros(num_samples, dtype=np.float32)
    for event in attributes["events"]:
        for onset in event["onsets_s"]:
            burst = _render_burst(event, rng, sample_rate)
            start = int(round(onset * sample_rate))
            end = min(num_samples, start + burst.size)
            waveform[start:end] += burst[: end - start]
    waveform = scale_to_active_rms(waveform, sample_rate, attributes["rms_db"])
    return limit_peak(waveform, PEAK_LIMIT)
