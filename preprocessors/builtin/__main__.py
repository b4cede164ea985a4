"""`python -m preprocessors.builtin --output_dir DIR [--num_clips N ...]`: build the raw built-in set only.

The recipe's entry point is `bins/tta/preprocess.py`, which also computes mels and split files; this command is
for inspecting or pre-building the raw clips.
"""

import argparse
from pathlib import Path

from preprocessors.builtin.builder import FAMILIES, build_builtin_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--num_clips", type=int, default=3000)
    parser.add_argument("--clip_seconds", type=float, default=5.0)
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--valid_fraction", type=float, default=0.05)
    parser.add_argument("--test_fraction", type=float, default=0.1)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--source_cache_dir", type=Path, default=None)
    args = parser.parse_args()
    captions_path = build_builtin_dataset(
        output_dir=args.output_dir,
        num_clips=args.num_clips,
        clip_seconds=args.clip_seconds,
        sample_rate=args.sample_rate,
        seed=args.seed,
        families=tuple(args.families),
        valid_fraction=args.valid_fraction,
        test_fraction=args.test_fraction,
        num_workers=args.num_workers,
        source_cache_dir=args.source_cache_dir,
    )
    print(captions_path)


if __name__ == "__main__":
    main()
