"""Every training config of the egs recipes (model_type set) validates against its trainer's schema, so a
renamed key or a broken base_config chain fails here rather than minutes into a recipe run."""

from pathlib import Path

import pytest

from bins.tta.train_tta import trainer_class
from utils.config import load_config, load_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_CONFIGS = sorted(
    path for path in (REPO_ROOT / "egs" / "tta").rglob("*.json") if "model_type" in load_tree(path)[0]
)


def test_the_recipes_have_training_configs():
    names = {str(path.relative_to(REPO_ROOT)) for path in TRAINING_CONFIGS}
    assert {"egs/tta/quickstart/vocoder.json", "egs/tta/quickstart/audioldm.json",
            "egs/tta/audioldm/exp_config.json", "egs/tta/hifigan/exp_config_vocos_cpu.json"} <= names


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_training_config_validates(path):
    config = load_config(path, trainer_class(path, []).config_schema)
    assert config.exp_name
