"""Training speed and peak memory of the full-size stage-1 VAE (config/autoencoderkl.json: AudioLDM 2's VAE and
PatchGAN) on 10.24 s crops (1024 frames x 64 mels), fp32 against bf16 autocast.

    python benchmarks/bench_vae_train.py [--batch_size 2] [--steps 3] [--warmup 1] \
        [--output benchmarks/results/vae_train.txt]

Each precision runs in its own process (so its peak resident memory, `ru_maxrss`, is its own) through the real
stage: `AutoencoderKLTrainer` on the shared trainer, with the discriminator active from the first step (the
GAN phase, the slower one: three discriminator passes and the adaptive weight's two extra gradients per step).
The data is a temporary processed dataset of random log-mels. Throughput is batch_size / the median time of the
timed train steps, after `--warmup` untimed ones. The load average is printed: the machine may be shared.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402  (after the repo root is on sys.path)
import torch  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from models.tta.autoencoderkl.config import AutoencoderKLExperiment  # noqa: E402
from models.tta.autoencoderkl.trainer import AutoencoderKLTrainer  # noqa: E402
from utils.config import config_to_dict, load_config  # noqa: E402

FULL_CONFIG = REPO_ROOT / "config/autoencoderkl.json"
FRAMES = 1024
N_MELS = 64
PRECISIONS = ("no", "bf16")


class TimedTrainer(AutoencoderKLTrainer):
    """The stage, recording the wall time of every train step."""

    def __init__(self, config: AutoencoderKLExperiment, exp_dir: Path, resolved_config: dict):
        self._step_seconds: list[float] = []
        super().__init__(config, exp_dir, resolved_config)

    def train_step(self, batch, step):
        started = time.perf_counter()
        metrics = super().train_step(batch, step)
        self._step_seconds.append(time.perf_counter() - started)
        return metrics


def write_random_dataset(processed_dir: Path, num_clips: int) -> None:
    """`num_clips` random 1024-frame log-mels in the processed layout, all in the train split."""
    rng = np.random.default_rng(0)
    mel_dir = processed_dir / "bench" / "mel"
    mel_dir.mkdir(parents=True)
    items = []
    for index in range(num_clips):
        uid = f"clip_{index:03d}"
        np.save(mel_dir / f"{uid}.npy", rng.normal(-6.0, 2.0, size=(N_MELS, FRAMES)).astype(np.float32))
        items.append({"Dataset": "bench", "Uid": uid, "Caption": "noise"})
    (processed_dir / "bench" / "train.json").write_text(json.dumps(items))


def run_worker(precision: str, batch_size: int, steps: int, warmup: int) -> dict:
    """Train `warmup + steps` steps in this process; timings and peak memory as a dict."""
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        write_random_dataset(work / "processed", num_clips=batch_size * (warmup + steps))
        overrides = [
            f"preprocess.processed_dir={work / 'processed'}",
            "preprocess.dataset=bench",
            "data.valid_split=null",
            f"log_dir={work}",
            f"trainer.batch_size={batch_size}",
            f"trainer.max_steps={warmup + steps}",
            f"trainer.mixed_precision={precision}",
            "trainer.save_every=0",
            "trainer.sample_every=0",
            "trainer.valid_every=0",
            "loss.disc_start_step=0",
        ]
        config = load_config(FULL_CONFIG, AutoencoderKLExperiment, overrides)
        trainer = TimedTrainer(config, work / "exp", config_to_dict(config))
        trainer.train()
        timed = trainer._step_seconds[warmup:]
        parameters = {name: sum(p.numel() for p in trainer.unwrap(name).parameters()) for name in trainer.models}
    median = statistics.median(timed)
    return {
        "precision": precision,
        "batch_size": batch_size,
        "step_seconds": timed,
        "samples_per_second": batch_size / median,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": parameters,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per precision")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks/results/vae_train.txt")
    parser.add_argument("--worker", choices=PRECISIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(run_worker(args.worker, args.batch_size, args.steps, args.warmup)))
        return

    results = []
    for precision in PRECISIONS:
        command = [sys.executable, __file__, "--worker", precision, "--batch_size", str(args.batch_size),
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
        print(f"{precision}: {results[-1]['samples_per_second']:.3f} samples/s", file=sys.stderr)

    parameters = results[0]["parameters"]
    lines = [
        "Stage-1 VAE training on CPU: full-size config (config/autoencoderkl.json), 1024 frames x 64 mels,",
        f"batch {args.batch_size}, discriminator active (GAN phase); median of {args.steps} steps after "
        f"{args.warmup} warm-up step(s).",
        f"    python benchmarks/bench_vae_train.py --batch_size {args.batch_size} --steps {args.steps} "
        f"--warmup {args.warmup}",
        f"machine: {describe_cpu()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{results[0]['threads']} threads; load average at the end {os.getloadavg()[0]:.1f} (shared machine)",
        f"parameters: vae {parameters['vae'] / 1e6:.1f} M, discriminator {parameters['discriminator'] / 1e6:.2f} M",
        "",
        f"{'precision':<10} {'samples/s':>10} {'s/step (median)':>16} {'peak RSS (MB)':>14}   steps (s)",
    ]
    for result in results:
        seconds = statistics.median(result["step_seconds"])
        steps = ", ".join(f"{value:.1f}" for value in result["step_seconds"])
        name = "fp32" if result["precision"] == "no" else "bf16"
        throughput, memory = result["samples_per_second"], result["peak_rss_mb"]
        lines.append(f"{name:<10} {throughput:>10.3f} {seconds:>16.1f} {memory:>14.0f}   {steps}")
    speedup = results[1]["samples_per_second"] / results[0]["samples_per_second"]
    lines.append(f"\nbf16 autocast / fp32 throughput: {speedup:.2f}x")
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
