"""Where the animal family's adherence is lost: the evaluation classifier's animal predictions per evaluated set,
split by single-animal and two-animal prompts, from the per-clip labels that `evaluate.py generation` stores.

    python3 scripts/animal_sources.py METRICS_JSON [METRICS_JSON ...]
        [--splits data/processed/builtin/{train,valid,test}.json] [--text_encoder builtin:all-MiniLM-L6-v2]

METRICS_JSON is an evaluation output (e.g. the main job's exp/quickstart/generation_metrics.json); every set in
it ("real", "reconstructed", "generated", ...) gets one row. Columns: clips with exactly the prompt's animals
(the adherence of the "animals/sources" attribute), the same for one-animal and two-animal prompts, clips where
at least one prompted animal is among the predicted ones, the probability that a uniform random guess gets at
least as many exact clips (right with probability 1/10 for one animal, 1/45 for two: "P(chance)"), and the animals
predicted most often (a classifier that calls most clips "duck" hears no animal identity in them). With several
generated sets, a last row pools them (e.g. seeds of one model); every set counts as generated except those named
"real" and "reconstructed", the main job's names for its references. The split files give each reference uid's
attributes. --text_encoder also prints how far apart that encoder puts the ten one-animal captions ("a cat
meows", ...): the range of cosines of their masked-mean states between species, and their mean cosine to a
music caption (is the species in the conditioning at all?).
"""

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessors.builtin.animals import ANIMALS  # noqa: E402

DEFAULT_SPLITS = tuple(Path("data/processed/builtin") / f"{split}.json" for split in ("train", "valid", "test"))
NOT_GENERATED = ("real", "reconstructed")


def chance_tail(single: int, pair: int, hits: int, num_animals: int = len(ANIMALS)) -> float:
    """P(a uniform random guess gets >= hits exact clips) over `single` one-animal and `pair` two-animal clips,
    each right with probability 1 / C(num_animals, k): the tail of their Poisson-binomial distribution."""
    distribution = np.ones(1)
    for count, animals in ((single, 1), (pair, 2)):
        chance = 1.0 / math.comb(num_animals, animals)
        for _ in range(count):
            distribution = np.convolve(distribution, [1.0 - chance, chance])
    return float(distribution[hits:].sum())


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


def caption_cosines(encoder_name: str) -> tuple[float, float, float]:
    """(min, max) cosine between the ten one-animal captions' masked-mean text states, and their mean cosine to a
    music caption, under the named text encoder (e.g. the quickstart's builtin:all-MiniLM-L6-v2)."""
    # Imported here: the label counts above need neither torch nor transformers.
    import torch

    from models.text_encoder import load_text_encoder
    from preprocessors.builtin.captions import ANIMAL_PHRASES

    captions = [clauses[0][0] for clauses in ANIMAL_PHRASES.values()] + ["a piano plays a slow melody"]
    with torch.no_grad():
        states, mask = load_text_encoder(encoder_name, max_length=48)(captions)
    pooled = (states * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
    pooled = torch.nn.functional.normalize(pooled, dim=1)
    similarity = pooled @ pooled.T
    animals = len(captions) - 1
    between = similarity[:animals, :animals][~torch.eye(animals, dtype=torch.bool)]
    return float(between.min()), float(between.max()), float(similarity[:animals, animals].mean())


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"animal_sources.py: cannot read {path}: {error}") from None


def _fraction(row: dict, hits: str, total: str) -> str:
    return f"{row.get(hits, 0)}/{row.get(total, 0)}"


def _print_row(file: str, row: dict) -> None:
    common = ", ".join(f"{animal} {count}" for animal, count in row["predicted"])
    tail = chance_tail(row.get("single", 0), row.get("pair", 0), row.get("exact", 0))
    print(f"{file[:38]:38s} {row['name'][:24]:24s} {row['clips']:5d} {_fraction(row, 'exact', 'clips'):>6s} "
          f"{_fraction(row, 'single_exact', 'single'):>7s} {_fraction(row, 'pair_exact', 'pair'):>6s} "
          f"{_fraction(row, 'overlap', 'clips'):>7s} {tail:9.2g}  {common}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, nargs="+")
    parser.add_argument("--splits", type=Path, nargs="+", default=list(DEFAULT_SPLITS))
    parser.add_argument("--text_encoder", default=None, help="also compare the one-animal captions under this encoder")
    args = parser.parse_args(argv)
    records = {record["Uid"]: record for path in args.splits for record in _read_json(path)}
    evaluations = {path: _read_json(path) for path in args.metrics}
    print(f"{'file':38s} {'set':24s} {'clips':>5s} {'exact':>6s} {'single':>7s} {'pair':>6s} {'overlap':>7s} "
          f"{'P(chance)':>9s}  most predicted")
    pooled, pooled_sets = Counter(), 0
    for path, evaluation in evaluations.items():
        for row in animal_rows(evaluation.get("results", []), records):
            if not row.get("clips"):
                continue
            _print_row(path.stem, row)
            if row["name"] not in NOT_GENERATED:
                pooled.update({key: value for key, value in row.items() if isinstance(value, int)})
                pooled_sets += 1
    if pooled_sets > 1:
        _print_row("pooled", {"name": f"{pooled_sets} generated sets", **pooled, "predicted": []})
    if args.text_encoder:
        low, high, music = caption_cosines(args.text_encoder)
        print(f"{args.text_encoder}: one-animal captions, cosine between species {low:.2f} to {high:.2f}; "
              f"to a music caption {music:.2f} on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
