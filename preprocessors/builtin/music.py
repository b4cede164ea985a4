"""Instrument music: short melodies or chord sequences rendered offline from the General MIDI soundfont
`TimGM6mb.sf2` that ships inside the `pretty_midi` wheel, with `tinysoundfont` (its pyaudio dependency is only
for live playback, so it is installed with --no-deps).

`plan_music` writes the whole score into the attributes (every note's start, end, pitch and velocity), so
tempo (onset rate), register (median MIDI pitch) and texture (notes per onset) are checkable from the record.
"""

import importlib.util
from pathlib import Path

import numpy as np

from preprocessors.builtin.levels import PEAK_LIMIT, limit_peak, scale_to_active_rms

# A few General MIDI programs that sound clearly different from each other (0-based program numbers).
INSTRUMENT_PROGRAMS = {"piano": 0, "organ": 19, "guitar": 24, "violin": 40, "flute": 73, "trumpet": 56}
# Inclusive MIDI pitch ranges per instrument and register; each is >= 12 semitones wide (any triad fits) and the
# two registers of an instrument are far enough apart that their median pitches differ by well over an octave.
REGISTER_MIDI = {
    "piano": {"low": (36, 52), "high": (72, 88)},
    "organ": {"low": (36, 52), "high": (67, 84)},
    "guitar": {"low": (40, 55), "high": (64, 79)},
    "violin": {"low": (55, 67), "high": (76, 91)},
    "flute": {"low": (60, 72), "high": (79, 93)},
    "trumpet": {"low": (52, 64), "high": (70, 82)},
}
TEMPO_BPM = {"slow": (60.0, 80.0), "fast": (140.0, 170.0)}
SCALE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Chord progressions as scale degrees (0 = tonic); a chord is struck on every beat and changes every two beats.
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (5, 3, 0, 4), (0, 4, 5, 3))
MELODY_STEPS = (-2, -1, 1, 2)
NOTE_FRACTION_OF_BEAT = 0.9
LEAD_IN_SECONDS = (0.1, 0.3)
RELEASE_SECONDS = 0.35
MIN_NOTE_SECONDS = 0.25
VELOCITY = (75, 110)
CLIP_LEVEL_DB = (-24.0, -18.0)
END_FADE_SECONDS = 0.05

HELD_OUT = ({"instrument": "organ", "register": "high"},)


def soundfont_path() -> Path:
    """Path of TimGM6mb.sf2 inside the installed pretty_midi package; RuntimeError when it is not there."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'music' family needs the pretty_midi package (pip install pretty_midi)")
    path = Path(spec.submodule_search_locations[0]) / "TimGM6mb.sf2"
    if not path.is_file():
        raise RuntimeError(f"the General MIDI soundfont is missing: expected {path}")
    return path


def _scale_pitches(tonic: int, mode: str, low: int, high: int) -> list[int]:
    return [pitch for pitch in range(low, high + 1) if (pitch - tonic) % 12 in SCALE_STEPS[mode]]


def _melody(rng: np.random.Generator, scale: list[int], beats: int) -> list[list[int]]:
    """A random walk of 1-2 scale steps per beat, reflected at the register edges: one pitch per beat."""
    position = int(rng.integers(len(scale) // 4, 3 * len(scale) // 4 + 1))
    pitches = []
    for _ in range(beats):
        pitches.append([scale[position]])
        step = int(rng.choice(MELODY_STEPS))
        if not 0 <= position + step < len(scale):
            step = -step
        position += step
    return pitches


def _chord(rng: np.random.Generator, tonic: int, mode: str, degree: int, low: int, high: int) -> list[int]:
    """A close-position triad on a scale degree, in any inversion that fits in [low, high], chosen at random."""
    steps = SCALE_STEPS[mode]
    pitch_classes = {(tonic + steps[(degree + offset) % 7]) % 12 for offset in (0, 2, 4)}
    voicings = []
    for bass in range(low, high + 1):
        if bass % 12 in pitch_classes:
            voicing = [pitch for pitch in range(bass, bass + 12) if pitch % 12 in pitch_classes]
            if voicing[-1] <= high:
                voicings.append(voicing)
    return voicings[int(rng.integers(len(voicings)))]


def plan_music(rng: np.random.Generator, clip_seconds: float) -> dict:
    """Draw one clip: {"instrument", "program", "tempo", "bpm", "register", "texture", "tonic_pitch_class",
    "mode", "pitch_range_midi", "median_pitch_midi", "onsets_s", "notes": [[start_s, end_s, pitch, velocity]]}."""
    instrument = str(rng.choice(list(INSTRUMENT_PROGRAMS)))
    tempo = str(rng.choice(list(TEMPO_BPM)))
    register = str(rng.choice(("low", "high")))
    texture = str(rng.choice(("melody", "chords")))
    mode = str(rng.choice(list(SCALE_STEPS)))
    tonic = int(rng.integers(0, 12))
    bpm = float(rng.uniform(*TEMPO_BPM[tempo]))
    low, high = REGISTER_MIDI[instrument][register]
    beat_seconds = 60.0 / bpm
    lead_in = float(rng.uniform(*LEAD_IN_SECONDS))
    note_seconds = NOTE_FRACTION_OF_BEAT * beat_seconds
    # The last onset leaves room for at least MIN_NOTE_SECONDS of note before the release; notes are cut short
    # where they would run into the release, so even a 2 s slow piece has two beats.
    last_end = clip_seconds - RELEASE_SECONDS
    beats = int((last_end - MIN_NOTE_SECONDS - lead_in) // beat_seconds) + 1
    if beats < 2:
        raise ValueError(f"clip_seconds={clip_seconds} is too short for a {tempo} piece")
    if texture == "melody":
        beat_pitches = _melody(rng, _scale_pitches(tonic, mode, low, high), beats)
    else:
        progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
        changes = [
            _chord(rng, tonic, mode, progression[index % len(progression)], low, high)
            for index in range((beats + 1) // 2)
        ]
        beat_pitches = [changes[beat // 2] for beat in range(beats)]
    base_velocity = int(rng.integers(*VELOCITY))
    notes, onsets = [], []
    for beat, pitches in enumerate(beat_pitches):
        start = round(lead_in + beat * beat_seconds, 4)
        onsets.append(start)
        for pitch in pitches:
            velocity = int(np.clip(base_velocity + rng.integers(-8, 9), 1, 127))
            notes.append([start, round(min(start + note_seconds, last_end), 4), pitch, velocity])
    return {
        "instrument": instrument,
        "program": INSTRUMENT_PROGRAMS[instrument],
        "tempo": tempo,
        "bpm": round(bpm, 3),
        "register": register,
        "texture": texture,
        "tonic_pitch_class": tonic,
        "mode": mode,
        "pitch_range_midi": [low, high],
        "median_pitch_midi": float(np.median([note[2] for note in notes])),
        "onsets_s": onsets,
        "notes": notes,
    }


def is_held_out(attributes: dict) -> bool:
    """True for a held-out (instrument, register) pair; such clips go to the test split only."""
    return any(all(attributes[key] == value for key, value in combo.items()) for combo in HELD_OUT)


# One synthesiser per (process, sample rate, soundfont): loading the 6 MB soundfont costs more than rendering a
# clip. Clips stay independent of each other because every render starts from silenced, flushed voices.
_SYNTHS: dict[tuple[int, int], tuple[object, int]] = {}
FLUSH_SAMPLES = 4096


def _synth(sample_rate: int, soundfont: bytes):
    """The cached (synth, soundfont id) for this process; RuntimeError when tinysoundfont is missing."""
    key = (sample_rate, hash(soundfont))
    if key not in _SYNTHS:
        try:
            import tinysoundfont  # imported here so the other families build without it
        except ImportError as error:
            raise RuntimeError(
                "the 'music' family renders with tinysoundfont: pip install --no-deps tinysoundfont"
            ) from error
        synth = tinysoundfont.Synth(samplerate=sample_rate)
        _SYNTHS[key] = (synth, synth.sfload(soundfont))
    return _SYNTHS[key]


def render_music(
    attributes: dict, rng: np.random.Generator, num_samples: int, sample_rate: int, soundfont: bytes
) -> np.ndarray:
    """Score -> float32 samples (num_samples,). Any voice left from an earlier clip is stopped and rendered out
    first, so the output depends on this clip alone (and not on the worker count); note-offs at a sample come
    before note-ons at the same sample."""
    synth, soundfont_id = _synth(sample_rate, soundfont)
    synth.sounds_off()
    synth.generate_simple(FLUSH_SAMPLES)
    synth.program_select(0, soundfont_id, 0, attributes["program"])
    events = []
    for start, end, pitch, velocity in attributes["notes"]:
        events.append((int(round(start * sample_rate)), 1, pitch, velocity))
        events.append((int(round(end * sample_rate)), 0, pitch, 0))
    chunks, position = [], 0
    for sample, is_on, pitch, velocity in sorted(events):
        if sample > position:
            chunks.append(bytes(synth.generate_simple(sample - position)))
            position = sample
        if is_on:
            synth.noteon(0, pitch, velocity)
        else:
            synth.noteoff(0, pitch)
    if num_samples > position:
        chunks.append(bytes(synth.generate_simple(num_samples - position)))
    stereo = np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(-1, 2)[:num_samples]
    # Notes end RELEASE_SECONDS before the clip does; the fade only silences what is left of their release tails.
    waveform = stereo.mean(axis=1)
    fade = int(round(END_FADE_SECONDS * sample_rate))
    waveform[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    waveform = scale_to_active_rms(waveform, sample_rate, float(rng.uniform(*CLIP_LEVEL_DB)))
    return limit_peak(waveform, PEAK_LIMIT)
