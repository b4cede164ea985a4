"""Level measurement and gain helpers shared by the three built-in families.

Loudness in the built-in set is the *active RMS*: the RMS over the frames that are sounding (within
`ACTIVE_RANGE_DB` of the loudest frame), in dB re full scale. Measuring only the sounding frames makes "three
short beeps" and "a long tone" at the same level get the same number, so "loud" vs "quiet" is a property of the
sound and not of how much silence surrounds it. Evaluation measures generated audio with the same function.
"""

import numpy as np

FRAME_SECONDS = 0.02
ACTIVE_RANGE_DB = 30.0
PEAK_LIMIT = 0.89  # -1 dBFS: headroom so 16-bit PCM never clips


def frame_energy_db(waveform: np.ndarray, sample_rate: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """Mean-square energy per non-overlapping frame, in dB: waveform (S,) -> (S // frame,)."""
    frame = max(1, int(round(frame_seconds * sample_rate)))
    usable = len(waveform) // frame * frame
    frames = np.asarray(waveform[:usable], dtype=np.float64).reshape(-1, frame)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def active_rms_db(waveform: np.ndarray, sample_rate: int) -> float:
    """RMS (dBFS) over the frames within ACTIVE_RANGE_DB of the loudest frame; -inf-like (-200) for silence."""
    energy_db = frame_energy_db(waveform, sample_rate)
    if energy_db.size == 0 or energy_db.max() <= -190.0:
        return -200.0
    active = energy_db[energy_db >= energy_db.max() - ACTIVE_RANGE_DB]
    return float(10.0 * np.log10(np.mean(10.0 ** (active / 10.0))))


def scale_to_active_rms(waveform: np.ndarray, sample_rate: int, target_db: float) -> np.ndarray:
    """Multiply (S,) so that `active_rms_db` equals `target_db` (the active set is scale-invariant)."""
    current_db = active_rms_db(waveform, sample_rate)
    if current_db <= -190.0:
        raise ValueError("cannot set the level of a silent waveform")
    return waveform * np.float32(10.0 ** ((target_db - current_db) / 20.0))


def limit_peak(waveform: np.ndarray, peak: float = PEAK_LIMIT) -> np.ndarray:
    """Scale (S,) down, never up, so its absolute peak is at most `peak`."""
    current = float(np.max(np.abs(waveform)))
    return waveform * np.float32(peak / current) if current > peak else waveform


def fade_edges(waveform: np.ndarray, fade_samples: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out over `fade_samples` at each end of (S,), to avoid clicks."""
    fade = min(fade_samples, len(waveform) // 2)
    if fade <= 0:
        return waveform
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float64))).astype(np.float32)
    shaped = waveform.astype(np.float32, copy=True)
    shaped[:fade] *= ramp
    shaped[-fade:] *= ramp[::-1]
    return shaped


def colored_noise(rng: np.random.Generator, num_samples: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise (S,) with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.arange(spectrum.size, dtype=np.float64)
    frequencies[0] = 1.0
    spectrum *= frequencies ** (-exponent / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=num_samples)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)
