"""Evaluate the recipe's models. One subcommand per kind of evaluation:

    python bins/tta/evaluate.py reconstruction --vae CKPT [--vocoder SPEC] [--split test] [--output FILE.json]
    python bins/tta/evaluate.py generation --config CFG --clips [NAME=]DIR [--clips ...] --output_dir DIR
    python bins/tta/evaluate.py eval_models --config CFG [--split test] [--output FILE.json]

`reconstruction`: paired metrics of a split's real clips against VAE reconstructions (mel L1, L2, PSNR, SSIM,
LSD of the mels) and, with `--vocoder`, of the real wavs against the vocoded audio (LSD, multi-resolution STFT
distance, mel metrics of the audio); `--save_audio DIR` keeps the vocoded clips as DIR/<Uid>.wav. `--vae` is an
experiment folder (newest valid checkpoint), a checkpoint folder or a diffusers `vae/` folder; without it the
real mels are vocoded, which evaluates the vocoder alone. The data is the VAE checkpoint's (its `preprocess`
section and datasets) unless `--config` names a recipe config whose `preprocess` section to use. It prints the
report as JSON and writes it to `--output`.

`generation` and `eval_models` (FD, FAD, KL, IS, text–audio score and attribute adherence of folders of clips;
held-out accuracy of the evaluation models) are described in `evaluation.cli`.

Run from the repository root (relative paths in configs are relative to it). Exit status 2 on unusable input.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evaluation.cli import add_eval_models_subcommand, add_generation_subcommand  # noqa: E402
from evaluation.reconstruction_eval import evaluate_reconstruction  # noqa: E402
from models.base.data import read_split  # noqa: E402
from models.tta.autoencoderkl.loading import LoadedVAE, load_vae  # noqa: E402
from models.tta.vocoders import VocoderSpecError, load_vocoder  # noqa: E402
from preprocessors.config import PreprocessConfig, load_preprocess_config  # noqa: E402
from utils.checkpoint import CheckpointError, write_json_atomic  # noqa: E402
from utils.config import ConfigError  # noqa: E402


class UsageError(ValueError):
    """Arguments that do not fit together."""


def _data_source(args: argparse.Namespace, vae: LoadedVAE | None) -> tuple[PreprocessConfig, list[str]]:
    """The preprocess section and dataset names to evaluate on (see the module docstring)."""
    if args.config is not None:
        preprocess = load_preprocess_config(args.config, args.overrides)
        datasets = args.datasets or [preprocess.dataset]
    elif vae is not None and vae.config is not None:
        preprocess = vae.config.preprocess
        datasets = args.datasets or vae.config.datasets
    else:
        raise UsageError("name the data with --config (a recipe config with a preprocess section)")
    if vae is not None and vae.config is not None and vae.config.preprocess.mel != preprocess.mel:
        raise UsageError(
            f"the VAE was trained on mels {vae.config.preprocess.mel}, the data in --config has {preprocess.mel}"
        )
    return preprocess, datasets


def run_reconstruction(args: argparse.Namespace) -> dict:
    if args.vae is None and args.vocoder is None:
        raise UsageError("give --vae, --vocoder, or both")
    if args.overrides and args.config is None:
        raise UsageError("--set needs --config")
    if args.save_audio is not None and args.vocoder is None:
        raise UsageError("--save_audio needs --vocoder (the audio written is the vocoded reconstruction)")
    vae = None if args.vae is None else load_vae(args.vae, use_ema=False if args.raw_weights else None)
    preprocess, datasets = _data_source(args, vae)
    records = read_split(preprocess.processed_dir, datasets, args.split)
    if args.max_clips is not None:
        records = records[: args.max_clips]
    vocoder = None if args.vocoder is None else load_vocoder(args.vocoder, mel=preprocess.mel)
    if vae is not None:
        vae.model.to(args.device)
    metrics = evaluate_reconstruction(
        records=records,
        processed_dir=preprocess.processed_dir,
        mel_config=preprocess.mel,
        vae=None if vae is None else vae.model,
        vocoder=vocoder,
        batch_size=args.batch_size,
        device=args.device,
        show_progress=not args.no_progress,
        audio_dir=args.save_audio,
    )
    described = {
        "command": "reconstruction",
        "split": args.split,
        "processed_dir": str(preprocess.processed_dir),
        "datasets": datasets,
        "vae": None if vae is None else str(vae.checkpoint),
        "vae_weights": None if vae is None else vae.weights,
        "vocoder": args.vocoder,
    }
    return {**described, **metrics}


def _add_reconstruction_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("reconstruction", help="paired metrics of VAE reconstructions and/or vocoded audio")
    parser.add_argument("--vae", type=Path, help="VAE experiment, checkpoint or diffusers vae/ folder")
    parser.add_argument("--vocoder", help="'griffin_lim', a vocoder experiment/checkpoint (HiFi-GAN or Vocos) "
                        "or a diffusers vocoder")
    parser.add_argument("--config", type=Path, help="recipe config whose preprocess section names the data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="preprocess.KEY=VALUE",
                        help="override a preprocess value of --config (repeatable)")
    parser.add_argument("--datasets", nargs="+", help="dataset names (default: the VAE's, or preprocess.dataset)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--max_clips", type=int, help="evaluate only the first N clips of the split")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--raw_weights", action="store_true", help="use the raw weights even if an EMA exists")
    parser.add_argument("--output", type=Path, help="write the JSON report here")
    parser.add_argument("--save_audio", type=Path, metavar="DIR",
                        help="also write every vocoded reconstruction to DIR/<Uid>.wav")
    parser.add_argument("--no_progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(run=run_reconstruction)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_reconstruction_parser(commands)
    add_generation_subcommand(commands)
    add_eval_models_subcommand(commands)
    args = parser.parse_args(argv)
    try:
        report = args.run(args)
    except (UsageError, ConfigError, CheckpointError, VocoderSpecError, FileNotFoundError) as error:
        print(f"evaluate {args.command}: error: {error}", file=sys.stderr)
        return 2
    # `generation` writes its own reports into --output_dir; the others write the printed report to --output.
    if getattr(args, "output", None) is not None:
        write_json_atomic(args.output, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
