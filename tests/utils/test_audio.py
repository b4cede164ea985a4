"""utils.audio: the AudioLDM-compatible mel front end and audio I/O."""

import librosa
import numpy as np
import pytest
import soundfile
import torch

from utils.audio import AudioLoadError, LogMelSpectrogram, MelConfig, build_log_mel, compute_log_mel, load_audio, save_wav


def sine(frequency, seconds, sample_rate=16000, amplitude=0.5):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def test_ten_point_two_four_seconds_give_1024_frames():
    mel = compute_log_mel(sine(1000, 10.24), build_log_mel(MelConfig()))
    assert mel.shape == (64, 1024)
    assert mel.dtype == np.float32


def test_sine_peaks_in_the_right_mel_bin():
    """The peak bin is the filter that responds most at the sine's frequency, next to the nearest centre."""
    config = MelConfig()
    front_end = build_log_mel(config)
    centres = librosa.mel_frequencies(n_mels=config.n_mels + 2, fmin=config.fmin, fmax=config.fmax)[1:-1]
    basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000, htk=False, norm="slaney")
    for frequency in (250.0, 1000.0, 4000.0):
        peak_bin = compute_log_mel(sine(frequency, 1.0), front_end).mean(axis=1).argmax()
        assert peak_bin == basis[:, round(frequency / (16000 / 1024))].argmax()
        assert abs(peak_bin - np.abs(centres - frequency).argmin()) <= 1
    assert compute_log_mel(sine(1000.0, 1.0), front_end).mean(axis=1).argmax() == 21


def test_matches_the_audioldm_definition():
    """Reference computed the way AudioLDM does: reflect pad (n_fft-hop)/2, |STFT|, Slaney mel, log clamp."""
    rng = np.random.default_rng(0)
    waveform = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    ours = compute_log_mel(waveform, build_log_mel(MelConfig()))
    padded = np.pad(waveform, (432, 432), mode="reflect")
    magnitude = np.abs(librosa.stft(padded, n_fft=1024, hop_length=160, win_length=1024, window="hann", center=False))
    basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000, htk=False, norm="slaney")
    reference = np.log(np.clip(basis @ magnitude, 1e-5, None))
    assert ours.shape == reference.shape == (64, 100)
    np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_silence_is_the_clamp_floor_and_batches_agree():
    front_end = LogMelSpectrogram()
    batch = torch.stack([torch.zeros(3200), torch.from_numpy(sine(440, 0.2))])
    mel = front_end(batch)
    assert mel.shape == (2, 64, 20)
    assert torch.allclose(mel[0], torch.full_like(mel[0], np.log(1e-5)))
    single = front_end(batch[1:])
    assert torch.allclose(mel[1:], single, atol=1e-5)


def test_load_mixes_stereo_and_resamples(tmp_path):
    stereo = np.stack([sine(440, 1.0, 44100), sine(440, 1.0, 44100)], axis=1)
    soundfile.write(tmp_path / "stereo.flac", stereo, 44100)
    audio = load_audio(tmp_path / "stereo.flac", 16000)
    assert audio.shape == (16000,)
    assert abs(np.abs(audio).max() - 0.5) < 0.02


def test_load_errors_have_reasons(tmp_path):
    with pytest.raises(AudioLoadError, match="missing file"):
        load_audio(tmp_path / "nope.wav", 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioLoadError, match="unreadable"):
        load_audio(tmp_path / "corrupt.wav", 16000)
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioLoadError, match="empty"):
        load_audio(tmp_path / "empty.wav", 16000)


def test_save_wav_round_trip(tmp_path):
    wave = sine(440, 0.5)
    save_wav(tmp_path / "a.wav", wave, 16000)
    again = load_audio(tmp_path / "a.wav", 16000)
    assert np.abs(again - wave).max() < 1e-3
    assert not list(tmp_path.glob(".*partial"))
