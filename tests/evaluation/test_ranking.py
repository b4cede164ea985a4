"""Ranker specs of the generation commands (`evaluation.ranking.parse_ranker` / `resolve_ranker`): the accepted
forms, what each bad one says, and when "auto" ranks. Only checkpoint metadata is read here; the scorers
themselves are run in tests/bins/test_inference_ranking.py and tests/models/tta/text_audio/test_trainer.py."""

from pathlib import Path

import pytest

from evaluation.ranking import RankerSpec, parse_ranker, resolve_ranker
from utils.checkpoint import checkpoint_name, save_inference_checkpoint


def experiment_folder(root: Path, model_type: str = "TextAudio") -> Path:
    """An experiment folder whose one checkpoint holds only metadata (enough for the checks)."""
    save_inference_checkpoint(root / "checkpoints" / checkpoint_name(3), models={},
                              config={"model_type": model_type}, step=3)
    return root


def test_accepted_forms(tmp_path):
    experiment = experiment_folder(tmp_path / "text:audio")
    assert parse_ranker("none") is None
    ours = parse_ranker(f"ours:{experiment}")
    assert ours == RankerSpec(kind="ours", path=(experiment / "checkpoints" / checkpoint_name(3)).resolve())
    assert str(ours) == f"ours:{ours.path}"
    assert parse_ranker(f"ours:{ours.path}") == ours, "a checkpoint folder works as well as its experiment"
    (tmp_path / "clap").mkdir()
    assert parse_ranker(f"clap:{tmp_path / 'clap'}") == RankerSpec(kind="clap", path=(tmp_path / "clap").resolve())


@pytest.mark.parametrize(
    "spec, message",
    [
        ("auto", "'auto' is not a ranker"),
        ("", "'' is not a ranker"),
        ("CLAP:x", "'CLAP:x' is not a ranker"),
        ("clap:", "'clap:' is not a ranker"),
        ("ours:{tmp}/nowhere", "ours ranker: {tmp}/nowhere does not exist"),
        ("ours:{tmp}/empty", "ours ranker: {tmp}/empty: neither a checkpoint folder"),
        ("ours:{tmp}/classifier", "is a 'AudioClassifier' checkpoint, not a TextAudio model"),
        ("clap:{tmp}/file.txt", "clap ranker: {tmp}/file.txt is not a folder"),
    ],
)
def test_bad_specs_say_what_is_wrong(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a model")
    experiment_folder(tmp_path / "classifier", model_type="AudioClassifier")
    with pytest.raises(ValueError) as error:
        parse_ranker(spec.format(tmp=tmp_path))
    assert message.format(tmp=tmp_path) in str(error.value)


def test_auto_ranks_with_the_builtin_model_when_there_is_something_to_rank(tmp_path):
    builtin = experiment_folder(tmp_path / "text_audio_builtin")
    assert resolve_ranker("auto", num_waveforms_per_prompt=1, builtin=builtin) == (None, "")
    spec, note = resolve_ranker("auto", num_waveforms_per_prompt=2, builtin=builtin)
    assert spec.kind == "ours" and spec.path.parent == (builtin / "checkpoints").resolve()
    assert note == f"ranking each prompt's candidates with {spec} (--ranker none keeps generation order)"

    ranker, note = resolve_ranker("auto", num_waveforms_per_prompt=2, builtin=tmp_path / "missing")
    assert ranker is None and "is missing (run from the repository root" in note
    (tmp_path / "in_progress" / "checkpoints").mkdir(parents=True)
    ranker, note = resolve_ranker("auto", num_waveforms_per_prompt=2, builtin=tmp_path / "in_progress")
    assert ranker is None and "no valid checkpoint" in note


def test_explicit_specs_are_checked_whatever_the_number_of_candidates(tmp_path):
    assert resolve_ranker("none", num_waveforms_per_prompt=4) == (None, "")
    spec, note = resolve_ranker(f"ours:{experiment_folder(tmp_path)}", num_waveforms_per_prompt=1)
    assert spec.kind == "ours" and note == ""
    with pytest.raises(ValueError, match="does not exist"):
        resolve_ranker(f"clap:{tmp_path / 'gone'}", num_waveforms_per_prompt=1)
