"""utils.config: inheritance, overrides, and errors that name the file and the dotted key."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from utils.config import ConfigError, config_to_dict, load_config, save_resolved_config


@dataclass
class OptimConfig:
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self):
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


@dataclass
class ModelConfig:
    latent_channels: int
    block_out_channels: list[int] = field(default_factory=lambda: [128, 256])
    attention: bool = True


@dataclass
class ExperimentConfig:
    model: ModelConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: Literal["no", "bf16", "fp16"] = "no"
    loss_weights: dict[str, float] = field(default_factory=dict)
    name: str | None = None


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def configs(tmp_path):
    (tmp_path / "config").mkdir()
    base = write(
        tmp_path / "config" / "base.json",
        "{ model: { latent_channels: 8, block_out_channels: [32, 64] }, // JSON5 comment\n"
        "  loss_weights: { rec: 1.0 } }",
    )
    child = write(
        tmp_path / "exp.json",
        '{ base_config: "config/base.json", model: { attention: false }, optim: { learning_rate: 3e-4 } }',
    )
    return base, child


def test_inheritance_merges_key_by_key(configs):
    _, child = configs
    config = load_config(child, ExperimentConfig)
    assert config.model.latent_channels == 8
    assert config.model.block_out_channels == [32, 64]
    assert config.model.attention is False
    assert config.optim.learning_rate == 3e-4
    assert config.optim.betas == (0.9, 0.999)
    assert config_to_dict(config)["optim"]["betas"] == [0.9, 0.999]


def test_overrides_are_parsed_and_checked(configs):
    _, child = configs
    config = load_config(
        child, ExperimentConfig, ["model.latent_channels=4", "precision=bf16", "name=run one", "loss_weights.kl=1e-6"]
    )
    assert config.model.latent_channels == 4
    assert config.precision == "bf16"
    assert config.name == "run one"
    assert config.loss_weights == {"rec": 1.0, "kl": 1e-6}


def test_unknown_key_names_file_key_and_suggestion(tmp_path, configs):
    bad = write(tmp_path / "typo.json", '{ base_config: "config/base.json", model: { latent_chanels: 4 } }')
    with pytest.raises(ConfigError) as error:
        load_config(bad, ExperimentConfig)
    message = str(error.value)
    assert "typo.json" in message and "model.latent_chanels" in message and "model.latent_channels" in message


def test_wrong_type_names_the_file_that_set_it(tmp_path, configs):
    bad = write(tmp_path / "wrong.json", '{ base_config: "config/base.json", model: { latent_channels: "8" } }')
    with pytest.raises(ConfigError, match=r"wrong\.json: model\.latent_channels: expected an integer"):
        load_config(bad, ExperimentConfig)
    bad_literal = write(tmp_path / "lit.json", '{ base_config: "config/base.json", precision: "fp64" }')
    with pytest.raises(ConfigError, match=r"lit\.json: precision: expected one of"):
        load_config(bad_literal, ExperimentConfig)
    bad_item = write(tmp_path / "item.json", '{ base_config: "config/base.json", model: {block_out_channels: [1, 2.5]} }')
    with pytest.raises(ConfigError, match=r"model\.block_out_channels\[1\]"):
        load_config(bad_item, ExperimentConfig)


def test_range_checks_of_a_schema_name_file_and_section(tmp_path, configs):
    bad = write(tmp_path / "neg.json", '{ base_config: "config/base.json", optim: { learning_rate: -1 } }')
    with pytest.raises(ConfigError, match=r"neg\.json: optim: learning_rate must be > 0, got -1"):
        load_config(bad, ExperimentConfig)


def test_missing_required_value(tmp_path):
    empty = write(tmp_path / "empty.json", "{ model: {} }")
    with pytest.raises(ConfigError, match=r"empty\.json: missing required value 'model\.latent_channels'"):
        load_config(empty, ExperimentConfig)


def test_bad_overrides_name_the_set_key(configs):
    _, child = configs
    with pytest.raises(ConfigError, match=r"--set model\.latent_channels: model\.latent_channels: expected an integer"):
        load_config(child, ExperimentConfig, ["model.latent_channels=eight"])
    with pytest.raises(ConfigError, match=r"--set optim\.learning_rat.*unknown key .optim\.learning_rat. \(did you mean .optim\.learning_rate.\?\)"):
        load_config(child, ExperimentConfig, ["optim.learning_rat=1e-3"])
    with pytest.raises(ConfigError, match=r"expected dotted\.key=value"):
        load_config(child, ExperimentConfig, ["precision"])


def test_missing_base_and_bad_json(tmp_path):
    orphan = write(tmp_path / "orphan.json", '{ base_config: "nope.json" }')
    with pytest.raises(ConfigError, match=r"orphan\.json: base_config names .*nope\.json"):
        load_config(orphan, ExperimentConfig)
    broken = write(tmp_path / "broken.json", "{ model: ")
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON5"):
        load_config(broken, ExperimentConfig)


def test_resolved_config_round_trips(tmp_path, configs):
    _, child = configs
    config = load_config(child, ExperimentConfig)
    save_resolved_config(config, tmp_path / "exp" / "config.json")
    again = load_config(tmp_path / "exp" / "config.json", ExperimentConfig)
    assert again == config
