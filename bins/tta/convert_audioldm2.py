"""Convert a public AudioLDM 2 checkpoint (a local diffusers-layout folder) into this repository's format.

    python bins/tta/convert_audioldm2.py --model_dir checkpoints/audioldm2 --output_dir exp/audioldm2_converted

Writes the UNet, VAE, vocoder and projection weights as safetensors with a meta.json of their constructor
arguments (layout: models/tta/audioldm2/convert.py). Nothing is downloaded and nothing is overwritten; bad input
exits with status 2 and a one-line message naming the flag.
"""

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from models.tta.audioldm2.convert import convert_audioldm2_folder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="local diffusers-layout folder, e.g. of cvssp/audioldm2")
    parser.add_argument("--output_dir", required=True, help="new folder for the converted checkpoint")
    args = parser.parse_args(argv)
    if Path(args.output_dir).exists():
        print(f"convert_audioldm2: error: --output_dir: {args.output_dir} already exists", file=sys.stderr)
        return 2
    try:
        path = convert_audioldm2_folder(args.model_dir, args.output_dir)
    except (OSError, ValueError, KeyError) as error:
        print(f"convert_audioldm2: error: --model_dir: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
