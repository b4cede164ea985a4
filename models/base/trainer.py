"""The one training loop every stage shares (VAE + GAN, vocoder, latent diffusion, evaluation classifiers).

A stage subclasses `Trainer` and overrides hooks, never the loop (the shape of audiocraft's StandardSolver):

    build_models()            -> {name: nn.Module}      required: the trained models (checkpointed, DDP-wrapped)
    build_optimizers(models)  -> {name: Optimizer}      default: one AdamW per model from `trainer.optimizers`
    build_datasets()          -> (train, valid | None)  required
    collate(items)            -> batch                  default: torch's default_collate
    train_step(batch, step)   -> {metric: float}        required: calls self.backward / self.optimizer_step
    validate(batch)           -> {metric: float}        required: one validation batch, averaged over batches
    log_samples(step)         -> None                   default: nothing; writes audio / mel images via self.writer

Any other public method in a subclass is an error at construction, so a renamed or misspelled hook
(`train_stepp`) fails loudly instead of being silently ignored; stage helpers are private (`_name`).

accelerate provides the processes (one on CPU, DDP under `accelerate launch`), device placement and autocast.
Optimizers stay plain torch optimizers: the trainer steps each one itself, so a GAN stage can update its
discriminator only once it is active, and an fp16 grad scaler is updated once per step for all optimizers
(accelerate's wrapped optimizers update it after every optimizer, which mis-scales the second one of a GAN).
"""

import contextlib
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType, broadcast_object_list, gather_object
from torch import nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from models.base.ema import ExponentialMovingAverage
from models.base.hooks import (
    check_stage_class,
    checked_models,
    checked_optimizers,
    metrics_as_floats,
    optimizer_config,
)
from models.base.loader import ResumableTrainLoader, build_validation_loader, move_to_device
from models.base.optim import build_adamw, build_lr_scheduler
from models.base.rng import isolated_rng, restore_rng_state, seed_everything
from models.base.trainer_config import TrainerConfig
from models.base.training_checkpoint import load_training_checkpoint, save_training_checkpoint
from utils.checkpoint import (
    CheckpointError,
    checkpoint_name,
    latest_valid_checkpoint,
    list_checkpoints,
    write_json_atomic,
)
from utils.logging import ExperimentWriter, setup_console_logging
from utils.precision import auto_training_precision

logger = logging.getLogger(__name__)

_UNSUPPORTED_BACKENDS = (DistributedType.DEEPSPEED, DistributedType.FSDP, DistributedType.MEGATRON_LM)


class NonFiniteLossError(RuntimeError):
    """A loss or metric became NaN or inf; the run stops without saving that state."""


class Trainer:
    """Shared loop: data, steps with gradient accumulation, clipping, LR schedules, EMA, validation, samples,
    TensorBoard, checkpoints and resume. See the module docstring for the hooks a stage overrides.

    Args:
        config: the experiment config (a dataclass); `config.trainer` is a `TrainerConfig`, the rest is the
            stage's business.
        exp_dir: the experiment folder: `config.json`, `checkpoints/step_XXXXXXXX/`, `logs/` (TensorBoard).
        resolved_config: `config` as plain JSON data, written to `config.json` and into every checkpoint.

    Attributes a stage uses: `config`, `trainer_config`, `device`, `models` (DDP-wrapped when distributed;
    unwrapped during validation and sampling), `optimizers`, `lr_schedulers`, `emas`, `step`, `writer`,
    `is_main_process`, `accelerator`. The hooks run inside `__init__`, so a stage that overrides `__init__`
    sets its own attributes before calling `super().__init__`.
    """

    def __init__(self, config: Any, exp_dir: Path | str, resolved_config: dict):
        check_stage_class(type(self), Trainer)
        self.config = config
        self.trainer_config: TrainerConfig = config.trainer
        self.exp_dir = Path(exp_dir)
        self.checkpoints_dir = self.exp_dir / "checkpoints"
        self.resolved_config = resolved_config
        self.accelerator = self._build_accelerator()
        setup_console_logging(is_main_process=self.is_main_process)
        seed_everything(
            self.trainer_config.seed + self.accelerator.process_index, deterministic=self.trainer_config.deterministic
        )
        self.step = 0
        self.writer = ExperimentWriter(self.exp_dir / "logs", enabled=False)
        self._in_train_step = False
        self._accumulating = False
        self._last_checkpoint: Path | None = None
        self._grad_norms: dict[str, float] = {}
        self._grad_scaler = self.accelerator.scaler

        stage = type(self).__name__
        models = checked_models(self.build_models(), f"{stage}.build_models")
        optimizers = self.build_optimizers(models)
        self.optimizers = checked_optimizers(optimizers, self.trainer_config.optimizers, f"{stage}.build_optimizers")
        self.lr_schedulers = {
            name: build_lr_scheduler(optimizer, self.trainer_config.optimizers[name], self.trainer_config.max_steps)
            for name, optimizer in self.optimizers.items()
        }
        self.models = {name: self.accelerator.prepare_model(model) for name, model in models.items()}
        self._unwrapped = {name: self.accelerator.unwrap_model(model) for name, model in self.models.items()}
        self.emas = self._build_emas()

        train_set, valid_set = self.build_datasets()
        config, processes = self.trainer_config, self.accelerator
        loading = {
            "collate_fn": self.collate,
            "num_workers": config.num_workers,
            "pin_memory": self.device.type == "cuda",
        }
        self._train_loader = ResumableTrainLoader(
            train_set,
            batch_size=config.batch_size,
            seed=config.seed,
            num_replicas=processes.num_processes,
            rank=processes.process_index,
            **loading,
        )
        self._valid_loader = None
        if valid_set is not None:
            self._valid_loader = build_validation_loader(
                valid_set,
                batch_size=config.valid_batch_size or config.batch_size,
                num_replicas=processes.num_processes,
                rank=processes.process_index,
                max_batches=config.valid_max_batches,
                seed=config.seed,
                **loading,
            )

    # ----------------------------------------------------------------------------------------------- hooks

    def build_models(self) -> dict[str, nn.Module]:
        """Required. The models this stage trains, by name (names become checkpoint file names). Frozen helpers
        (a text encoder, a trained VAE) are not returned: keep them as private attributes on `self.device`."""
        raise NotImplementedError(f"{type(self).__name__} must implement the trainer hook build_models")

    def build_optimizers(self, models: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """One AdamW per model, configured by `trainer.optimizers[<model name>]`."""
        configured = self.trainer_config.optimizers
        return {
            name: build_adamw(
                [p for p in model.parameters() if p.requires_grad], optimizer_config(configured, name, list(models))
            )
            for name, model in models.items()
        }

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        """Required. (training set, validation set or None). Random augmentation should be a function of
        (seed, epoch, index) (`set_epoch(epoch)` is called when an epoch starts) so resume is exact."""
        raise NotImplementedError(f"{type(self).__name__} must implement the trainer hook build_datasets")

    def collate(self, items: list) -> Any:
        """Batch a list of dataset items."""
        return default_collate(items)

    def train_step(self, batch: Any, step: int) -> dict[str, float]:
        """Required. One batch at step `step` (0-based count of completed steps): compute losses, call
        `self.backward(loss, name=...)` and `self.optimizer_step(name)`; return scalar metrics to log."""
        raise NotImplementedError(f"{type(self).__name__} must implement the trainer hook train_step")

    def validate(self, batch: Any) -> dict[str, float]:
        """Required. Metrics of one validation batch (models in eval mode, EMA weights, no grad)."""
        raise NotImplementedError(f"{type(self).__name__} must implement the trainer hook validate")

    def log_samples(self, step: int) -> None:
        """Generate examples and write them with `self.writer.audio / mel_image` (runs on every process, under
        the same conditions as `validate`; only the main process writes)."""

    # ------------------------------------------------------------------------------- helpers for stages

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    def unwrap(self, name: str) -> nn.Module:
        """The model `name` without its DDP wrapper."""
        return self._unwrapped[name]

    def backward(self, loss: torch.Tensor, *, name: str = "loss") -> None:
        """Accumulate gradients of `loss` (scaled for gradient accumulation and fp16). A NaN or inf loss on any
        process stops the run with NonFiniteLossError naming `name` and the step, before any update."""
        self._require_train_step("backward")
        self._raise_if_not_finite({name: loss.detach().float()}, "loss")
        loss = loss / self.trainer_config.gradient_accumulation_steps
        if self._grad_scaler is not None:
            loss = self._grad_scaler.scale(loss)
        loss.backward()

    def optimizer_step(self, name: str) -> bool:
        """Clip gradients, update, clear gradients and advance the LR schedule of optimizer `name`. During
        gradient accumulation only the last batch of a step updates; earlier calls return False. (So in a GAN
        with accumulation, the generator's adversarial loss on earlier batches sees the discriminator before
        this step's update, on the last batch after it.)"""
        self._require_train_step("optimizer_step")
        if name not in self.optimizers:
            raise KeyError(f"no optimizer {name!r}; optimizers are {sorted(self.optimizers)}")
        if self._accumulating:
            return False
        optimizer = self.optimizers[name]
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        if self._grad_scaler is not None:
            self._grad_scaler.unscale_(optimizer)
        max_norm = self.trainer_config.max_grad_norm
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm else math.inf))
        if self._grad_scaler is None and not math.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"{type(self).__name__}: gradient norm of optimizer {name!r} is {grad_norm} at step {self.step} "
                f"(the losses were finite); {self._stop_message()}"
            )
        if self._grad_scaler is not None:
            self._grad_scaler.step(optimizer)
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.lr_schedulers[name].step()
        self._grad_norms[name] = grad_norm
        return True

    @contextlib.contextmanager
    def frozen(self, *names: str) -> Iterator[None]:
        """No gradients into the named models inside the block, e.g. the discriminator while computing the
        generator's adversarial loss, so that loss does not leak into the discriminator's gradients.

        Under DDP the frozen models also run outside gradient synchronisation: a synchronised forward whose
        backward never reaches the model's parameters leaves DDP expecting gradients, and its next backward is
        then all-reduced even inside gradient accumulation. Any other forward of a DDP-wrapped model under
        autograd must be followed by a backward through it."""
        parameters = [p for name in names for p in self._unwrapped[name].parameters()]
        flags = [p.requires_grad for p in parameters]
        with contextlib.ExitStack() as stack:
            for name in names:
                stack.enter_context(self.accelerator.no_sync(self.models[name]))
            for parameter in parameters:
                parameter.requires_grad_(False)
            try:
                yield
            finally:
                for parameter, flag in zip(parameters, flags):
                    parameter.requires_grad_(flag)

    # ---------------------------------------------------------------------------------------- the loop

    def train(self, *, resume: bool = False) -> None:
        """Train to `trainer.max_steps`. With `resume`, continue from the newest valid checkpoint in exp_dir
        (damaged newer ones are skipped with a warning); without it, an exp_dir holding checkpoints is an error."""
        self._prepare_run(resume)
        config = self.trainer_config
        stream = iter(self._train_loader)
        progress = tqdm(
            total=config.max_steps, initial=self.step, disable=not self.is_main_process, desc=type(self).__name__
        )
        window = _MetricWindow()
        try:
            while self.step < config.max_steps:
                started = time.perf_counter()
                metrics = self._run_step(stream)
                self.step += 1
                for name, ema in self.emas.items():
                    ema.update(self._unwrapped[name], self.step - 1)
                window.add(metrics, time.perf_counter() - started)
                progress.update(1)
                if _due(self.step, config.log_every) or self.step == config.max_steps:
                    progress.set_postfix(self._log_train(window), refresh=False)
                    window = _MetricWindow()
                if _due(self.step, config.valid_every):
                    self._run_validation()
                if _due(self.step, config.sample_every):
                    with self._evaluation():
                        self.log_samples(self.step)
                if _due(self.step, config.save_every) or self.step == config.max_steps:
                    self.save_checkpoint()
        finally:
            stream.close()
            progress.close()
            self.writer.close()

    def _run_step(self, stream: Iterator[Any]) -> dict[str, float]:
        """One optimizer step: `gradient_accumulation_steps` batches, gradients synchronised on the last."""
        accumulation = self.trainer_config.gradient_accumulation_steps
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self._grad_norms = {}
        totals: dict[str, float] = defaultdict(float)
        for micro_batch in range(accumulation):
            batch = move_to_device(next(stream), self.device)
            self._accumulating = micro_batch < accumulation - 1
            with contextlib.ExitStack() as no_sync:
                if self._accumulating:
                    for model in self.models.values():
                        no_sync.enter_context(self.accelerator.no_sync(model))
                self._in_train_step = True
                try:
                    metrics = metrics_as_floats(self.train_step(batch, self.step), f"{type(self).__name__}.train_step")
                finally:
                    self._in_train_step = False
            for key, value in metrics.items():
                totals[key] += value / accumulation
        self._accumulating = False
        if self._grad_scaler is not None and self._grad_norms:
            self._grad_scaler.update()
        self._raise_if_not_finite(totals, "metric")
        return {**totals, **{f"grad_norm/{name}": norm for name, norm in self._grad_norms.items()}}

    def _log_train(self, window: "_MetricWindow") -> dict[str, str]:
        means = self._mean_over_processes(window.sums, window.counts)
        config = self.trainer_config
        global_batch = config.batch_size * config.gradient_accumulation_steps * self.accelerator.num_processes
        scalars = {
            f"train/{key}" if not key.startswith("grad_norm/") else key: value for key, value in means.items()
        }
        scalars.update({f"lr/{name}": s.get_last_lr()[0] for name, s in self.lr_schedulers.items()})
        scalars["perf/seconds_per_step"] = window.seconds / max(window.steps, 1)
        scalars["perf/samples_per_second"] = global_batch * window.steps / max(window.seconds, 1e-9)
        self.writer.scalars(scalars, self.step)
        return {key: f"{value:.4g}" for key, value in means.items() if not key.startswith("grad_norm/")}

    def _run_validation(self) -> dict[str, float]:
        if self._valid_loader is None:
            return {}
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        with self._evaluation():
            for batch in self._valid_loader:
                metrics = self.validate(move_to_device(batch, self.device))
                metrics = metrics_as_floats(metrics, f"{type(self).__name__}.validate")
                for key, value in metrics.items():
                    sums[key] += value
                    counts[key] += 1
        means = self._mean_over_processes(sums, counts)
        self.writer.scalars({f"valid/{key}": value for key, value in means.items()}, self.step)
        summary = ", ".join(f"{key} {value:.4g}" for key, value in sorted(means.items()))
        logger.info("step %d validation: %s", self.step, summary)
        return means

    @contextlib.contextmanager
    def _evaluation(self) -> Iterator[None]:
        """Eval mode, no grad, EMA weights (if configured), a fixed seed that leaves the training RNG untouched,
        and unwrapped models: no DDP collectives, so processes may run different numbers of batches."""
        wrapped, modes = self.models, {name: model.training for name, model in self._unwrapped.items()}
        use_ema = self.trainer_config.ema.enabled and self.trainer_config.ema.use_for_evaluation
        with contextlib.ExitStack() as stack:
            if use_ema:
                for name, ema in self.emas.items():
                    stack.enter_context(ema.applied_to(self._unwrapped[name]))
            stack.enter_context(isolated_rng(self.trainer_config.seed + self.accelerator.process_index))
            stack.enter_context(torch.no_grad())
            self.models = dict(self._unwrapped)
            for model in self._unwrapped.values():
                model.eval()
            try:
                yield
            finally:
                self.models = wrapped
                for name, model in self._unwrapped.items():
                    model.train(modes[name])

    def _mean_over_processes(self, sums: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
        """Per-key means over all processes' values (collective: every process must call it)."""
        total_sums: dict[str, float] = defaultdict(float)
        total_counts: dict[str, int] = defaultdict(int)
        for process_sums, process_counts in gather_object([(dict(sums), dict(counts))]):
            for key, value in process_sums.items():
                total_sums[key] += value
                total_counts[key] += process_counts[key]
        return {key: total_sums[key] / total_counts[key] for key in sorted(total_sums)}

    # ------------------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path:
        """Write `checkpoints/step_XXXXXXXX/` atomically (every process writes its RNG state), then prune."""
        final_dir = self.checkpoints_dir / checkpoint_name(self.step)
        position = self._train_loader.position
        training_state = {
            "step": self.step,
            "data_position": [position.epoch, position.batch],
            "global_batch_size": self._train_loader.global_batch_size,
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "lr_schedulers": {name: scheduler.state_dict() for name, scheduler in self.lr_schedulers.items()},
            "grad_scaler": None if self._grad_scaler is None else self._grad_scaler.state_dict(),
        }
        meta = {
            "step": self.step,
            "config": self.resolved_config,
            "models": sorted(self.models),
            "ema_models": sorted(self.emas),
            "extra": {"num_processes": self.accelerator.num_processes},
        }
        save_training_checkpoint(
            final_dir,
            accelerator=self.accelerator,
            models=self._unwrapped,
            emas=self.emas,
            training_state=training_state,
            meta=meta,
            keep_last_n=self.trainer_config.keep_last_n,
        )
        logger.info("saved %s", final_dir)
        self._last_checkpoint = final_dir
        return final_dir

    def load_checkpoint(self, path: Path | str, *, verify_checksums: bool = True) -> None:
        """Restore models, EMAs, optimizers, schedulers, grad scaler, data position, step and this process's RNG
        state from a training checkpoint."""
        path = Path(path)
        loaded = load_training_checkpoint(
            path,
            models=self._unwrapped,
            emas=self.emas,
            process_index=self.accelerator.process_index,
            verify_checksums=verify_checksums,
        )
        state = loaded.training_state
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.lr_schedulers.items():
            scheduler.load_state_dict(state["lr_schedulers"][name])
        if self._grad_scaler is not None and state["grad_scaler"] is not None:
            self._grad_scaler.load_state_dict(state["grad_scaler"])
        self.step = state["step"]
        self._train_loader.restore(*state["data_position"], state["global_batch_size"])
        saved_processes = loaded.meta.get("extra", {}).get("num_processes")
        if saved_processes != self.accelerator.num_processes:
            logger.warning(
                "%s was written by %s processes, this run has %d: data order and random streams differ from the "
                "original run from here on",
                path,
                saved_processes,
                self.accelerator.num_processes,
            )
        if loaded.rng_state is not None:
            restore_rng_state(loaded.rng_state)
        self._warn_config_changes(loaded.meta["config"], path)
        self._last_checkpoint = path
        logger.info("resumed from %s (step %d)", path, self.step)

    def _warn_config_changes(self, saved_config: dict, path: Path) -> None:
        changed = _changed_keys(saved_config, self.resolved_config)
        if changed:
            logger.warning("config differs from %s at: %s", path, ", ".join(changed))

    def _prepare_run(self, resume: bool) -> None:
        """Pick up a checkpoint (or refuse to overwrite one), write config.json, open TensorBoard."""
        existing = list_checkpoints(self.checkpoints_dir)
        if resume:
            latest = [None]
            if self.is_main_process:
                found = latest_valid_checkpoint(self.checkpoints_dir)
                latest = [None if found is None else str(found)]
            latest = broadcast_object_list(latest)
            if latest[0] is not None:
                self.load_checkpoint(latest[0], verify_checksums=False)
            elif existing:
                raise CheckpointError(
                    f"{self.checkpoints_dir}: none of the {len(existing)} checkpoints is valid; move them away to "
                    f"start over"
                )
            else:
                logger.warning("nothing to resume in %s: starting from step 0", self.checkpoints_dir)
        elif existing:
            raise FileExistsError(
                f"{self.checkpoints_dir} already holds checkpoints (latest {existing[-1][1].name}): resume the run "
                f"(--resume) or use a new experiment folder"
            )
        if self.is_main_process:
            write_json_atomic(self.exp_dir / "config.json", self.resolved_config)
        self.writer = ExperimentWriter(self.exp_dir / "logs", enabled=self.is_main_process)

    # ------------------------------------------------------------------------------------ construction

    def _build_accelerator(self) -> Accelerator:
        config = self.trainer_config
        # Launchers (accelerate launch --multi_gpu, torchrun) announce the process count in WORLD_SIZE. Without
        # CUDA, accelerate would silently run that many independent single-process trainings unless told to use
        # the CPU, so a multi-process launch on a CPU-only machine selects DDP over gloo on the CPU.
        launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
        mixed_precision = config.mixed_precision
        if mixed_precision == "auto":
            mixed_precision = auto_training_precision()
            logger.info("trainer.mixed_precision auto: %s", mixed_precision)
        accelerator = Accelerator(
            cpu=launched_processes > 1 and not torch.cuda.is_available(),
            mixed_precision=mixed_precision,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)],
        )
        if accelerator.num_processes != launched_processes:
            raise RuntimeError(
                f"launched as {launched_processes} processes but accelerate set up {accelerator.num_processes}; "
                f"check the accelerate config (distributed type {accelerator.distributed_type})"
            )
        if accelerator.distributed_type in _UNSUPPORTED_BACKENDS:
            raise NotImplementedError(f"the trainer runs DDP only, not {accelerator.distributed_type}")
        if config.mixed_precision == "fp16" and accelerator.scaler is None:
            raise ValueError(f"trainer.mixed_precision 'fp16' needs a GPU; on {accelerator.device} use 'bf16' or 'no'")
        return accelerator

    def _build_emas(self) -> dict[str, ExponentialMovingAverage]:
        config = self.trainer_config.ema
        if not config.enabled:
            return {}
        names = config.models or sorted(self._unwrapped)
        unknown = sorted(set(names) - set(self._unwrapped))
        if unknown:
            raise ValueError(f"trainer.ema.models names {unknown}; the models are {sorted(self._unwrapped)}")
        return {
            name: ExponentialMovingAverage(
                self._unwrapped[name], decay=config.decay, start_step=config.start_step, warmup=config.warmup
            )
            for name in names
        }

    def _require_train_step(self, helper: str) -> None:
        if not self._in_train_step:
            raise RuntimeError(f"{helper} may only be called inside train_step")

    def _raise_if_not_finite(self, values: dict[str, Any], kind: str) -> None:
        """Raise NonFiniteLossError on every process if any value is NaN/inf on any process."""
        bad = [key for key, value in values.items() if not bool(torch.isfinite(torch.as_tensor(value)).all())]
        bad_anywhere = bool(bad)
        if self.accelerator.num_processes > 1:
            flag = torch.tensor([float(bool(bad))], device=self.device)
            bad_anywhere = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        if not bad_anywhere:
            return
        if bad:
            described = ", ".join(f"{key}={float(torch.as_tensor(values[key]).float().mean())}" for key in bad)
            message = f"non-finite {kind} {described} at step {self.step}"
        else:
            message = f"a non-finite {kind} on another process at step {self.step}"
        raise NonFiniteLossError(f"{type(self).__name__}: {message}; {self._stop_message()}")

    def _stop_message(self) -> str:
        latest = self._last_checkpoint.name if self._last_checkpoint else "none yet"
        return f"training stopped without saving this state (latest checkpoint: {latest})"


class _MetricWindow:
    """Sums of per-step metrics between two log lines (keys may appear mid-window, e.g. a discriminator)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.steps = 0
        self.seconds = 0.0

    def add(self, metrics: dict[str, float], seconds: float) -> None:
        for key, value in metrics.items():
            self.sums[key] += value
            self.counts[key] += 1
        self.steps += 1
        self.seconds += seconds


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in sorted(set(old) | set(new)):
            changed += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return changed
    return [] if old == new else [prefix.rstrip(".")]
