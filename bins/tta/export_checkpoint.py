"""Export a trained model for inference: its weights (EMA where there are), resolved config and step, without
the optimizer and RNG state a training checkpoint carries.

    python bins/tta/export_checkpoint.py SOURCE DESTINATION [--raw_weights]

SOURCE is an experiment folder (its newest valid checkpoint is taken) or one checkpoint folder; DESTINATION is
the new inference checkpoint folder, which must not exist. Every loader of this repo that takes a checkpoint
folder reads the result. This is how pretrained/evaluation/ was made from egs/tta/evaluation/run_train.sh's
experiments. Exit status 2 on unusable input, with nothing written.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.checkpoint import CheckpointError, export_inference_checkpoint, read_checkpoint_meta  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="an experiment folder or a checkpoint folder")
    parser.add_argument("destination", type=Path, help="the inference checkpoint folder to write (must not exist)")
    parser.add_argument("--raw_weights", action="store_true", help="export the raw weights even if an EMA exists")
    args = parser.parse_args(argv)
    try:
        exported = export_inference_checkpoint(args.source, args.destination,
                                               use_ema=False if args.raw_weights else None)
    except CheckpointError as error:
        print(f"export_checkpoint: error: {error}", file=sys.stderr)
        return 2
    meta = read_checkpoint_meta(exported)
    print(f"exported step {meta['step']} of {meta['exported_from']['checkpoint']} to {exported} "
          f"({', '.join(f'{name}: {kind}' for name, kind in meta['exported_from']['weights'].items())} weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
