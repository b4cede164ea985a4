"""Reports of `evaluation.generation` results: Markdown tables (one row per evaluated folder) and TensorBoard."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.metrics.attributes import SCORED_ATTRIBUTES
from utils.logging import ExperimentWriter

# Column order: families and attributes as `SCORED_ATTRIBUTES` lists them, anything else after.
_ORDER = [family for family in SCORED_ATTRIBUTES] + [
    f"{family}/{name}" for family, names in SCORED_ATTRIBUTES.items() for name in names
]


def _ordered(keys: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(keys))
    return sorted(unique, key=lambda key: (_ORDER.index(key) if key in _ORDER else len(_ORDER), unique.index(key)))


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _backbone_columns(results: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(header, backbone, metric key) of the set-metric columns; headers name the backbone when there are several."""
    backbones = list(dict.fromkeys(name for result in results for name in result["metrics"]))
    columns = []
    for metric, header in (("fd", "FD"), ("fad", "FAD"), ("kl", "KL"), ("kl_sigmoid", "KL sigmoid"), ("is", "IS")):
        for backbone in backbones:
            if any(result["metrics"].get(backbone, {}).get(metric) is not None for result in results):
                label = header if len(backbones) == 1 else f"{header} ({backbone})"
                columns.append((label, backbone, metric))
    return columns


def markdown_report(results: Sequence[dict[str, Any]]) -> str:
    """Markdown tables: set metrics and adherence per family; adherence per attribute with a chance row; for
    built-in data with both kinds of prompts, adherence per attribute on seen and on held-out combinations
    (FD/FAD/KL lower is better; IS, text–audio score and adherence higher is better)."""
    columns = _backbone_columns(results)
    families = _ordered([family for result in results for family in result["adherence_by_family"]])
    header = ["Clips", "N", *(label for label, _, _ in columns), "Text–audio",
              *(f"Adherence {family}" for family in families), "Problems"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        text_audio = (result.get("text_audio") or {}).get("score")
        row = [
            result["name"],
            str(result["num_clips"]),
            *(_number(result["metrics"][backbone].get(metric), ".2f") for _, backbone, metric in columns),
            _number(text_audio, ".3f"),
            *(_number(result["adherence_by_family"].get(family), ".1%") for family in families),
            str(len(result["problems"])),
        ]
        lines.append("| " + " | ".join(row) + " |")
    attributes = _ordered([key for result in results for key in result["adherence"]])
    if attributes:
        lines += ["", "| Clips | " + " | ".join(attributes) + " |", "|" + "---|" * (len(attributes) + 1)]
        for result in results:
            cells = (_number(result["adherence"].get(key), ".1%") for key in attributes)
            lines.append(f"| {result['name']} | " + " | ".join(cells) + " |")
        chance_rows = _chance_rows(results)
        for label, chance in chance_rows:
            lines.append(f"| {label} | " + " | ".join(_number(chance.get(key), ".1%") for key in attributes) + " |")
        lines += _combination_table(results, attributes, chance_rows)
    lines += [
        "",
        "FD, FAD (Fréchet distances to the reference clips' embeddings) and KL (paired, reference vs clip class "
        "posteriors): lower is better. IS, text–audio score (mean cosine of prompt and clip) and attribute adherence "
        "(accuracy against the prompt's attributes: signal measurements for sound-effect pitch, count, sweep, "
        "loudness and length; the evaluation classifier otherwise): higher is better.",
    ]
    return "\n".join(lines) + "\n"


def _chance_rows(results: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """("chance", accuracy of a random guess) when every set has the same; else one "chance (<set>)" row per set
    (the animal chance depends on how many of a set's prompts name one animal and how many two)."""
    chances = [result.get("chance") or {} for result in results]
    if all(chance == chances[0] for chance in chances):
        return [("chance", chances[0])]
    return [(f"chance ({result['name']})", chance) for result, chance in zip(results, chances)]


def _combination_table(results: Sequence[dict[str, Any]], attributes: Sequence[str],
                       chance_rows: Sequence[tuple[str, dict[str, float]]]) -> list[str]:
    """Adherence per attribute for prompts of combinations seen in training and of held-out ones (built-in data),
    when the results hold both kinds; no lines otherwise."""
    rows = [(result, subset, entry) for result in results
            for subset, entry in (result.get("adherence_by_combination") or {}).items()]
    if len({subset for _, subset, _ in rows}) < 2:
        return []
    lines = ["", "Seen combinations: attribute combinations that occur in training (new clips and captions); held out: "
             "combinations never trained on.", "",
             "| Clips | Combinations | N | " + " | ".join(attributes) + " |", "|" + "---|" * (len(attributes) + 3)]
    for result, subset, entry in rows:
        cells = (_number(entry["adherence"].get(key), ".1%") for key in attributes)
        label = "held out" if subset == "held_out" else subset
        lines.append(f"| {result['name']} | {label} | {entry['num_clips']} | " + " | ".join(cells) + " |")
    for label, chance in chance_rows:
        lines.append(f"| {label} | | | " + " | ".join(_number(chance.get(key), ".1%") for key in attributes) + " |")
    return lines


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write text to a temporary name and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def log_to_tensorboard(results: Sequence[dict[str, Any]], log_dir: Path | str, *, step: int = 0) -> None:
    """Every number of the tables as a TensorBoard scalar "eval/<folder name>/<metric>" at `step`."""
    writer = ExperimentWriter(log_dir, enabled=True)
    for result in results:
        scalars = {}
        for backbone, metrics in result["metrics"].items():
            for key, value in metrics.items():
                if isinstance(value, float):
                    scalars[f"eval/{result['name']}/{key}_{backbone}"] = value
        if (result.get("text_audio") or {}).get("score") is not None:
            scalars[f"eval/{result['name']}/text_audio"] = result["text_audio"]["score"]
        for key, value in result["adherence"].items():
            scalars[f"eval/{result['name']}/adherence/{key}"] = value
        writer.scalars(scalars, step)
    writer.close()
