"""Typed settings of the shared training loop (`models.base.trainer.Trainer`).

Every experiment config holds one `TrainerConfig` under the key `trainer`. The schema is plain dataclasses so
`utils.config.load_config` validates it (unknown keys, wrong types and missing values are errors); the checks in
`__post_init__` add the range rules a type cannot express.
"""

from dataclasses import dataclass, field
from typing import Literal, Optional


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class OptimizerConfig:
    """One AdamW optimizer and its learning-rate schedule (Loshchilov & Hutter, 2019).

    The schedule counts this optimizer's own updates: linear warmup from learning_rate / warmup_steps to
    learning_rate over `warmup_steps` updates, then constant, or a cosine / linear decay that reaches
    learning_rate * min_lr_ratio at `trainer.max_steps`.
    """

    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eps: float = 1e-8
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        _require(self.learning_rate > 0, f"optimizer learning_rate must be > 0, got {self.learning_rate}")
        _require(all(0.0 <= beta < 1.0 for beta in self.betas), f"optimizer betas must be in [0, 1), got {self.betas}")
        _require(self.weight_decay >= 0, f"optimizer weight_decay must be >= 0, got {self.weight_decay}")
        _require(self.eps > 0, f"optimizer eps must be > 0, got {self.eps}")
        _require(
            self.lr_schedule in ("constant", "cosine", "linear"),
            f"optimizer lr_schedule must be constant, cosine or linear, got {self.lr_schedule!r}",
        )
        _require(self.warmup_steps >= 0, f"optimizer warmup_steps must be >= 0, got {self.warmup_steps}")
        _require(0.0 <= self.min_lr_ratio <= 1.0, f"optimizer min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class EMAConfig:
    """Exponential moving average of model weights (Polyak & Juditsky, 1992), used for validation and samples.

    `models` names the models to average (names from the stage's `build_models`); empty means every model.
    Before `start_step` the average is a copy of the weights; with `warmup` the decay ramps as
    min(decay, (1 + n) / (10 + n)) over the n updates since `start_step`.
    """

    enabled: bool = False
    models: list[str] = field(default_factory=list)
    decay: float = 0.999
    start_step: int = 0
    warmup: bool = True
    use_for_evaluation: bool = True

    def __post_init__(self) -> None:
        _require(0.0 <= self.decay < 1.0, f"ema decay must be in [0, 1), got {self.decay}")
        _require(self.start_step >= 0, f"ema start_step must be >= 0, got {self.start_step}")


@dataclass
class TrainerConfig:
    """Loop settings. A "step" is one update of the optimizers, i.e. `gradient_accumulation_steps` batches of
    `batch_size` examples on each process. Intervals are in steps; 0 turns the periodic action off (a checkpoint
    is still written at the last step). `mixed_precision` "auto" is bf16 autocast where bf16 is fast (a bf16
    GPU, a CPU with AMX-BF16 or AVX-512 BF16) and fp32 elsewhere: emulated bf16 on other CPUs is several times
    slower than fp32 (`utils.precision`)."""

    max_steps: int = 10000
    batch_size: int = 8
    valid_batch_size: Optional[int] = None
    num_workers: int = 0
    gradient_accumulation_steps: int = 1
    max_grad_norm: Optional[float] = None
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = "no"
    seed: int = 1234
    deterministic: bool = False
    ddp_find_unused_parameters: bool = False
    optimizers: dict[str, OptimizerConfig] = field(default_factory=dict)
    ema: EMAConfig = field(default_factory=EMAConfig)
    log_every: int = 50
    valid_every: int = 1000
    valid_max_batches: Optional[int] = None
    sample_every: int = 0
    save_every: int = 1000
    keep_last_n: int = 3

    def __post_init__(self) -> None:
        _require(self.max_steps > 0, f"trainer.max_steps must be > 0, got {self.max_steps}")
        _require(self.batch_size > 0, f"trainer.batch_size must be > 0, got {self.batch_size}")
        _require(
            self.valid_batch_size is None or self.valid_batch_size > 0,
            f"trainer.valid_batch_size must be > 0 or null, got {self.valid_batch_size}",
        )
        _require(self.seed >= 0, f"trainer.seed must be >= 0, got {self.seed}")
        _require(self.num_workers >= 0, f"trainer.num_workers must be >= 0, got {self.num_workers}")
        _require(
            self.gradient_accumulation_steps >= 1,
            f"trainer.gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}",
        )
        _require(
            self.max_grad_norm is None or self.max_grad_norm > 0,
            f"trainer.max_grad_norm must be > 0 or null (no clipping), got {self.max_grad_norm}",
        )
        _require(
            self.valid_max_batches is None or self.valid_max_batches > 0,
            f"trainer.valid_max_batches must be > 0 or null (whole set), got {self.valid_max_batches}",
        )
        for name in ("log_every", "valid_every", "sample_every", "save_every", "keep_last_n"):
            value = getattr(self, name)
            _require(value >= 0, f"trainer.{name} must be >= 0, got {value}")
