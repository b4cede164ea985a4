"""Subcommands of `bins/tta/evaluate.py` for generated audio and for the evaluation models themselves.

    evaluate.py generation --config CFG --clips [NAME=]DIR [--clips ...] --output_dir DIR [--set ...]
    evaluate.py eval_models --config CFG [--split test] [--output FILE.json] [--set ...]

`generation`: FD, FAD, KL, IS, text–audio score and attribute adherence of each folder of clips (generated,
real or reconstructed; see `evaluation.generation`) against the reference split, with the backbones and
text–audio model of the config's `evaluation` section (`evaluation.config`). Writes
`<output_dir>/generation_metrics.json` (every number, per clip too) and `generation_metrics.md` (one table row per
folder, in the order given), optionally TensorBoard scalars; returns a summary. `eval_models`: held-out
accuracy of the classifier per head and retrieval recall of the text–audio model on a split.

Each `add_*_subcommand(subparsers)` adds its parser with `run` (args -> report dict) as default; argument
problems raise ConfigError, which the CLI reports as a one-line error.
"""

import argparse
from pathlib import Path
from typing import Any

from evaluation.backbones import AudioBackbone, BackboneUnavailableError, build_backbone
from evaluation.config import EvaluationSections, load_evaluation_config
from evaluation.features import FeatureCache
from evaluation.generation import evaluate_generation
from evaluation.heldout import classifier_accuracy, text_audio_retrieval
from evaluation.ranking import JointEmbedding, clap_joint_embedding, ours_joint_embedding
from evaluation.report import log_to_tensorboard, markdown_report, write_text_atomic
from models.tta.audio_classifier.dataset import read_split_records
from utils.checkpoint import write_json_atomic
from utils.config import ConfigError

METRICS_JSON = "generation_metrics.json"
METRICS_MARKDOWN = "generation_metrics.md"


def _named_folder(value: str) -> tuple[str, Path]:
    """"NAME=DIR" -> (NAME, DIR); a bare DIR is named after its last component."""
    if "=" in value:
        name, folder = value.split("=", 1)
        if not name or not folder:
            raise argparse.ArgumentTypeError(f"expected NAME=DIR or DIR, got {value!r}")
        return name, Path(folder)
    return Path(value).name, Path(value)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path,
                        help="config with preprocess (data, mel front end) and optional evaluation sections")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preprocess.* or evaluation.* value (repeatable)")
    parser.add_argument("--no_progress", action="store_true", help="do not draw progress bars")


def _datasets(sections: EvaluationSections) -> list[str]:
    return sections.evaluation.datasets or [sections.preprocess.dataset]


def _backbones(sections: EvaluationSections) -> dict[str, AudioBackbone]:
    try:
        return {entry.name: build_backbone(entry.name, path=entry.path) for entry in sections.evaluation.backbones}
    except BackboneUnavailableError as error:
        raise ConfigError(f"evaluation.backbones: {error}") from error


def _joint_embedding(sections: EvaluationSections) -> JointEmbedding | None:
    text_audio = sections.evaluation.text_audio
    if text_audio.kind == "ours":
        return ours_joint_embedding(text_audio.path)
    if text_audio.kind == "transformers_clap":
        return clap_joint_embedding(text_audio.path)
    return None


def run_generation(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate every `--clips` folder; write the JSON and Markdown reports; return a summary per folder."""
    names = [name for name, _ in args.clips]
    if len(set(names)) != len(names):
        raise ConfigError(f"--clips: every folder needs its own name, got {names}")
    sections = load_evaluation_config(args.config, args.overrides)
    preprocess, evaluation = sections.preprocess, sections.evaluation
    datasets = _datasets(sections)
    reference_records = read_split_records(preprocess.processed_dir, datasets, evaluation.reference_split)
    prompt_records = [record for split in evaluation.prompt_splits
                      for record in read_split_records(preprocess.processed_dir, datasets, split)]
    backbones = _backbones(sections)
    joint = _joint_embedding(sections)
    cache = FeatureCache(processed_dir=preprocess.processed_dir, backbones=backbones,
                         sample_rate=preprocess.mel.sample_rate, batch_size=evaluation.batch_size,
                         show_progress=not args.no_progress)
    results = [
        evaluate_generation(
            folder, reference_records=reference_records, processed_dir=preprocess.processed_dir,
            backbones=backbones, joint=joint, prompt_records=prompt_records, mel_config=preprocess.mel, name=name,
            batch_size=evaluation.batch_size, show_progress=not args.no_progress, cache=cache,
        )
        for name, folder in args.clips
    ]
    described = {
        "command": "generation",
        "config": str(args.config),
        "reference": {"datasets": datasets, "split": evaluation.reference_split},
        "results": results,
    }
    write_json_atomic(args.output_dir / METRICS_JSON, described)
    write_text_atomic(args.output_dir / METRICS_MARKDOWN, markdown_report(results))
    if args.tensorboard_dir is not None:
        log_to_tensorboard(results, args.tensorboard_dir)
    summary_keys = ("num_clips", "num_paired", "metrics", "text_audio", "adherence_by_family", "adherence")
    return {
        "command": "generation",
        "json": str(args.output_dir / METRICS_JSON),
        "markdown": str(args.output_dir / METRICS_MARKDOWN),
        "results": {result["name"]: {key: result[key] for key in summary_keys} | {"problems": len(result["problems"])}
                    for result in results},
    }


def add_generation_subcommand(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `generation` subcommand (see the module docstring)."""
    parser = subparsers.add_parser("generation", help="FD/FAD/KL/IS, text–audio score and attribute adherence of "
                                   "folders of generated, real or reconstructed clips")
    _add_config_arguments(parser)
    parser.add_argument("--clips", required=True, action="append", type=_named_folder, metavar="[NAME=]DIR",
                        help="a folder of clips to evaluate, named in the table (repeatable; rows in this order)")
    parser.add_argument("--output_dir", required=True, type=Path, help=f"where {METRICS_JSON} and "
                        f"{METRICS_MARKDOWN} are written")
    parser.add_argument("--tensorboard_dir", type=Path, help="also log the numbers as TensorBoard scalars here")
    parser.set_defaults(run=run_generation, output=None)
    return parser


def run_eval_models(args: argparse.Namespace) -> dict[str, Any]:
    """Held-out accuracy of the configured classifier ("ours") and retrieval of the text–audio model ("ours")."""
    sections = load_evaluation_config(args.config, args.overrides)
    preprocess, evaluation = sections.preprocess, sections.evaluation
    records = read_split_records(preprocess.processed_dir, _datasets(sections), args.split)
    report: dict[str, Any] = {"command": "eval_models", "split": args.split, "datasets": _datasets(sections)}
    classifier = next((entry for entry in evaluation.backbones if entry.name == "ours"), None)
    if classifier is not None:
        report["classifier"] = classifier_accuracy(classifier.path, records, preprocess.processed_dir,
                                                   show_progress=not args.no_progress)
    if evaluation.text_audio.kind == "ours":
        report["text_audio"] = text_audio_retrieval(evaluation.text_audio.path, records, preprocess.processed_dir,
                                                    show_progress=not args.no_progress)
    if len(report) == 3:
        raise ConfigError("eval_models: the config names neither an 'ours' backbone nor an 'ours' text–audio model")
    return report


def add_eval_models_subcommand(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `eval_models` subcommand (see the module docstring)."""
    parser = subparsers.add_parser("eval_models", help="held-out accuracy of the evaluation classifier and "
                                   "retrieval recall of the text–audio model")
    _add_config_arguments(parser)
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("--output", type=Path, help="write the JSON report here")
    parser.set_defaults(run=run_eval_models)
    return parser
