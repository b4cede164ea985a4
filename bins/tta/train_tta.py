"""Train one stage of the recipe: `python bins/tta/train_tta.py --config FILE [--set key=value ...] [--resume]`.

The config's top-level `model_type` picks the stage; its trainer class names the schema the config is checked
against (`config_schema`). The experiment folder is `<log_dir>/<exp_name>` unless `--exp_dir` is given. Run it
under `accelerate launch` for several GPUs or nodes.
"""

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.config import ConfigError, apply_overrides, config_to_dict, load_config, load_tree  # noqa: E402

# model_type -> "module:TrainerClass". Modules are imported only when chosen.
TRAINERS = {
    "AutoencoderKL": "models.tta.autoencoderkl.trainer:AutoencoderKLTrainer",
    "HiFiGAN": "models.tta.hifigan.trainer:HifiGanTrainer",
    "AudioLDM": "models.tta.audioldm.trainer:AudioLDMTrainer",
    "AudioLDM2": "models.tta.audioldm2.trainer:AudioLDM2Trainer",
    "AudioClassifier": "models.tta.audio_classifier.trainer:AudioClassifierTrainer",
    "TextAudio": "models.tta.text_audio.trainer:TextAudioTrainer",
}


def trainer_class(config_path: Path, overrides: list[str]) -> type:
    """The trainer class named by the config's `model_type` (after overrides)."""
    tree, sources = load_tree(config_path)
    tree = apply_overrides(tree, sources, overrides)
    model_type = tree.get("model_type")
    if model_type is None:
        raise ConfigError(f"{config_path}: missing required value 'model_type' (one of {', '.join(TRAINERS)})")
    if model_type not in TRAINERS:
        raise ConfigError(
            f"{sources.get('model_type', config_path)}: model_type: unknown {model_type!r}; "
            f"choose one of {', '.join(TRAINERS)}"
        )
    module_name, class_name = TRAINERS[model_type].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="experiment config (JSON5)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set trainer.max_steps=100 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest valid checkpoint")
    parser.add_argument("--exp_dir", type=Path, default=None, help="experiment folder (default <log_dir>/<exp_name>)")
    args = parser.parse_args(argv)
    try:
        stage = trainer_class(args.config, args.overrides)
        config = load_config(args.config, stage.config_schema, args.overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    exp_dir = args.exp_dir or Path(config.log_dir) / config.exp_name
    trainer = stage(config, exp_dir, config_to_dict(config))
    trainer.train(resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
