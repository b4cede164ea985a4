"""Generate audio from text with an AudioLDM 2 model: public, converted or fine-tuned.

    python bins/tta/inference_audioldm2.py --model_dir checkpoints/audioldm2 --text "a dog barks" [--text ...]

--model_dir is a diffusers-layout folder downloaded by the user (e.g. of cvssp/audioldm2), a checkpoint written by
bins/tta/convert_audioldm2.py, or a fine-tuning experiment or checkpoint folder (egs/tta/audioldm2/run_train.sh;
its EMA UNet is used). See models/tta/audioldm2/loading.py.

Writes per prompt and candidate `<prompt stem>.wav` (16 kHz), `.png` (the log-mel) and `.json` (every setting,
the seed and the model folder) into --output_dir, never overwriting; with --num_waveforms_per_prompt K > 1 the
candidates are ranked by CLAP text-audio similarity within their prompt, best first (`<stem>_0` is the best).
Every argument is checked before the model is loaded; bad input exits with status 2 and a one-line message
naming the flag. Nothing is downloaded.
"""

import argparse
import logging
import random
import sys
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from models.tta.audioldm.diffusion import SCHEDULERS  # noqa: E402
from models.tta.audioldm2.loading import load_audioldm2_pipeline  # noqa: E402
from models.tta.audioldm2.pipeline import AudioLDM2Pipeline  # noqa: E402
from utils.checkpoint import CheckpointError  # noqa: E402
from utils.outputs import check_generation_args, read_prompts, save_generation  # noqa: E402
from utils.precision import AUTOCAST_DTYPES, PRECISION_CHOICES, resolve_precision  # noqa: E402

MAX_AUDIO_LENGTH_IN_S = 60.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Generate audio from text with an AudioLDM 2 model.")
    parser.add_argument(
        "--model_dir",
        required=True,
        help="a local diffusers-layout folder (e.g. of cvssp/audioldm2), a converted checkpoint, or a fine-tuning "
        "experiment / checkpoint folder",
    )
    parser.add_argument(
        "--text_model_dir",
        default="",
        help="for converted or fine-tuned checkpoints: the diffusers folder with the frozen text side, when it is no "
        "longer where the checkpoint recorded it",
    )
    parser.add_argument("--text", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument("--text_file", default=None, help="a file with one prompt per line")
    parser.add_argument("--negative_prompt", default="", help='what to steer away from (default "": unconditional)')
    parser.add_argument("--guidance_scale", type=float, default=3.5, help="classifier-free guidance; <= 1 is off")
    parser.add_argument("--num_inference_steps", type=int, default=25,
                        help="sampler steps (default 25: with DPM-Solver++ as close to 200 DDIM steps as 50 UniPC "
                        "steps, benchmarks/results/end_to_end.txt; the reference pipeline's default is DDIM 200)")
    parser.add_argument("--audio_length_in_s", type=float, default=10.24, help="seconds of audio per clip")
    parser.add_argument("--allow_long_audio", action="store_true", help=f"allow more than {MAX_AUDIO_LENGTH_IN_S} s")
    parser.add_argument("--num_waveforms_per_prompt", type=int, default=1, help="candidates per prompt, CLAP-ranked")
    parser.add_argument("--seed", type=int, default=None, help="makes generation reproducible (default: random)")
    parser.add_argument(
        "--scheduler", default="dpmsolver++",
        help=f"one of {', '.join(SCHEDULERS)}, or 'checkpoint' for the checkpoint's own (DDIM) (default: dpmsolver++)"
    )
    parser.add_argument("--output_dir", default="generated", help="where the wav/png/json files go")
    parser.add_argument("--batch_size", type=int, default=1, help="prompts sampled at a time (each with K clips)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="UNet autocast dtype (auto: bf16 on CPUs with AMX-BF16 or AVX-512 BF16 and on bf16 "
                        "GPUs, else fp32)")
    parser.add_argument("--device", default="cpu")
    return parser


def _check(args: argparse.Namespace) -> list[str]:
    """All argument checks that need no model: raises ValueError naming the flag."""
    prompts = read_prompts(args.text, args.text_file)
    if args.scheduler != "checkpoint" and args.scheduler not in SCHEDULERS:
        raise ValueError(f"--scheduler: unknown {args.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    check_generation_args(
        audio_length_in_s=args.audio_length_in_s,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
        num_waveforms_per_prompt=args.num_waveforms_per_prompt,
        batch_size=args.batch_size,
        max_audio_length_in_s=float("inf") if args.allow_long_audio else MAX_AUDIO_LENGTH_IN_S,
    )
    if not Path(args.model_dir).is_dir():
        raise ValueError(
            f"--model_dir: {args.model_dir} is not a folder; download an AudioLDM 2 checkpoint in diffusers layout "
            "(e.g. cvssp/audioldm2) and pass its local folder, or pass a converted or fine-tuned checkpoint"
        )
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise ValueError(f"--output_dir: {args.output_dir} exists and is not a folder")
    return prompts


def _load(args: argparse.Namespace) -> AudioLDM2Pipeline:
    """The pipeline on --device, after the checks that need it; raises ValueError naming the flag."""
    try:
        pipeline = load_audioldm2_pipeline(args.model_dir, text_model_dir=args.text_model_dir)
    except (OSError, ValueError, KeyError, CheckpointError) as error:
        raise ValueError(f"--model_dir: {error}") from error
    try:
        pipeline.mel_frames(args.audio_length_in_s)
    except ValueError as error:
        raise ValueError(f"--audio_length_in_s: {error}") from error
    return pipeline.to(args.device)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("always", UserWarning)
    try:
        prompts = _check(args)
        precision = resolve_precision(args.precision, args.device)
        pipeline = _load(args)
    except ValueError as error:
        print(f"inference_audioldm2: error: {error}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    output = pipeline.generate(
        prompts,
        negative_prompt=args.negative_prompt,
        guidance_scale=args.guidance_scale,
        num_inference_steps=args.num_inference_steps,
        audio_length_in_s=args.audio_length_in_s,
        num_waveforms_per_prompt=args.num_waveforms_per_prompt,
        generator=torch.Generator().manual_seed(seed),
        scheduler=None if args.scheduler == "checkpoint" else args.scheduler,
        batch_size=args.batch_size,
        autocast_dtype=AUTOCAST_DTYPES[precision],
        show_progress=True,
    )
    record = {
        "model": "AudioLDM 2",
        "negative_prompt": args.negative_prompt,
        "guidance_scale": args.guidance_scale,
        "num_inference_steps": args.num_inference_steps,
        "audio_length_in_s": args.audio_length_in_s,
        "mel_frames": pipeline.mel_frames(args.audio_length_in_s),
        "num_waveforms_per_prompt": args.num_waveforms_per_prompt,
        "seed": seed,
        "scheduler": pipeline.scheduler_config["_class_name"] if args.scheduler == "checkpoint" else args.scheduler,
        "batch_size": args.batch_size,
        "precision": precision,
        "model_dir": str(Path(args.model_dir).resolve()),
        "sample_rate": pipeline.sampling_rate,
    }
    for prompt_index, prompt in enumerate(prompts):
        for candidate in range(args.num_waveforms_per_prompt):
            ranking = {
                "candidate": candidate,
                "generation_index": int(output.candidate_indices[prompt_index, candidate]),
            }
            if output.clap_scores is not None:
                ranking["clap_score"] = float(output.clap_scores[prompt_index, candidate])
            paths = save_generation(
                args.output_dir,
                stem=prompt if args.num_waveforms_per_prompt == 1 else f"{prompt}_{candidate}",
                waveform=output.waveforms[prompt_index, candidate].numpy(),
                sample_rate=pipeline.sampling_rate,
                log_mel=output.log_mels[prompt_index, candidate].numpy(),
                settings={"prompt": prompt, "prompt_index": prompt_index, **ranking, **record},
                hop_length=pipeline.vocoder.hop_length,
            )
            print(paths["wav"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
