"""Train the shrunk VAE recipe under DDP and record what each process ends with:

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 \
        tests/models/tta/autoencoderkl/ddp_vae_run.py PROCESSED_DIR WORK_DIR

(On a CPU-only machine the shared trainer selects gloo DDP by itself.) Runs 4 steps of batch 2 per process with
the discriminator active from step 2, then writes WORK_DIR/state_rank<r>.json with sha256 digests of the VAE's
and the discriminator's parameters and optimizer states; test_ddp.py checks both processes agree. (Batch-norm
running statistics stay per process under DDP, as in every DDP GAN: the discriminator only ever runs in training
mode, where they are not used, and checkpoints hold rank 0's.)
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from tests.models.tta.autoencoderkl.tiny_recipe import make_trainer, tiny_config  # noqa: E402


def digest(tensors: dict) -> str:
    hasher = hashlib.sha256()
    for name in sorted(tensors, key=str):
        value = tensors[name]
        hasher.update(str(name).encode())
        if isinstance(value, dict):
            hasher.update(digest(value).encode())
        elif isinstance(value, torch.Tensor):
            hasher.update(value.detach().cpu().contiguous().numpy().tobytes())
        else:
            hasher.update(repr(value).encode())
    return hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("processed_dir", type=Path)
    parser.add_argument("work_dir", type=Path)
    args = parser.parse_args()
    config = tiny_config(
        args.processed_dir,
        args.work_dir,
        **{"trainer.batch_size": 2, "trainer.deterministic": True, "trainer.max_grad_norm": 1.0},
    )
    trainer = make_trainer(config, args.work_dir / "exp")
    trainer.train()
    report = {
        "step": trainer.step,
        "num_processes": trainer.accelerator.num_processes,
        "parameters": {name: digest(dict(trainer.unwrap(name).named_parameters())) for name in trainer.models},
        "optimizers": {name: digest(opt.state_dict()["state"]) for name, opt in trainer.optimizers.items()},
    }
    rank = trainer.accelerator.process_index
    (args.work_dir / f"state_rank{rank}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
