"""Run logging: console messages through the standard `logging` module, and TensorBoard scalars, audio and mel
images written by the main process only (other processes get a writer that does nothing)."""

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from torch.utils.tensorboard import SummaryWriter

CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_console_logging(*, is_main_process: bool) -> None:
    """INFO messages on the main process, warnings and errors only elsewhere. Does nothing when the
    application already configured logging (a handler on the root logger)."""
    logging.basicConfig(format=CONSOLE_FORMAT, level=logging.INFO if is_main_process else logging.WARNING)


def mel_to_image(mel: torch.Tensor | np.ndarray) -> np.ndarray:
    """A log-mel spectrogram (frames, n_mels) as an RGB image (n_mels, frames, 3) in [0, 1], low frequencies at
    the bottom, colours scaled to the spectrogram's own range."""
    values = torch.as_tensor(mel, dtype=torch.float32).detach().cpu().numpy()
    if values.ndim != 2:
        raise ValueError(f"expected a mel of shape (frames, n_mels), got {values.shape}")
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / max(high - low, 1e-8)
    return colormaps["magma"](scaled.T[::-1])[..., :3].astype(np.float32)


class ExperimentWriter:
    """TensorBoard event files under `log_dir`, written only when `enabled` (the main process)."""

    def __init__(self, log_dir: Path | str, *, enabled: bool):
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(str(self.log_dir)) if enabled else None

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self._writer is None:
            return
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)

    def audio(self, tag: str, waveform: torch.Tensor | np.ndarray, sample_rate: int, step: int) -> None:
        """One mono waveform (samples,) in [-1, 1]."""
        if self._writer is None:
            return
        samples = torch.as_tensor(waveform, dtype=torch.float32).detach().cpu().clamp(-1.0, 1.0)
        if samples.ndim != 1:
            raise ValueError(f"expected a mono waveform of shape (samples,), got {tuple(samples.shape)}")
        self._writer.add_audio(tag, samples[None], step, sample_rate=sample_rate)

    def mel_image(self, tag: str, mel: torch.Tensor | np.ndarray, step: int) -> None:
        """One log-mel spectrogram (frames, n_mels), drawn as an image."""
        if self._writer is None:
            return
        self._writer.add_image(tag, mel_to_image(mel), step, dataformats="HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
