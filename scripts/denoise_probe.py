"""Denoising probe: at which noise levels does a stage-2 checkpoint lose (or never make) a clip's detail?

    python3 scripts/denoise_probe.py --checkpoint exp/quickstart/audioldm --caption "A cat meows" \
        [--mel data/processed/builtin/mel/builtin_animals_00280.npy] [--timesteps 50,100,200,300,500,700]
        [--guidance_scale 3] [--scheduler dpmsolver++] [--num_inference_steps 25] [--seed 0] --output probe.png

Two panels of decoded mels, one row per noise level t:
- with --mel (a preprocessed log-mel .npy, (n_mels, frames)): the clip's VAE latent (posterior mean) noised to each
  t and denoised in one guided step (the model's clean-latent estimate x0); the first row is the VAE's own
  reconstruction. Detail the model keeps here, it can denoise; `x0_mse` in the printed JSON is the estimate's
  mean squared error against the clean latent per t.
- always: a generation from noise for the caption (the generation's own loop and sampler, --scheduler, default
  DPM-Solver++, and --num_inference_steps), showing the clean-latent
  estimate at six of its steps, from the noisiest to the last: where the clip's layout and texture are decided.
A model that keeps a real clip's harmonics at t = 300 but generates a texture without them has learned to denoise
them, not to make them: the failure is in the high-noise steps that choose the content.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.base.data import LOG_MEL_FLOOR  # noqa: E402
from models.tta.audioldm.diffusion import SCHEDULERS, build_scheduler  # noqa: E402
from models.tta.audioldm.pipeline import AudioLDMPipeline  # noqa: E402
from models.tta.audioldm.sampling import sample_latents  # noqa: E402
from models.tta.audioldm.text_states import encode_texts, encode_with_negative  # noqa: E402
from utils.checkpoint import CheckpointError  # noqa: E402

TRAJECTORY_ROWS = 6
# Generated clips without --mel are as long as the built-in data's clips.
DEFAULT_SECONDS = 5.0


def text_contexts(pipeline: AudioLDMPipeline, caption: str, guided: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Text states and masks for the UNet: (2, L, D) and (2, L) ordered [empty, caption] when guided, else the
    caption's (1, L, D) and (1, L)."""
    if not guided:
        return encode_texts(pipeline.text_encoder, [caption])
    states, mask, negative_states, negative_mask = encode_with_negative(pipeline.text_encoder, [caption], "")
    return torch.cat([negative_states, states]), torch.cat([negative_mask, mask])


@torch.no_grad()
def one_step_estimates(
    pipeline: AudioLDMPipeline,
    latent: torch.Tensor,
    contexts: torch.Tensor,
    masks: torch.Tensor,
    timesteps: Sequence[int],
    guidance_scale: float,
    generator: torch.Generator,
) -> list[tuple[str, torch.Tensor, float]]:
    """[(label, x0 (1, C, H, W), mean squared error to `latent`)]: the scaled clean latent (1, C, H, W) itself, then
    one guided denoising step from it noised (as in training) to each timestep, one noise draw for all of them."""
    denoiser = pipeline.denoiser
    noise = torch.randn(latent.shape, generator=generator)
    rows = [("VAE reconstruction (no noise)", latent, 0.0)]
    for timestep in timesteps:
        step = torch.tensor([timestep])
        noisy = denoiser.train_scheduler.add_noise(latent, noise, step)
        prediction = denoiser.guided_prediction(noisy, step, [contexts], [masks], guidance_scale)
        estimate = denoiser.clean_estimate(noisy, step, prediction)
        rows.append((f"one step from t = {timestep}", estimate, float(((estimate - latent) ** 2).mean())))
    return rows


def trajectory_estimates(
    pipeline: AudioLDMPipeline,
    shape: tuple[int, ...],
    contexts: torch.Tensor,
    masks: torch.Tensor,
    guidance_scale: float,
    num_inference_steps: int,
    generator: torch.Generator,
    scheduler: str = "dpmsolver++",
) -> list[tuple[str, torch.Tensor]]:
    """[(label, x0 (1, C, H, W))] at TRAJECTORY_ROWS evenly spaced steps of a generation of `shape` from noise, by
    the generation's own sampling loop (`sample_latents`) and sampler."""
    kept_steps = set(np.linspace(0, num_inference_steps - 1, TRAJECTORY_ROWS).round().astype(int).tolist())
    rows = []

    def keep(index: int, timestep: torch.Tensor, model_input: torch.Tensor, prediction: torch.Tensor) -> None:
        if index in kept_steps:
            label = f"generation, step {index + 1} of {num_inference_steps} (t = {int(timestep)})"
            rows.append((label, pipeline.denoiser.clean_estimate(model_input, timestep, prediction)))

    sample_latents(
        pipeline.denoiser, build_scheduler(scheduler, pipeline.schedule), shape=shape, contexts=[contexts],
        context_masks=[masks], guidance_scale=guidance_scale, num_inference_steps=num_inference_steps,
        generator=generator, show_progress=False, on_step=keep,
    )
    return rows


def save_panels(path: Path, panels: list[tuple[str, list[tuple[str, np.ndarray]]]]) -> None:
    """Decoded log-mels (frames, n_mels), one column per panel, one row per estimate; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = max(len(images) for _, images in panels)
    figure, axes = pyplot.subplots(rows, len(panels), figsize=(7 * len(panels), 1.9 * rows), squeeze=False)
    for column, (title, images) in enumerate(panels):
        axes[0, column].set_title(title, fontsize=10, loc="left", pad=16)
        for row in range(rows):
            axis = axes[row, column]
            if row >= len(images):
                axis.axis("off")
                continue
            label, log_mel = images[row]
            axis.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma", vmin=-12, vmax=1)
            axis.text(0.01, 0.97, label, transform=axis.transAxes, va="top", color="white", fontsize=8)
            axis.set_yticks([])
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.partial")
    figure.savefig(temp_path, format="png", dpi=80)
    pyplot.close(figure)
    temp_path.replace(path)


def parse_timesteps(text: str) -> list[int]:
    """"50,300,700" -> [50, 300, 700]; anything else is an argparse error naming --timesteps."""
    try:
        timesteps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timesteps must be comma-separated integers, got {text!r}") from None
    if not timesteps or any(t < 1 for t in timesteps):
        raise argparse.ArgumentTypeError(f"--timesteps must be positive integers, got {text!r}")
    return timesteps


def read_mel(path: Path, n_mels: int) -> np.ndarray:
    """A preprocessed log-mel .npy as float32 (n_mels, frames); ValueError naming the file when it is not one."""
    mel = np.load(path, allow_pickle=False)
    if not isinstance(mel, np.ndarray) or mel.ndim != 2 or mel.shape[0] != n_mels:
        shape = getattr(mel, "shape", "an archive of arrays")
        raise ValueError(f"--mel {path} holds {shape}, expected one array of shape ({n_mels}, frames)")
    return mel.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run both probes, write the PNG and print the report; 1 on a bad checkpoint or mel."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a stage-2 experiment or checkpoint folder")
    parser.add_argument("--caption", required=True)
    parser.add_argument("--mel", type=Path, default=None, help="a preprocessed log-mel .npy, (n_mels, frames)")
    parser.add_argument("--timesteps", type=parse_timesteps, default=[50, 100, 200, 300, 500, 700])
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="<= 1: the caption alone, unguided")
    parser.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="dpmsolver++", help="the generation's sampler")
    parser.add_argument("--num_inference_steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    if args.num_inference_steps < TRAJECTORY_ROWS:
        parser.error(f"--num_inference_steps must be at least {TRAJECTORY_ROWS}, got {args.num_inference_steps}")

    try:
        pipeline = AudioLDMPipeline.from_checkpoint(args.checkpoint)
        mel = None if args.mel is None else read_mel(args.mel, pipeline.mel.n_mels)
    except (CheckpointError, ValueError, OSError) as error:
        print(f"denoise_probe.py: {error}", file=sys.stderr)
        return 1
    if max(args.timesteps) >= pipeline.denoiser.num_train_timesteps:
        print(f"denoise_probe.py: --timesteps must be below the model's {pipeline.denoiser.num_train_timesteps} "
              f"training timesteps, got {max(args.timesteps)}", file=sys.stderr)
        return 1

    seconds = DEFAULT_SECONDS if mel is None else mel.shape[1] * pipeline.mel.hop_length / pipeline.mel.sample_rate
    mel_frames = pipeline.mel_frames(seconds)
    # The latent grid of a training crop (e.g. 500 mel frames padded to 512): see AudioLDMPipeline.latent_frames.
    latent_frames = pipeline.latent_frames(seconds)
    factor = pipeline.autoencoder.downsample_factor
    latent_shape = (1, pipeline.autoencoder.latent_channels, latent_frames, pipeline.mel.n_mels // factor)
    generator = torch.Generator().manual_seed(args.seed)
    contexts, masks = text_contexts(pipeline, args.caption, guided=args.guidance_scale > 1.0)

    def decode(latent: torch.Tensor) -> np.ndarray:
        """Scaled latent (1, C, h, w) -> log-mel (mel_frames, n_mels), the padding cropped off."""
        return pipeline.autoencoder.decode(latent / pipeline.scale_factor)[0, 0, :mel_frames].numpy()

    panels, report = [], {"checkpoint": str(pipeline.checkpoint), "caption": args.caption, "mel": None}
    with torch.no_grad():
        if mel is not None:
            padded = np.full((latent_frames * factor, mel.shape[0]), LOG_MEL_FLOOR, dtype=np.float32)
            padded[: mel.shape[1]] = mel.T
            latent = pipeline.autoencoder.encode(torch.from_numpy(padded)[None, None]).mean * pipeline.scale_factor
            rows = one_step_estimates(pipeline, latent, contexts, masks, args.timesteps, args.guidance_scale, generator)
            title = f"{args.mel.name}: noised to t, one guided step back"
            panels.append((title, [(label, decode(estimate)) for label, estimate, _ in rows]))
            report["mel"] = str(args.mel)
            report["x0_mse"] = {label: mse for label, _, mse in rows[1:]}
        rows = trajectory_estimates(
            pipeline, latent_shape, contexts, masks, args.guidance_scale, args.num_inference_steps, generator,
            args.scheduler,
        )
        title = f"'{args.caption}': clean-latent estimate along a generation"
        panels.append((title, [(label, decode(estimate)) for label, estimate in rows]))
    save_panels(args.output, panels)
    print(json.dumps({**report, "output": str(args.output)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
