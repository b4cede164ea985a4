"""Generate audio from text with a trained AudioLDM (stage-2) checkpoint.

    python bins/tta/inference.py --checkpoint exp/audioldm_builtin --text "three short high beeps" [--text ...]

Writes per prompt and candidate `<prompt stem>.wav` (16 kHz), `.png` (the log-mel) and `.json` (every setting,
the seed and the checkpoint) into --output_dir, never overwriting. Unset sampling flags take the defaults of the
checkpoint's `inference` config section. Every argument is checked, and the models loaded, before anything is
generated or written; bad input exits with status 2 and a one-line message naming the flag.

--ranker orders each prompt's --num_waveforms_per_prompt candidates by text–audio similarity, best first, within
that prompt only: `ours:<TextAudio experiment>` (sh egs/tta/evaluation/run_train.sh), `clap:<local CLAP folder>`,
`none` (generation order), or `auto` (the default of `inference.ranker`): the committed built-in model
ours:pretrained/evaluation/text_audio_builtin when there are several candidates (it knows only the built-in
dataset's sounds), else generation order, with a note saying so. With K > 1 the
files are `<stem>_0` (best) to `<stem>_<K-1>`; each JSON records `rank`, `score`, `generation_index` and `ranker`.
"""

import argparse
import logging
import sys
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from evaluation.config import DEFAULT_TEXT_AUDIO  # noqa: E402
from evaluation.ranking import RankerSpec, Scorer, load_ranker, resolve_ranker  # noqa: E402
from models.tta.audioldm.config import AudioLDMExperiment  # noqa: E402
from models.tta.audioldm.diffusion import SCHEDULERS  # noqa: E402
from models.tta.audioldm.pipeline import AudioLDMPipeline  # noqa: E402
from utils.checkpoint import CheckpointError, read_checkpoint_meta, resolve_checkpoint  # noqa: E402
from utils.config import ConfigError, validate  # noqa: E402
from utils.outputs import check_generation_args, read_prompts, save_generation  # noqa: E402
from utils.precision import AUTOCAST_DTYPES, PRECISION_CHOICES, resolve_precision  # noqa: E402

# What --ranker auto ranks with (relative to the working directory, the repository root under the egs scripts).
BUILTIN_RANKER = DEFAULT_TEXT_AUDIO


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Generate audio from text with an AudioLDM checkpoint.")
    parser.add_argument("--text", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument("--text_file", default=None, help="a file with one prompt per line")
    parser.add_argument("--negative_prompt", default="", help='what to steer away from (default "": unconditional)')
    parser.add_argument("--guidance_scale", type=float, default=None, help="classifier-free guidance; <= 1 is off")
    parser.add_argument("--num_inference_steps", type=int, default=None)
    parser.add_argument("--audio_length_in_s", type=float, default=None, help="seconds of audio per clip")
    parser.add_argument("--allow_long_audio", action="store_true", help="allow lengths above the configured maximum")
    parser.add_argument("--num_waveforms_per_prompt", type=int, default=1, help="candidates per prompt")
    parser.add_argument(
        "--ranker",
        default=None,
        help='orders each prompt\'s candidates best first: "ours:<TextAudio experiment>", "clap:<CLAP folder>", '
        '"none" or "auto" (default: the checkpoint\'s inference.ranker, "auto": the committed '
        "ours:pretrained/evaluation/text_audio_builtin when there are several candidates)",
    )
    parser.add_argument("--seed", type=int, default=None, help="makes generation reproducible (default: random)")
    parser.add_argument("--scheduler", default=None, help=f"one of {', '.join(SCHEDULERS)}")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder, or an experiment folder")
    parser.add_argument("--vocoder", default=None,
                        help='"griffin_lim", a vocoder (HiFi-GAN or Vocos) checkpoint/experiment folder, ...')
    parser.add_argument("--output_dir", default="generated", help="where the wav/png/json files go")
    parser.add_argument("--batch_size", type=int, default=1, help="clips sampled at a time")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="UNet autocast dtype (auto: bf16 on CPUs with AMX-BF16 or AVX-512 BF16 and on bf16 "
                        "GPUs, else fp32)")
    parser.add_argument("--device", default="cpu")
    return parser


def _settings(args: argparse.Namespace, experiment: AudioLDMExperiment) -> dict:
    """The sampling settings: flags where given, else the checkpoint's inference defaults."""
    defaults = experiment.inference
    return {
        "scheduler": args.scheduler or defaults.scheduler,
        "num_inference_steps": args.num_inference_steps or defaults.num_inference_steps,
        "guidance_scale": defaults.guidance_scale if args.guidance_scale is None else args.guidance_scale,
        "audio_length_in_s": defaults.audio_length_in_s if args.audio_length_in_s is None else args.audio_length_in_s,
        "max_audio_length_in_s": float("inf") if args.allow_long_audio else defaults.max_audio_length_in_s,
    }


def _check(args: argparse.Namespace) -> tuple[list[str], Path, AudioLDMExperiment, dict, RankerSpec | None]:
    """All argument checks that need no model: raises ValueError naming the flag. The ranker is resolved here
    ("auto" becomes a spec or none, with a note on stderr) so a bad one stops the run before any loading."""
    prompts = read_prompts(args.text, args.text_file)
    if args.num_inference_steps is not None and args.num_inference_steps < 1:
        raise ValueError(f"--num_inference_steps: must be at least 1, got {args.num_inference_steps}")
    if args.scheduler is not None and args.scheduler not in SCHEDULERS:
        raise ValueError(f"--scheduler: unknown {args.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if not Path(args.checkpoint).exists():
        raise ValueError(f"--checkpoint: {args.checkpoint} does not exist")
    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
        tree = read_checkpoint_meta(checkpoint)["config"]
        experiment = validate(AudioLDMExperiment, tree, root_source=str(checkpoint))
    except (CheckpointError, ConfigError) as error:
        raise ValueError(f"--checkpoint: {error}") from error
    settings = _settings(args, experiment)
    check_generation_args(
        audio_length_in_s=settings["audio_length_in_s"],
        num_inference_steps=settings["num_inference_steps"],
        guidance_scale=settings["guidance_scale"],
        num_waveforms_per_prompt=args.num_waveforms_per_prompt,
        batch_size=args.batch_size,
        max_audio_length_in_s=settings.pop("max_audio_length_in_s"),
    )
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise ValueError(f"--output_dir: {args.output_dir} exists and is not a folder")
    try:
        ranker, note = resolve_ranker(
            experiment.inference.ranker if args.ranker is None else args.ranker,
            num_waveforms_per_prompt=args.num_waveforms_per_prompt,
            builtin=BUILTIN_RANKER,
        )
    except ValueError as error:
        source = f"--ranker (default inference.ranker of {checkpoint})" if args.ranker is None else "--ranker"
        raise ValueError(f"{source}: {error}") from error
    if note:
        print(f"inference: note: {note}", file=sys.stderr)
    return prompts, checkpoint, experiment, settings, ranker


def _load_scorer(ranker: RankerSpec | None, sample_rate: int) -> Scorer | None:
    """The ranker's scorer, loaded before generation; raises ValueError naming --ranker when it cannot load."""
    if ranker is None:
        return None
    try:
        return load_ranker(ranker, sample_rate=sample_rate)
    except (CheckpointError, OSError, ValueError, KeyError) as error:
        raise ValueError(f"--ranker: cannot load {ranker}: {error}") from error


def _score_value(scores: torch.Tensor | None, prompt_index: int, candidate: int) -> float | None:
    """A candidate's score for its JSON: None when unranked or not finite (JSON has no NaN)."""
    if scores is None or not torch.isfinite(scores[prompt_index, candidate]):
        return None
    return float(scores[prompt_index, candidate])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("always", UserWarning)
    try:
        prompts, checkpoint, experiment, settings, ranker = _check(args)
        scorer = _load_scorer(ranker, experiment.preprocess.mel.sample_rate)
        precision = resolve_precision(args.precision, args.device)
        pipeline = AudioLDMPipeline.from_checkpoint(checkpoint, vocoder=args.vocoder, device=args.device)
    except (ValueError, CheckpointError) as error:
        print(f"inference: error: {error}", file=sys.stderr)
        return 2
    output = pipeline.generate(
        prompts,
        negative_prompt=args.negative_prompt,
        num_waveforms_per_prompt=args.num_waveforms_per_prompt,
        seed=args.seed,
        batch_size=args.batch_size,
        autocast_dtype=AUTOCAST_DTYPES[precision],
        scorer=scorer,
        **settings,
    )
    sample_rate = experiment.preprocess.mel.sample_rate
    record = {
        **settings,
        "negative_prompt": args.negative_prompt,
        "num_waveforms_per_prompt": args.num_waveforms_per_prompt,
        "seed": output.seed,
        "batch_size": args.batch_size,
        "precision": precision,
        "checkpoint": str(checkpoint.resolve()),
        "vocoder": args.vocoder or experiment.vocoder,
        "sample_rate": sample_rate,
        "ranker": str(ranker) if ranker is not None else "none",
    }
    for prompt_index, prompt in enumerate(prompts):
        for candidate in range(args.num_waveforms_per_prompt):
            stem = prompt if args.num_waveforms_per_prompt == 1 else f"{prompt}_{candidate}"
            ranking = {
                "candidate": candidate,
                "generation_index": int(output.generation_indices[prompt_index, candidate]),
                "rank": None if output.scores is None else candidate,
                "score": _score_value(output.scores, prompt_index, candidate),
            }
            paths = save_generation(
                args.output_dir,
                stem=stem,
                waveform=output.waveforms[prompt_index, candidate].numpy(),
                sample_rate=sample_rate,
                log_mel=output.mels[prompt_index, candidate].numpy(),
                settings={"prompt": prompt, "prompt_index": prompt_index, **ranking, **record},
                hop_length=experiment.preprocess.mel.hop_length,
            )
            print(paths["wav"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
