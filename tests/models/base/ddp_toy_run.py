"""Check the shared trainer under DDP: four toy-stage runs inside one `accelerate launch`.

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 tests/models/base/ddp_toy_run.py WORK_DIR

(On a CPU-only machine the trainer selects gloo DDP by itself; `accelerate launch --cpu` does not start several
processes without an MPI hostfile.) The phases: an uninterrupted run of K steps in WORK_DIR/uninterrupted; a run
in WORK_DIR/resumed that crashes after its checkpoint at step S; a fresh trainer that resumes it to K. Each
process writes WORK_DIR/state_rank<r>.json with sha256 digests of its weights, EMA and optimizer states after
the uninterrupted and the resumed run; test_trainer.py checks they agree across runs and processes. A last run
with SGD and without dropout (WORK_DIR/sgd_no_dropout) must match, up to rounding, one process with twice the
batch size.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.models.base.toy_stage import SGDToyStage, ToyExperimentConfig, ToyStage, make_toy, toy_config  # noqa: E402

MAX_STEPS = 6
SAVE_EVERY = 3


def digest(tensors: dict) -> str:
    hasher = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name]
        if isinstance(value, dict):
            hasher.update(f"{name}:{digest(value)}".encode())
        elif isinstance(value, torch.Tensor):
            hasher.update(name.encode())
            hasher.update(value.detach().cpu().contiguous().numpy().tobytes())
        else:
            hasher.update(f"{name}:{value!r}".encode())
    return hasher.hexdigest()


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict:
    state = optimizer.state_dict()["state"]
    return {f"{index}.{key}": value for index, entry in state.items() for key, value in entry.items()}


def ddp_config(*, batch_size: int = 4, **model_fields) -> ToyExperimentConfig:
    return toy_config(
        max_steps=MAX_STEPS,
        save_every=SAVE_EVERY,
        batch_size=batch_size,
        gradient_accumulation_steps=2,
        max_grad_norm=1.0,
        deterministic=True,
        model={"disc_start": 2, **model_fields},
    )


def run(
    exp_dir: Path,
    *,
    crash_at_step: int | None = None,
    resume: bool = False,
    dropout: float = 0.1,
    stage: type[ToyStage] = ToyStage,
) -> ToyStage:
    trainer = make_toy(exp_dir, ddp_config(crash_at_step=crash_at_step, dropout=dropout), stage=stage)
    trainer.train(resume=resume)
    return trainer


def summary(trainer: ToyStage) -> dict:
    return {
        "step": trainer.step,
        "num_processes": trainer.accelerator.num_processes,
        "weights": {name: digest(trainer.unwrap(name).state_dict()) for name in trainer.models},
        "ema": {name: digest(ema.state_dict()) for name, ema in trainer.emas.items()},
        "optimizers": {name: digest(optimizer_tensors(opt)) for name, opt in trainer.optimizers.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir", type=Path)
    work_dir = parser.parse_args().work_dir
    uninterrupted = run(work_dir / "uninterrupted")
    try:
        run(work_dir / "resumed", crash_at_step=SAVE_EVERY + 1)
    except RuntimeError as error:
        if "simulated crash" not in str(error):
            raise
    resumed = run(work_dir / "resumed", resume=True)
    run(work_dir / "sgd_no_dropout", dropout=0.0, stage=SGDToyStage)
    report = {"uninterrupted": summary(uninterrupted), "resumed": summary(resumed)}
    (work_dir / f"state_rank{uninterrupted.accelerator.process_index}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
