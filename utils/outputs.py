"""What every generation command writes, and the checks on its arguments.

Per prompt and candidate: `<stem>.wav` (16-bit PCM), `<stem>.png` (the log-mel), `<stem>.json` (every setting
used: prompt, seed, checkpoint, scheduler, ...). File names come from `safe_stem`, so no path ever comes from
user text, and `save_generation` never overwrites: it takes the next free `<stem>_<n>`. Each file is written under
a temporary name and renamed, so an interrupted run leaves no half-written output.
"""

import json
import re
import unicodedata
from pathlib import Path

import numpy as np

from utils.audio import save_wav

MAX_STEM_LENGTH = 60


def safe_stem(prompt: str, max_length: int = MAX_STEM_LENGTH) -> str:
    """A file-name stem from a prompt: ASCII letters, digits and underscores only, at most `max_length`
    characters, never empty ("prompt" if nothing usable remains)."""
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode("ascii").lower()
    stem = re.sub(r"[^a-z0-9]+", "_", ascii_text).strip("_")[:max_length].rstrip("_")
    return stem or "prompt"


def read_prompts(texts: list[str] | None, text_file: Path | str | None) -> list[str]:
    """Prompts from repeated `--text` values and/or a `--text_file` with one prompt per line (blank lines and
    lines starting with # are skipped). Raises ValueError naming the flag when there is none or one is empty."""
    prompts = []
    for text in texts or []:
        if not text.strip():
            raise ValueError("--text: the prompt is empty")
        prompts.append(text.strip())
    if text_file is not None:
        path = Path(text_file)
        if not path.is_file():
            raise ValueError(f"--text_file: {path} does not exist")
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        prompts += [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise ValueError("--text or --text_file: give at least one non-empty prompt")
    return prompts


def check_generation_args(
    *,
    audio_length_in_s: float,
    num_inference_steps: int,
    guidance_scale: float,
    num_waveforms_per_prompt: int,
    batch_size: int = 1,
    max_audio_length_in_s: float = 60.0,
) -> None:
    """Reject values no generation can use, naming the flag."""
    if not np.isfinite(audio_length_in_s) or audio_length_in_s <= 0:
        raise ValueError(f"--audio_length_in_s: must be a positive number of seconds, got {audio_length_in_s}")
    if audio_length_in_s > max_audio_length_in_s:
        raise ValueError(
            f"--audio_length_in_s: {audio_length_in_s} s is longer than the allowed {max_audio_length_in_s} s"
        )
    if num_inference_steps < 1:
        raise ValueError(f"--num_inference_steps: must be at least 1, got {num_inference_steps}")
    if not np.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"--guidance_scale: must be a non-negative number, got {guidance_scale}")
    if num_waveforms_per_prompt < 1:
        raise ValueError(f"--num_waveforms_per_prompt: must be at least 1, got {num_waveforms_per_prompt}")
    if batch_size < 1:
        raise ValueError(f"--batch_size: must be at least 1, got {batch_size}")


def _free_stem(output_dir: Path, stem: str) -> str:
    candidate, index = stem, 1
    while any((output_dir / f"{candidate}{suffix}").exists() for suffix in (".wav", ".png", ".json")):
        candidate, index = f"{stem}_{index}", index + 1
    return candidate


def save_mel_png(path: Path | str, log_mel: np.ndarray, *, sample_rate: int, hop_length: int, title: str = "") -> None:
    """Log-mel (frames, n_mels) as an image, time on x (seconds), mel bin on y; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    path = Path(path)
    figure, axis = pyplot.subplots(figsize=(8, 3))
    frames = log_mel.shape[0]
    image = axis.imshow(
        log_mel.T, origin="lower", aspect="auto", cmap="magma", extent=(0, frames * hop_length / sample_rate, 0, log_mel.shape[1])
    )
    axis.set_xlabel("seconds")
    axis.set_ylabel("mel bin")
    if title:
        axis.set_title(title[:90], fontsize=9)
    figure.colorbar(image, ax=axis, label="log magnitude")
    figure.tight_layout()
    temp_path = path.with_name(f".{path.name}.partial")
    figure.savefig(temp_path, format="png", dpi=100)
    pyplot.close(figure)
    temp_path.replace(path)


def save_generation(
    output_dir: Path | str,
    *,
    stem: str,
    waveform: np.ndarray,
    sample_rate: int,
    log_mel: np.ndarray | None,
    settings: dict,
    hop_length: int = 160,
) -> dict[str, Path]:
    """Write `<stem>.wav`, `<stem>.png` (when `log_mel` (frames, n_mels) is given) and `<stem>.json` into
    `output_dir`, choosing `<stem>_<n>` if any of them exists. Returns {"wav", "png"?, "json"} paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = _free_stem(output_dir, safe_stem(stem))
    paths = {"wav": output_dir / f"{stem}.wav"}
    save_wav(paths["wav"], waveform, sample_rate)
    if log_mel is not None:
        paths["png"] = output_dir / f"{stem}.png"
        save_mel_png(paths["png"], log_mel, sample_rate=sample_rate, hop_length=hop_length, title=settings.get("prompt", ""))
    paths["json"] = output_dir / f"{stem}.json"
    record = {**settings, "files": {kind: path.name for kind, path in paths.items()}}
    temp_path = paths["json"].with_name(f".{paths['json'].name}.partial")
    temp_path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    temp_path.replace(paths["json"])
    return paths
