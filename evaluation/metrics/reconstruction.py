"""Paired reconstruction metrics: a reference clip against its reconstruction (VAE, vocoder, or both).

Waveforms are (S,) or (B, S); log-mels are (n_mels, frames) or (B, n_mels, frames), the on-disk layout and
the output of `utils.audio.LogMelSpectrogram`. When the two sides differ in length (a vocoder returns a few
extra samples) both are trimmed to the shorter along the last (time) axis; any other shape mismatch is an error.
Each metric is computed per clip and averaged over the batch, in float64.
"""

import numpy as np
import torch
import torch.nn.functional as F

from utils.audio import LogMelSpectrogram

ArrayLike = np.ndarray | torch.Tensor

# STFT resolutions (n_fft, hop_length, win_length) of the multi-resolution STFT distance.
MR_STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
# Floor on STFT power before dB in the log-spectral distance: -100 dB, far below 16-bit quantisation noise.
LSD_POWER_FLOOR = 1e-10
# Floor on STFT magnitude before the log in the MR-STFT distance (Parallel WaveGAN's value).
MR_STFT_MAGNITUDE_FLOOR = 1e-7
# Floor on the RMS before dB in the level difference: -100 dBFS, so a silent clip has a finite level.
LEVEL_RMS_FLOOR = 1e-5
# SSIM constants of Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _batched(values: ArrayLike, ndim: int, name: str) -> torch.Tensor:
    tensor = values.detach().cpu().double() if isinstance(values, torch.Tensor) else torch.from_numpy(
        np.asarray(values, dtype=np.float64)
    )
    if tensor.ndim == ndim - 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have {ndim - 1} or {ndim} dimensions, got shape {tuple(tensor.shape)}")
    return tensor


def _paired(reference: ArrayLike, estimate: ArrayLike, ndim: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides as float64 with a batch axis, trimmed to the shorter length along the last axis."""
    reference, estimate = _batched(reference, ndim, name), _batched(estimate, ndim, name)
    if reference.shape[:-1] != estimate.shape[:-1]:
        raise ValueError(f"{name} shapes differ beyond length: {tuple(reference.shape)} vs {tuple(estimate.shape)}")
    length = min(reference.shape[-1], estimate.shape[-1])
    return reference[..., :length], estimate[..., :length]


def mel_l1(reference_mel: ArrayLike, estimated_mel: ArrayLike) -> float:
    """Mean absolute difference of log-mels (B, n_mels, frames)."""
    reference, estimate = _paired(reference_mel, estimated_mel, 3, "mels")
    return float((reference - estimate).abs().mean())


def mel_l2(reference_mel: ArrayLike, estimated_mel: ArrayLike) -> float:
    """Mean squared difference of log-mels (B, n_mels, frames)."""
    reference, estimate = _paired(reference_mel, estimated_mel, 3, "mels")
    return float((reference - estimate).square().mean())


def mel_psnr(reference_mel: ArrayLike, estimated_mel: ArrayLike) -> float:
    """Peak signal-to-noise ratio (dB) of log-mels: 10 log10(R^2 / MSE) per clip, R = the reference's max - min.

    Infinite when a clip is reproduced exactly (then the batch mean is infinite too).
    """
    reference, estimate = _paired(reference_mel, estimated_mel, 3, "mels")
    data_range = reference.flatten(1).amax(dim=1) - reference.flatten(1).amin(dim=1)
    mse = (reference - estimate).square().flatten(1).mean(dim=1)
    psnr = 10.0 * torch.log10(data_range.square() / mse)
    return float(psnr.mean())


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-offsets.square() / (2 * sigma**2))
    return weights / weights.sum()


def mel_ssim(reference_mel: ArrayLike, estimated_mel: ArrayLike) -> float:
    """Structural similarity of log-mels treated as images (B, n_mels, frames), in [-1, 1], 1 when identical.

    Wang et al. 2004, "Image Quality Assessment: From Error Visibility to Structural Similarity": local means,
    variances and covariance under an 11x11 Gaussian window (sigma 1.5, valid positions only), constants
    C1 = (0.01 R)^2, C2 = (0.03 R)^2 with R = the reference clip's max - min; mean SSIM map per clip.
    """
    reference, estimate = _paired(reference_mel, estimated_mel, 3, "mels")
    if min(reference.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs mels of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(reference.shape[-2:])}")
    window_1d = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA)
    window = (window_1d[:, None] * window_1d[None, :])[None, None]

    def local_mean(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, window)

    x, y = reference.unsqueeze(1), estimate.unsqueeze(1)
    mean_x, mean_y = local_mean(x), local_mean(y)
    variance_x = local_mean(x * x) - mean_x.square()
    variance_y = local_mean(y * y) - mean_y.square()
    covariance = local_mean(x * y) - mean_x * mean_y
    data_range = (reference.flatten(1).amax(dim=1) - reference.flatten(1).amin(dim=1)).view(-1, 1, 1, 1)
    c1, c2 = (SSIM_K1 * data_range).square(), (SSIM_K2 * data_range).square()
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x.square() + mean_y.square() + c1) * (variance_x + variance_y + c2)
    )
    return float(ssim_map.flatten(1).mean(dim=1).mean())


def _stft_magnitude(waveforms: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """(B, S) -> |STFT| (B, n_fft // 2 + 1, frames), Hann window, centred with reflect padding."""
    if waveforms.shape[-1] <= n_fft // 2:
        raise ValueError(f"clips of {waveforms.shape[-1]} samples are too short for an STFT with n_fft={n_fft}")
    window = torch.hann_window(win_length, dtype=waveforms.dtype)
    spectrum = torch.stft(waveforms, n_fft, hop_length=hop_length, win_length=win_length, window=window,
                          center=True, pad_mode="reflect", return_complex=True)
    return spectrum.abs()


def log_spectral_distance(
    reference_waveform: ArrayLike, estimated_waveform: ArrayLike, *, n_fft: int = 2048, hop_length: int = 512
) -> float:
    """LSD (dB): mean over frames of sqrt(mean over frequency of (10 log10 P - 10 log10 P_hat)^2).

    P, P_hat are STFT powers (Hann window of n_fft, centred), floored at 1e-10 (-100 dB). The definition used in
    audio super-resolution (e.g. Liu et al. 2022, NVSR / AudioSR): 0 for identical clips, larger is worse.
    """
    reference, estimate = _paired(reference_waveform, estimated_waveform, 2, "waveforms")
    decibels = [
        10.0 * torch.log10(_stft_magnitude(side, n_fft, hop_length, n_fft).square().clamp(min=LSD_POWER_FLOOR))
        for side in (reference, estimate)
    ]
    per_frame = (decibels[0] - decibels[1]).square().mean(dim=1).sqrt()
    return float(per_frame.mean(dim=1).mean())


def multi_resolution_stft_distance(
    reference_waveform: ArrayLike,
    estimated_waveform: ArrayLike,
    *,
    resolutions: tuple[tuple[int, int, int], ...] = MR_STFT_RESOLUTIONS,
) -> float:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (n_fft, hop, win).

    Yamamoto et al. 2020, "Parallel WaveGAN": SC = ||S - S_hat||_F / ||S||_F and mean |log S - log S_hat| on
    STFT magnitudes (floored at 1e-7), per clip. 0 for identical clips.
    """
    reference, estimate = _paired(reference_waveform, estimated_waveform, 2, "waveforms")
    totals = torch.zeros(reference.shape[0], dtype=torch.float64)
    for n_fft, hop_length, win_length in resolutions:
        magnitude = _stft_magnitude(reference, n_fft, hop_length, win_length).clamp(min=MR_STFT_MAGNITUDE_FLOOR)
        magnitude_hat = _stft_magnitude(estimate, n_fft, hop_length, win_length).clamp(min=MR_STFT_MAGNITUDE_FLOOR)
        convergence = (magnitude - magnitude_hat).flatten(1).norm(dim=1) / magnitude.flatten(1).norm(dim=1)
        log_magnitude = (magnitude.log() - magnitude_hat.log()).abs().flatten(1).mean(dim=1)
        totals += convergence + log_magnitude
    return float((totals / len(resolutions)).mean())


def level_difference_db(reference_waveform: ArrayLike, estimated_waveform: ArrayLike) -> float:
    """Mean over clips of 20 log10(RMS(estimate) / RMS(reference)), in dB, each RMS floored at 1e-5 (-100 dBFS).

    0 when every reconstruction keeps its clip's level, negative when they come out quieter (-6.02 for half the
    amplitude). Signed, unlike the distances: it shows a loss of loudness that the log-spectral metrics spread
    over every bin, and loudness is an attribute prompts ask for."""
    reference, estimate = _paired(reference_waveform, estimated_waveform, 2, "waveforms")
    reference_db, estimate_db = (
        20.0 * torch.log10(side.square().mean(dim=1).sqrt().clamp(min=LEVEL_RMS_FLOOR))
        for side in (reference, estimate)
    )
    return float((estimate_db - reference_db).mean())


def mel_reconstruction_metrics(reference_mel: ArrayLike, estimated_mel: ArrayLike) -> dict[str, float]:
    """All log-mel metrics for (B, n_mels, frames) pairs, e.g. a VAE's input and output mels."""
    return {
        "mel_l1": mel_l1(reference_mel, estimated_mel),
        "mel_l2": mel_l2(reference_mel, estimated_mel),
        "mel_psnr": mel_psnr(reference_mel, estimated_mel),
        "mel_ssim": mel_ssim(reference_mel, estimated_mel),
    }


def waveform_reconstruction_metrics(
    reference_waveform: ArrayLike, estimated_waveform: ArrayLike, *, log_mel: LogMelSpectrogram
) -> dict[str, float]:
    """All metrics for waveform pairs (B, S) at the front end's sample rate: the log-mel ones on `log_mel`'s
    mels, plus `lsd`, `mr_stft` and `level_db` (`level_difference_db`)."""
    reference, estimate = _paired(reference_waveform, estimated_waveform, 2, "waveforms")
    with torch.no_grad():
        reference_mel, estimated_mel = log_mel(reference.float()), log_mel(estimate.float())
    return {
        **mel_reconstruction_metrics(reference_mel, estimated_mel),
        "lsd": log_spectral_distance(reference, estimate),
        "mr_stft": multi_resolution_stft_distance(reference, estimate),
        "level_db": level_difference_db(reference, estimate),
    }
