"""Loudness kept or lost by a reconstruction, per built-in family: the mean level (dBFS RMS) of reference clips and
of their reconstructions paired by file name, and the mean paired difference
(`evaluation.metrics.reconstruction.level_difference_db`), grouped by family and, for sound effects, by the
prompt's loudness.

    python3 scripts/level_by_family.py REFERENCE_DIR RECONSTRUCTION_DIR [RECONSTRUCTION_DIR ...]
        [--split data/processed/builtin/test.json]

REFERENCE_DIR holds `<uid>.wav` (e.g. the main job's exp/quickstart/real), each RECONSTRUCTION_DIR the same names
(exp/quickstart/reconstructed); the split file gives each uid's family and attributes. Clips missing from a
folder are counted and left out.
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from evaluation.metrics.reconstruction import LEVEL_RMS_FLOOR, level_difference_db  # noqa: E402


def level_dbfs(waveform: np.ndarray) -> float:
    """RMS level (dBFS) of a mono waveform (S,), floored like `level_difference_db`."""
    return float(20.0 * np.log10(max(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))), LEVEL_RMS_FLOOR)))


def group_of(record: dict) -> str:
    family = record["Family"]
    return f"sfx/{record['Attributes']['loudness']}" if family == "sfx" else family


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference_dir", type=Path)
    parser.add_argument("reconstruction_dirs", type=Path, nargs="+")
    parser.add_argument("--split", type=Path, default=Path("data/processed/builtin/test.json"))
    args = parser.parse_args(argv)
    try:
        records = json.loads(args.split.read_text())
    except (OSError, ValueError) as error:
        print(f"level_by_family.py: cannot read --split {args.split}: {error}", file=sys.stderr)
        return 2
    for folder in (args.reference_dir, *args.reconstruction_dirs):
        if not folder.is_dir():
            print(f"level_by_family.py: {folder} is not a folder", file=sys.stderr)
            return 2
    header = ("folder", "group", "clips", "reference dBFS", "clip dBFS", "difference dB")
    print(f"{header[0]:40s} {header[1]:10s} {header[2]:>5s} {header[3]:>14s} {header[4]:>9s} {header[5]:>13s}")
    for folder in args.reconstruction_dirs:
        pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        missing = 0
        for record in records:
            reference_path, estimate_path = (side / f"{record['Uid']}.wav" for side in (args.reference_dir, folder))
            if not (reference_path.exists() and estimate_path.exists()):
                missing += 1
                continue
            reference, _ = soundfile.read(reference_path, dtype="float32")
            estimate, _ = soundfile.read(estimate_path, dtype="float32")
            length = min(len(reference), len(estimate))
            pairs[group_of(record)].append((reference[:length], estimate[:length]))
        for group in sorted(pairs):
            references = [reference for reference, _ in pairs[group]]
            estimates = [estimate for _, estimate in pairs[group]]
            difference = np.mean([level_difference_db(r, e) for r, e in pairs[group]])
            print(f"{folder!s:40s} {group:10s} {len(references):5d} "
                  f"{np.mean([level_dbfs(r) for r in references]):14.1f} "
                  f"{np.mean([level_dbfs(e) for e in estimates]):9.1f} {difference:13.1f}")
        if missing:
            print(f"{folder!s:40s} {missing} clips of the split missing from one of the folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
