"""Species probe: can a stage-2 checkpoint render each of the built-in data's ten animals on its own?

    python3 scripts/animal_probe.py --checkpoint exp/quickstart/audioldm [--vocoder exp/quickstart/vocoder]
        [--per_species 4] [--guidance_scale 3] [--scheduler dpmsolver++] [--num_inference_steps 25] [--seed 0]
        [--output FILE.json]

Generates every one-animal caption ("A cat meows", "Dogs bark", ...) --per_species times (all initial noise
drawn from one generator seeded with --seed, as `run_inference.sh --seed` does) and asks the committed evaluation classifier which of the ten animals
it hears most. Prints the top-1 accuracy (chance 10 %), the mean rank of the prompted animal (chance 4.5), the
hits per species and how often each animal is heard. The main job's animal adherence mixes 13 one-animal and 28
two-animal test prompts, dominated by owl and cow; this isolates whether the model renders each species at all, in
about 3 minutes for 40 clips on 2 CPU cores.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.backbones import load_classifier_backbone  # noqa: E402
from models.tta.audio_classifier.labels import ANIMAL_SOURCES  # noqa: E402
from models.tta.audioldm.diffusion import SCHEDULERS  # noqa: E402
from models.tta.audioldm.pipeline import AudioLDMPipeline  # noqa: E402
from preprocessors.builtin.captions import ANIMAL_PHRASES  # noqa: E402
from utils.checkpoint import CheckpointError  # noqa: E402

DEFAULT_CLASSIFIER = "pretrained/evaluation/audio_classifier_builtin"


def species_prompts() -> list[str]:
    """The canonical one-animal caption of each species, in `ANIMAL_SOURCES` order ("A cat meows", ...)."""
    return [ANIMAL_PHRASES[animal][0][0].capitalize() for animal in ANIMAL_SOURCES]


def probe_summary(logits: torch.Tensor) -> dict:
    """Scores of animal-head logits (species, per_species, species) for clips prompted with species i in row i:
    top-1 accuracy, mean rank of the prompted species (0 = heard most), hits per species, counts heard most."""
    species, per_species, classes = logits.shape
    if species != classes:
        raise ValueError(f"expected one row of clips per class, got logits of shape {tuple(logits.shape)}")
    order = logits.argsort(dim=-1, descending=True)
    ranks = (order == torch.arange(species)[:, None, None]).float().argmax(dim=-1)
    heard = torch.bincount(order[..., 0].flatten(), minlength=classes)
    return {
        "clips": species * per_species,
        "top1": float((ranks == 0).float().mean()),
        "mean_rank": float(ranks.float().mean()),
        "hits": {name: int((ranks[index] == 0).sum()) for index, name in enumerate(ANIMAL_SOURCES)},
        "heard_most": {name: int(heard[index]) for index, name in enumerate(ANIMAL_SOURCES)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a stage-2 experiment or checkpoint folder")
    parser.add_argument("--vocoder", default=None, help="vocoder spec (default: the checkpoint's)")
    parser.add_argument("--classifier", default=DEFAULT_CLASSIFIER)
    parser.add_argument("--per_species", type=int, default=4)
    parser.add_argument("--guidance_scale", type=float, default=3.0)
    parser.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="dpmsolver++")
    parser.add_argument("--num_inference_steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the summary to this JSON file")
    args = parser.parse_args(argv)
    if args.per_species < 1:
        parser.error(f"--per_species must be at least 1, got {args.per_species}")

    try:
        pipeline = AudioLDMPipeline.from_checkpoint(args.checkpoint, vocoder=args.vocoder)
        classifier = load_classifier_backbone(args.classifier)
    except (CheckpointError, ValueError, OSError) as error:
        print(f"animal_probe.py: {error}", file=sys.stderr)
        return 1
    prompts = species_prompts()
    output = pipeline.generate(
        prompts,
        num_waveforms_per_prompt=args.per_species,
        guidance_scale=args.guidance_scale,
        num_inference_steps=args.num_inference_steps,
        scheduler=args.scheduler,
        audio_length_in_s=5.0,
        seed=args.seed,
        batch_size=len(prompts),
    )
    features = classifier.audio_features(output.waveforms.flatten(0, 1), pipeline.mel.sample_rate)
    logits = features.attribute_logits["sources"].reshape(len(prompts), args.per_species, -1)
    settings = {**vars(args), "output": None if args.output is None else str(args.output)}
    summary = {**settings, "checkpoint": str(pipeline.checkpoint), **probe_summary(logits)}
    print(f"{pipeline.checkpoint}: top-1 {summary['top1']:.1%} of {summary['clips']} clips (chance 10 %), mean rank "
          f"{summary['mean_rank']:.2f} (chance 4.5)")
    print("hits per species:  " + ", ".join(f"{name} {count}" for name, count in summary["hits"].items()))
    print("heard most:        " + ", ".join(f"{name} {count}" for name, count in summary["heard_most"].items()))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
