"""Stage-2 (latent diffusion UNet) training speed and peak memory on the CPU: fp32 against bf16 autocast, with and
without gradient checkpointing, for the built-in debug UNet, the main job's (quickstart) UNet and the full-size
AudioLDM 2 base UNet.

    python benchmarks/bench_ldm_train.py [--sizes builtin,quickstart,full] [--steps 2] [--warmup 1] [--threads 1]
        [--output benchmarks/results/ldm_train.txt]

Run with OMP_WAIT_POLICY=PASSIVE in the environment on a shared machine.

One training step is what `AudioLDMTrainer.train_step` does with the UNet: `Denoiser.loss` (noising, the UNet
forward, the masked MSE) on random scaled latents and random text states, the backward pass and an AdamW update
(under `torch.autocast("cpu", dtype=torch.bfloat16)` for bf16, the optimizer and weights in fp32, as accelerate's
bf16 mixed precision does). The frozen VAE encoder and text encoder are left out: they run without gradients and
their cost does not depend on these options (the VAE's is in bench_vae_train.py).
  builtin     egs/tta/audioldm/exp_config_debug.json's UNet (2.0 M parameters), its batch 8 of 256-frame segments
              (latent 8 x 64 x 16), MiniLM-width states (8, 32, 384)
  quickstart  the main job's stage 2, egs/tta/quickstart/audioldm.json (7.3 M parameters), its batch 4 of whole
              5 s clips (latent 8 x 128 x 16), MiniLM-width states (4, 48, 384)
  full        AudioLDM 2 base UNet (346.9 M parameters, [None, 768, 1024] cross-attentions), batch 2 of 10.24 s
              (latent 8 x 256 x 16), GPT-2 (2, 8, 768) and masked Flan-T5 (2, 20, 1024) states
Every configuration runs in its own process, so its peak resident memory (`ru_maxrss`, which includes the
process's baseline of torch and the model) is its own. Throughput is batch / the median time of the timed steps
after `--warmup` untimed ones; CPU time is reported too (robust when other processes share the cores).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from models.tta.audioldm.config import AudioLDMExperiment  # noqa: E402
from models.tta.audioldm.diffusion import Denoiser, NoiseScheduleConfig  # noqa: E402
from models.tta.audioldm.pipeline import build_unet  # noqa: E402
from models.tta.audioldm.unet import AudioLDMUNet  # noqa: E402
from utils.config import load_config  # noqa: E402

CONFIGS = {
    "builtin": REPO_ROOT / "egs" / "tta" / "audioldm" / "exp_config_debug.json",
    "quickstart": REPO_ROOT / "egs" / "tta" / "quickstart" / "audioldm.json",
}
FULL_UNET = dict(
    in_channels=8, out_channels=8, block_out_channels=(128, 256, 384, 640),
    attention_blocks=(False, True, True, True), cross_attention_dims=(None, 768, 1024), layers_per_block=2,
    num_attention_heads=8,
)
PRECISIONS = ("fp32", "bf16")


def build(size: str) -> tuple[Denoiser, int, tuple[int, ...], list[torch.Tensor], list[torch.Tensor | None]]:
    """The denoiser, batch size, latent shape (C, H, W), contexts and masks of one size."""
    torch.manual_seed(0)
    if size in CONFIGS:
        config: AudioLDMExperiment = load_config(CONFIGS[size], AudioLDMExperiment)
        text_width = next(dim for dim in config.unet.cross_attention_dims if dim is not None)
        unet = build_unet(config.unet, text_width=text_width)
        batch = config.trainer.batch_size
        factor = 2 ** (len(config.autoencoder.block_out_channels) - 1)  # the VAE halves T and F per block but one
        mel = config.preprocess.mel
        latent = (config.autoencoder.latent_channels, config.data.segment_frames // factor, mel.n_mels // factor)
        contexts = [torch.randn(batch, config.text_encoder.max_length, text_width)]
        masks = [torch.ones(batch, config.text_encoder.max_length, dtype=torch.bool)]
        schedule = config.diffusion.schedule
    else:
        unet = AudioLDMUNet(**FULL_UNET)
        batch, latent = 2, (8, 256, 16)
        t5_mask = torch.ones(batch, 20, dtype=torch.bool)
        t5_mask[0, 6:] = False
        contexts, masks = [torch.randn(batch, 8, 768), torch.randn(batch, 20, 1024)], [None, t5_mask]
        schedule = NoiseScheduleConfig()
    return Denoiser(unet=unet.train(), schedule=schedule), batch, latent, contexts, masks


def run_worker(size: str, precision: str, checkpointing: bool, steps: int, warmup: int) -> dict:
    """Train ``warmup + steps`` steps in this process; per-step wall/CPU seconds and peak memory."""
    denoiser, batch, latent, contexts, masks = build(size)
    denoiser.unet.use_gradient_checkpointing = checkpointing
    optimizer = torch.optim.AdamW(denoiser.unet.parameters(), lr=1e-4, weight_decay=0.01)
    dtype = torch.bfloat16 if precision == "bf16" else None
    walls, cpus = [], []
    for index in range(warmup + steps):
        latents = torch.randn(batch, *latent)
        timesteps = torch.randint(0, denoiser.num_train_timesteps, (batch,))
        started, cpu_started = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = denoiser.loss(latents, contexts, masks, timesteps=timesteps, noise=torch.randn_like(latents))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= warmup:
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu_started)
    return {
        "size": size,
        "precision": precision,
        "checkpointing": checkpointing,
        "batch": batch,
        "latent": latent,
        "parameters": sum(parameter.numel() for parameter in denoiser.unet.parameters()),
        "walls": walls,
        "cpus": cpus,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="builtin,full")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "ldm_train.txt")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = [size for size in args.sizes.split(",") if size not in (*CONFIGS, "full")]
    if unknown:
        parser.error(f"--sizes: unknown size(s) {unknown}; choose from {', '.join((*CONFIGS, 'full'))}")
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        size, precision, checkpointing = args.worker.split(":")
        print(json.dumps(run_worker(size, precision, checkpointing == "on", args.steps, args.warmup)))
        return

    lines = [
        "Stage-2 UNet training step on CPU (Denoiser.loss + backward + AdamW; VAE and text encoder excluded), median "
        f"of {args.steps} steps after {args.warmup} warm-up; one process per row.",
        f"    python benchmarks/bench_ldm_train.py --sizes {args.sizes} --steps {args.steps} --warmup {args.warmup} "
        f"--threads {args.threads}",
        f"machine: {describe_cpu()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}",
        "",
        f"{'size':<8} {'params':>8} {'batch':>5} {'latent':>12} {'precision':<9} {'ckpt':<4} {'samples/s':>9} "
        f"{'s/step':>7} {'CPU s/step':>10} {'peak RSS MB':>11}",
    ]
    for size in args.sizes.split(","):
        for precision in PRECISIONS:
            for checkpointing in ("off", "on"):
                command = [
                    sys.executable, __file__, "--worker", f"{size}:{precision}:{checkpointing}", "--steps",
                    str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                ]
                completed = subprocess.run(command, capture_output=True, text=True, check=True)
                result = json.loads(completed.stdout.strip().splitlines()[-1])
                wall, cpu = statistics.median(result["walls"]), statistics.median(result["cpus"])
                lines.append(
                    f"{size:<8} {result['parameters'] / 1e6:7.1f}M {result['batch']:>5} "
                    f"{'x'.join(map(str, result['latent'])):>12} {precision:<9} {checkpointing:<4} "
                    f"{result['batch'] / wall:9.3f} {wall:7.2f} {cpu:10.2f} {result['peak_rss_mb']:11.0f}"
                )
                print(lines[-1], flush=True)
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines.append(f"load average at the end {' '.join(f'{value:.1f}' for value in os.getloadavg())} (shared machine)")
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
