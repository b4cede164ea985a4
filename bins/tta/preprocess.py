"""Preprocess a dataset into the common layout (wav, mel, split JSONs, manifest, report).

    python bins/tta/preprocess.py --config egs/tta/<recipe>/exp_config.json [--set preprocess.num_workers=4 ...]

Reads only the config's `preprocess` section, so any recipe config works. Run from the repository root: relative
paths in configs are relative to the working directory. Exits with status 2 and a one-line message when the
config or an input path is unusable; a clip that cannot be used is skipped and listed in report.json instead.
"""

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from preprocessors.config import load_preprocess_config  # noqa: E402  (needs the repo root on sys.path)
from preprocessors.pipeline import run_preprocess  # noqa: E402
from utils.config import ConfigError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Turn raw audio + captions into the processed TTA layout.")
    parser.add_argument("--config", required=True, help="JSON5 config with a `preprocess` section")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="preprocess.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set preprocess.num_workers=4",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    args = parser.parse_args(argv)
    try:
        config = load_preprocess_config(args.config, args.overrides)
        summary = run_preprocess(config, show_progress=not args.no_progress)
    except ConfigError as error:
        print(f"preprocess: error: {error}", file=sys.stderr)
        return 2
    print(
        f"{summary.dataset_dir}: {summary.processed} clips processed, {summary.resumed} already done, "
        f"{summary.skipped} skipped (reasons in report.json)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
