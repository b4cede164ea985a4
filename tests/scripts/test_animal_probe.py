import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "animal_probe.py"
spec = importlib.util.spec_from_file_location("animal_probe", SCRIPT)
animal_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(animal_probe)


def test_prompts_name_each_species_in_label_order():
    prompts = animal_probe.species_prompts()
    assert prompts[:3] == ["A cat meows", "A cow moos", "Dogs bark"]
    assert len(prompts) == 10


def test_summary_counts_ranks_by_hand():
    # 10 species x 2 clips; clip 0 of every row hears its own species best, clip 1 hears "dog" (index 2) best
    # and the prompted species second (or, for the dog row, third after the cat).
    logits = torch.zeros(10, 2, 10)
    for species in range(10):
        logits[species, 0, species] = 5.0
        logits[species, 1, 2] = 5.0
        logits[species, 1, species] += 3.0 if species != 2 else -4.0  # dog: 1.0, below cat 4.0 and cow 3.5
        if species == 2:
            logits[species, 1, 0] = 4.0
            logits[species, 1, 1] = 3.5
    summary = animal_probe.probe_summary(logits)
    assert summary["clips"] == 20
    assert summary["top1"] == pytest.approx(10 / 20)
    # ranks: ten 0s, nine 1s (clip 1 of every row but dog's), and the dog row's clip 1: cat, cow, then dog -> 2
    assert summary["mean_rank"] == pytest.approx((9 * 1 + 2) / 20)
    assert summary["hits"]["dog"] == 1 and summary["hits"]["cat"] == 1
    assert summary["heard_most"]["dog"] == 10 and summary["heard_most"]["cat"] == 2


def test_summary_rejects_rows_that_are_not_one_per_species():
    with pytest.raises(ValueError, match="one row of clips per class"):
        animal_probe.probe_summary(torch.zeros(3, 2, 10))
