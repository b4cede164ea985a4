"""The `preprocess` config section: loading from a full recipe config, overrides, value checks."""

import pytest

from preprocessors.config import PreprocessConfig, load_preprocess_config
from utils.audio import MelConfig
from utils.config import ConfigError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_only_the_preprocess_section_is_read(tmp_path):
    write(tmp_path / "base.json", '{preprocess: {processed_dir: "data", dataset: "builtin", mel: {n_mels: 64}}}')
    config_path = write(
        tmp_path / "exp.json",
        '{base_config: "base.json", preprocess: {max_seconds: 10.24}, model: {anything: 1}, train: {lr: 1e-4}}',
    )
    config = load_preprocess_config(config_path, ["preprocess.num_workers=3", "preprocess.source.kind=folder"])
    assert isinstance(config, PreprocessConfig)
    assert (config.dataset, config.max_seconds, config.num_workers) == ("builtin", 10.24, 3)
    assert config.source.kind == "folder"
    assert config.mel == MelConfig()
    with pytest.raises(ConfigError, match="only takes preprocess"):
        load_preprocess_config(config_path, ["train.lr=1"])
    with pytest.raises(ConfigError, match="did you mean 'preprocess.num_workers'"):
        load_preprocess_config(config_path, ["preprocess.num_worker=3"])
    with pytest.raises(ConfigError, match="one of 'audiocaps'"):
        load_preprocess_config(config_path, ["preprocess.source.kind=youtube"])
    with pytest.raises(ConfigError, match="missing required value 'preprocess'"):
        load_preprocess_config(write(tmp_path / "none.json", "{model: {}}"))


@pytest.mark.parametrize(
    "values, key",
    [
        ({"num_workers": 0}, "preprocess.num_workers"),
        ({"min_seconds": 0.01}, "preprocess.min_seconds"),
        ({"max_seconds": 0.2, "min_seconds": 0.5}, "preprocess.max_seconds"),
        ({"peak_normalize": 1.5}, "preprocess.peak_normalize"),
        ({"valid_fraction": 0.6, "test_fraction": 0.5}, "preprocess.valid_fraction"),
        ({"dataset": "../up"}, "preprocess.dataset"),
    ],
)
def test_bad_values_name_their_key(values, key):
    settings = {"processed_dir": "data", "dataset": "d", **values}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        PreprocessConfig(**settings)
