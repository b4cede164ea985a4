"""What the stage-2 posterior cache (`data.latent_cache_mb`) saves per training step on the CPU: the frozen VAE's
encoder on one batch, against taking the same batch's posteriors from `PosteriorCache`, beside one UNet training
step (`Denoiser.loss`, backward, AdamW) of the same recipe.

    python benchmarks/bench_posterior_cache.py [--config egs/tta/quickstart/audioldm.json] [--steps 5]
        [--threads 2] [--output benchmarks/results/posterior_cache.txt]

Random weights at the recipe's sizes (VAE and UNet from the config), its batch of `data.segment_frames`-frame mels,
MiniLM-width text states; fp32, or bf16 autocast for the UNet step with --bf16 (the VAE runs in fp32 in the trainer
either way). Median of `--steps` timed repetitions after one warm-up. Run with OMP_WAIT_POLICY=PASSIVE on a
shared machine; the load average at the end is recorded.
"""

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from benchmarks.timing import median_time, time_calls  # noqa: E402
from models.tta.audioldm.config import AudioLDMExperiment  # noqa: E402
from models.tta.audioldm.diffusion import Denoiser  # noqa: E402
from models.tta.audioldm.pipeline import build_unet  # noqa: E402
from models.tta.audioldm.posterior_cache import PosteriorCache  # noqa: E402
from models.tta.autoencoderkl.config import AutoencoderKLModelConfig, build_autoencoder  # noqa: E402
from utils.config import load_config  # noqa: E402

TEXT_WIDTH = 384
TEXT_TOKENS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "egs" / "tta" / "quickstart" / "audioldm.json")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="run the UNet step under bf16 autocast")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "posterior_cache.txt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config: AudioLDMExperiment = load_config(args.config, AudioLDMExperiment)
    vae = build_autoencoder(AutoencoderKLModelConfig(**config.autoencoder.architecture())).eval()
    unet = build_unet(config.unet, text_width=TEXT_WIDTH)
    denoiser = Denoiser(unet=unet.train(), schedule=config.diffusion.schedule)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    batch = config.trainer.batch_size
    mel = torch.randn(batch, 1, config.data.segment_frames, config.preprocess.mel.n_mels)
    keys = [(f"clip{index}", 0) for index in range(batch)]
    contexts = [torch.randn(batch, TEXT_TOKENS, TEXT_WIDTH)]
    masks = [torch.ones(batch, TEXT_TOKENS, dtype=torch.bool)]
    cache = PosteriorCache(max_megabytes=1024)
    cache.encode(vae, mel, keys)
    with torch.no_grad():
        latents = vae.encode(mel).mode()

    def encode() -> None:
        with torch.no_grad():
            vae.encode(mel).mode()

    def from_cache() -> None:
        cache.encode(vae, mel, keys).mode()

    def unet_step() -> None:
        timesteps = torch.randint(0, denoiser.num_train_timesteps, (batch,))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = denoiser.loss(latents, contexts, masks, timesteps=timesteps, noise=torch.randn_like(latents))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    encode_s, cache_s, step_s = (
        median_time(time_calls(function, args.steps, warmup=1)).wall for function in (encode, from_cache, unet_step)
    )
    precision = "bf16 autocast" if args.bf16 else "fp32"
    lines = [
        f"Stage-2 posterior cache, {args.config.relative_to(REPO_ROOT)}: batch {batch} x {config.data.segment_frames} "
        f"frames, latent {tuple(latents.shape[1:])}, UNet step in {precision}; median of {args.steps} after 1 warm-up.",
        f"    python benchmarks/bench_posterior_cache.py --config {args.config.relative_to(REPO_ROOT)} "
        f"--steps {args.steps} --threads {args.threads}{' --bf16' if args.bf16 else ''}",
        f"machine: {describe_cpu()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} threads, load average at the end {os.getloadavg()[0]:.1f}",
        f"  VAE encoder on the batch          {encode_s:7.3f} s",
        f"  the same posteriors from the cache {cache_s:7.4f} s",
        f"  UNet training step                {step_s:7.3f} s",
        f"  a step with a cache hit takes {100 * (step_s + cache_s) / (step_s + encode_s):.0f} % of one that encodes "
        f"({(step_s + encode_s) / (step_s + cache_s):.2f}x the steps per second)",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
