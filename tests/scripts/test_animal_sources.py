"""scripts/animal_sources.py: the chance tail by hand, and the pooled row over several files' generated sets."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "animal_sources.py"
spec = importlib.util.spec_from_file_location("animal_sources", SCRIPT)
animal_sources = importlib.util.module_from_spec(spec)
spec.loader.exec_module(animal_sources)


@pytest.mark.parametrize(
    ("single", "pair", "hits", "expected"),
    [
        (0, 0, 0, 1.0),
        (1, 0, 1, 0.1),  # one animal of ten
        (0, 1, 1, 1 / 45),  # a pair of ten: C(10, 2) = 45
        (2, 0, 1, 1 - 0.9**2),  # at least one of two
        (1, 1, 2, 0.1 / 45),  # both
        (3, 0, 4, 0.0),  # more hits than clips
    ],
)
def test_chance_tail_by_hand(single, pair, hits, expected):
    assert animal_sources.chance_tail(single, pair, hits) == pytest.approx(expected, abs=1e-12)


def test_main_pools_the_generated_sets_of_several_files(tmp_path, capsys):
    split = tmp_path / "test.json"
    split.write_text(
        '[{"Uid": "a", "Family": "animals", "Attributes": {"sources": ["cat"]}},'
        ' {"Uid": "b", "Family": "animals", "Attributes": {"sources": ["cow", "dog"]}}]'
    )
    clips = (
        '[{"references": ["a"], "classifier": {"sources": ["cat"]}},'
        ' {"references": ["b"], "classifier": {"sources": ["dog", "pig"]}}]'
    )
    for index in (1, 2):
        (tmp_path / f"m{index}.json").write_text(
            '{"results": [{"name": "real", "clips": %s}, {"name": "generated", "clips": %s}]}' % (clips, clips)
        )
    assert animal_sources.main([str(tmp_path / "m1.json"), str(tmp_path / "m2.json"), "--splits", str(split)]) == 0
    pooled = capsys.readouterr().out.strip().splitlines()[-1].split()
    # two generated sets of 2 clips: 2 exact (the cats) of 4, both singles right, no pair right; a random guess
    # gets >= 2 of 2 singles (0.1 each) and 2 pairs (1/45 each) with 1 - P(0) - P(1)
    assert pooled[:6] == ["pooled", "2", "generated", "sets", "4", "2/4"]
    assert pooled[6:8] == ["2/2", "0/2"]
    pair_chance = 1 / 45
    no_hit = 0.9**2 * (1 - pair_chance) ** 2
    one_hit = 2 * 0.1 * 0.9 * (1 - pair_chance) ** 2 + 0.9**2 * 2 * pair_chance * (1 - pair_chance)
    assert float(pooled[9]) == pytest.approx(1 - no_hit - one_hit, abs=5e-4)  # printed to 2 significant digits
