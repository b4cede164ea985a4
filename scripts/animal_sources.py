"""Where the animal family's adherence is lost: the evaluation classifier's animal predictions per evaluated set,
split by single-animal and two-animal prompts, from the per-clip labels that `evaluate.py generation` stores.

    python3 scripts/animal_sources.py METRICS_JSON [METRICS_JSON ...]
        [--splits data/processed/builtin/{train,valid,test}.json]

METRICS_JSON is an evaluation output (e.g. the main job's exp/quickstart/generation_metrics.json); every set in
it ("real", "reconstructed", "generated", ...) gets one row. Columns: clips with exactly the prompt's animals
(the adherence of the "animals/sources" attribute), the same for one-animal and two-animal prompts, clips where
at least one prompted animal is among the predicted ones, and the animals predicted most often (a classifier
that calls most clips "duck" hears no animal identity in them). The split files give each reference uid's
attributes.
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

DEFAULT_SPLITS = tuple(Path("data/processed/builtin") / f"{split}.json" for split in ("train", "valid", "test"))


def animal_rows(results: list[dict], records: dict[str, dict]) -> list[dict]:
    """One summary per evaluated set: counts of exact / single / pair / overlap hits and predicted animals."""
    rows = []
    for result in results:
        counts = Counter()
        predicted = Counter()
        for clip in result.get("clips", []):
            references = [records[uid] for uid in clip.get("references", []) if uid in records]
            if not references or references[0]["Family"] != "animals":
                continue
            wanted = set(references[0]["Attributes"]["sources"])
            got = set((clip.get("classifier") or {}).get("sources") or [])
            kind = "single" if len(wanted) == 1 else "pair"
            counts["clips"] += 1
            counts[kind] += 1
            counts["exact"] += wanted == got
            counts[f"{kind}_exact"] += wanted == got
            counts["overlap"] += bool(wanted & got)
            predicted.update(got)
        rows.append({"name": result.get("name", "?"), **counts, "predicted": predicted.most_common(3)})
    return rows


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"animal_sources.py: cannot read {path}: {error}") from None


def _fraction(row: dict, hits: str, total: str) -> str:
    return f"{row.get(hits, 0)}/{row.get(total, 0)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, nargs="+")
    parser.add_argument("--splits", type=Path, nargs="+", default=list(DEFAULT_SPLITS))
    args = parser.parse_args(argv)
    records = {record["Uid"]: record for path in args.splits for record in _read_json(path)}
    evaluations = {path: _read_json(path) for path in args.metrics}
    print(f"{'file':38s} {'set':24s} {'clips':>5s} {'exact':>6s} {'single':>7s} {'pair':>6s} {'overlap':>7s}  "
          "most predicted")
    for path, evaluation in evaluations.items():
        for row in animal_rows(evaluation.get("results", []), records):
            if not row.get("clips"):
                continue
            common = ", ".join(f"{animal} {count}" for animal, count in row["predicted"])
            print(f"{path.stem[:38]:38s} {row['name'][:24]:24s} {row['clips']:5d} {_fraction(row, 'exact', 'clips'):>6s} "
                  f"{_fraction(row, 'single_exact', 'single'):>7s} {_fraction(row, 'pair_exact', 'pair'):>6s} "
                  f"{_fraction(row, 'overlap', 'clips'):>7s}  {common}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
