"""Measure a trained VAE's latent scale factor (1 / std of its latents) and store it with the checkpoint.

    python bins/tta/vae_scale_factor.py --config egs/tta/autoencoderkl/exp_config.json [--set key=value ...]
    python bins/tta/vae_scale_factor.py --checkpoint exp/<exp_name>[/checkpoints/step_XXXXXXXX]

`--config` (with the same `--set` overrides as training) names the experiment folder `<log_dir>/<exp_name>`;
`--checkpoint` an experiment folder or one checkpoint folder. The newest valid checkpoint of an experiment is
used. The clips, crop length and defaults come from the checkpoint's stored config (`latent_scale` section).
Writes `<checkpoint>/latent_scale.json`, where stage 2 (`models.tta.autoencoderkl.loading.load_vae`) reads it,
and prints it. Exit status 2 on unusable input.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.base.loader import move_to_device  # noqa: E402
from models.tta.autoencoderkl.config import AutoencoderKLExperiment  # noqa: E402
from models.tta.autoencoderkl.latent_scale import (  # noqa: E402
    measure_latents,
    training_clip_batches,
    write_latent_scale,
)
from models.tta.autoencoderkl.loading import load_vae  # noqa: E402
from utils.checkpoint import CheckpointError, read_checkpoint_meta  # noqa: E402
from utils.config import ConfigError, load_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="the training config (names <log_dir>/<exp_name>)")
    source.add_argument("--checkpoint", type=Path, help="an experiment folder or a checkpoint folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as given to training (with --config; repeatable)")
    parser.add_argument("--num_clips", type=int, help="training clips to measure (default latent_scale.num_clips)")
    parser.add_argument("--batch_size", type=int, help="clips per batch (default latent_scale.batch_size)")
    parser.add_argument("--seed", type=int, help="clip subset, crops and posterior samples (default latent_scale.seed)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--raw_weights", action="store_true", help="measure the raw weights even if an EMA exists")
    args = parser.parse_args(argv)
    try:
        if args.config is not None:
            config = load_config(args.config, AutoencoderKLExperiment, args.overrides)
            path = Path(config.log_dir) / config.exp_name
        elif args.overrides:
            raise ConfigError("--set needs --config")
        else:
            path = args.checkpoint
        vae = load_vae(path, use_ema=False if args.raw_weights else None)
    except (ConfigError, CheckpointError) as error:
        print(f"vae_scale_factor: error: {error}", file=sys.stderr)
        return 2
    if vae.config is None:
        print(f"vae_scale_factor: error: {vae.checkpoint} is a diffusers VAE; its config.json already holds "
              f"scaling_factor {vae.scale_factor}", file=sys.stderr)
        return 2
    settings = vae.config.latent_scale
    seed = settings.seed if args.seed is None else args.seed
    batches = training_clip_batches(
        vae.config,
        num_clips=settings.num_clips if args.num_clips is None else args.num_clips,
        batch_size=settings.batch_size if args.batch_size is None else args.batch_size,
        seed=seed,
    )
    model = vae.model.to(args.device)
    generator = torch.Generator(args.device).manual_seed(seed)
    statistics = measure_latents(model, (move_to_device(batch, args.device) for batch in batches), generator=generator)
    step = read_checkpoint_meta(vae.checkpoint)["step"]
    written = write_latent_scale(vae.checkpoint, statistics, weights=vae.weights, step=step)
    print(json.dumps({"file": str(written), **json.loads(written.read_text(encoding="utf-8"))}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
