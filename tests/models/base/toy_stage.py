"""A tiny stage for testing the shared trainer: an MLP generator regresses y from x on synthetic data, with an L1
loss plus, from `disc_start`, a hinge adversarial loss against an MLP discriminator on (x, y) pairs. Two models
and two optimizers, so the GAN path (discriminator stepped only once active, frozen during the generator's
adversarial loss) is exercised. Switches for tests: `nan_at_step`, `crash_at_step`."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState, GradientState
from torch import nn
from torch.utils.data import Dataset

from models.base.trainer import Trainer
from models.base.trainer_config import EMAConfig, OptimizerConfig, TrainerConfig
from utils.config import config_to_dict


@dataclass
class ToyModelConfig:
    input_dim: int = 4
    output_dim: int = 3
    hidden: int = 16
    dropout: float = 0.1
    disc_start: int = 3
    adversarial_weight: float = 0.05
    train_size: int = 64
    valid_size: int = 16
    input_noise: float = 0.05
    nan_at_step: Optional[int] = None
    crash_at_step: Optional[int] = None


@dataclass
class ToyExperimentConfig:
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    model: ToyModelConfig = field(default_factory=ToyModelConfig)


class ToyRegressionSet(Dataset):
    """x (input_dim,) and y = tanh(x W) (output_dim,); x gets noise drawn from (seed, epoch, index)."""

    def __init__(self, *, size: int, input_dim: int, output_dim: int, noise: float, seed: int):
        generator = torch.Generator().manual_seed(seed)
        weights = torch.randn(input_dim, output_dim, generator=torch.Generator().manual_seed(0))
        self.inputs = torch.randn(size, input_dim, generator=generator)
        self.targets = torch.tanh(self.inputs @ weights)
        self.noise = noise
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        jitter = np.random.default_rng([self.seed, self.epoch, index]).normal(size=self.inputs.shape[1])
        inputs = self.inputs[index] + self.noise * torch.from_numpy(jitter).float()
        return {"x": inputs, "y": self.targets[index], "index": torch.tensor(index)}


class ToyStage(Trainer):
    def build_models(self) -> dict[str, nn.Module]:
        config = self.config.model
        generator = nn.Sequential(
            nn.Linear(config.input_dim, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.output_dim),
        )
        discriminator = nn.Sequential(
            nn.Linear(config.input_dim + config.output_dim, config.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(config.hidden, 1),
        )
        return {"generator": generator, "discriminator": discriminator}

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config.model
        shape = {"input_dim": config.input_dim, "output_dim": config.output_dim}
        train = ToyRegressionSet(size=config.train_size, noise=config.input_noise, seed=1, **shape)
        valid = ToyRegressionSet(size=config.valid_size, noise=0.0, seed=2, **shape)
        return train, valid

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        config = self.config.model
        if step == config.crash_at_step:
            raise RuntimeError(f"simulated crash at step {step}")
        generator, discriminator = self.models["generator"], self.models["discriminator"]
        inputs, targets = batch["x"], batch["y"]
        prediction = generator(inputs)
        metrics = {}
        adversarial = step >= config.disc_start
        if adversarial:
            real = torch.cat([inputs, targets], dim=-1)
            fake = torch.cat([inputs, prediction.detach()], dim=-1)
            real_scores, fake_scores = discriminator(torch.cat([real, fake])).chunk(2)
            discriminator_loss = F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
            self.backward(discriminator_loss, name="discriminator_loss")
            self.optimizer_step("discriminator")
            metrics["discriminator_loss"] = discriminator_loss.item()
        reconstruction = F.l1_loss(prediction, targets)
        generator_loss = reconstruction
        if adversarial:
            with self.frozen("discriminator"):
                adversarial_loss = -discriminator(torch.cat([inputs, prediction], dim=-1)).mean()
            generator_loss = generator_loss + config.adversarial_weight * adversarial_loss
            metrics["adversarial_loss"] = adversarial_loss.item()
        if step == config.nan_at_step:
            generator_loss = generator_loss * float("nan")
        self.backward(generator_loss, name="generator_loss")
        self.optimizer_step("generator")
        return {**metrics, "reconstruction": reconstruction.item(), "generator_loss": generator_loss.item()}

    def validate(self, batch: dict) -> dict[str, float]:
        return {"l1": F.l1_loss(self.models["generator"](batch["x"]), batch["y"]).item()}

    def log_samples(self, step: int) -> None:
        inputs = torch.randn(8, self.config.model.input_dim, device=self.device)
        prediction = self.models["generator"](inputs)
        self.writer.mel_image("samples/prediction", prediction, step)
        self.writer.audio("samples/prediction", prediction.flatten().tanh(), sample_rate=8000, step=step)


class SGDToyStage(ToyStage):
    """The toy with plain SGD through the build_optimizers hook, for comparisons that hold only up to rounding:
    Adam's m / sqrt(v) turns the rounding noise of a near-zero gradient into a full-size step."""

    def build_optimizers(self, models: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {
            name: torch.optim.SGD(model.parameters(), lr=self.trainer_config.optimizers[name].learning_rate)
            for name, model in models.items()
        }


def toy_config(*, model: dict | None = None, **trainer_fields) -> ToyExperimentConfig:
    """A small, fast config; keyword arguments override TrainerConfig fields."""
    defaults = {
        "max_steps": 8,
        "batch_size": 8,
        "log_every": 2,
        "valid_every": 4,
        "save_every": 4,
        "keep_last_n": 0,
        "seed": 7,
        "optimizers": {
            "generator": OptimizerConfig(learning_rate=1e-2),
            "discriminator": OptimizerConfig(learning_rate=5e-3, betas=(0.5, 0.9)),
        },
        "ema": EMAConfig(enabled=True, models=["generator"], decay=0.9, start_step=2),
    }
    trainer = TrainerConfig(**{**defaults, **trainer_fields})
    return ToyExperimentConfig(trainer=trainer, model=dataclasses.replace(ToyModelConfig(), **(model or {})))


def make_toy(exp_dir: Path, config: ToyExperimentConfig, stage: type[ToyStage] = ToyStage) -> ToyStage:
    return stage(config, exp_dir, config_to_dict(config))


def reset_accelerate_state() -> None:
    """accelerate keeps process-wide singletons; tests that build trainers with different settings reset them."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
