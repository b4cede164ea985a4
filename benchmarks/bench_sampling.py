"""Stage-2 sampling speed on the CPU: seconds per guided sampling step and per 10 s clip, fp32 and bf16, for the
built-in debug UNet, the quickstart UNet and the full-size (AudioLDM, t5-base width) UNet.

    python benchmarks/bench_sampling.py [--steps 3] [--clip_steps 25] [--threads 2] [--sizes debug,quickstart,full]
        [--guidance default|compare] [--output benchmarks/results/sampling.txt]

Random weights (speed does not depend on them) and random text states of 20 tokens stand in for the trained
model and the text encoder. A "step" is one classifier-free-guided UNet call (batch 2: [negative, positive]) plus
the scheduler update on a 10 s latent (1000 mel frames -> 8 x 250 x 16); "per 10 s clip" is `--clip_steps`
DPM-Solver++ steps plus the VAE decode of the configured stage-1 architecture (random weights); the vocoder is
not included (Griffin-Lim / HiFi-GAN have their own benchmarks). The best of `--repeats` timings is reported
with the machine's load average, since the machine may be shared.

`--guidance compare` instead times, per size and precision, the guided step with the two halves batched in one
UNet call and in two threads (`ConcurrentGuidance`, whatever OMP_WAIT_POLICY says), alternated over `--repeats`
rounds, and reports the median of the per-round ratios batched / two threads.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from benchmarks.timing import fastest, time_calls  # noqa: E402
from models.tta.audioldm.config import AudioLDMExperiment  # noqa: E402
from models.tta.audioldm.diffusion import Denoiser, build_scheduler  # noqa: E402
from models.tta.audioldm.pipeline import build_unet  # noqa: E402
from models.tta.audioldm.sampling import sample_latents  # noqa: E402
from models.tta.autoencoderkl.model import AutoencoderKL  # noqa: E402
from utils.config import load_config  # noqa: E402

CONFIGS = {
    "debug": REPO_ROOT / "egs" / "tta" / "audioldm" / "exp_config_debug.json",
    "quickstart": REPO_ROOT / "egs" / "tta" / "quickstart" / "audioldm.json",
    "full": REPO_ROOT / "config" / "audioldm.json",
}
CLIP_SECONDS = 10.0
TEXT_TOKENS = 20


def bench_size(name: str, args: argparse.Namespace) -> list[str]:
    config: AudioLDMExperiment = load_config(CONFIGS[name], AudioLDMExperiment)
    text_width = next(dim for dim in config.unet.cross_attention_dims if dim is not None)
    torch.manual_seed(0)
    unet = build_unet(config.unet, text_width=text_width).eval()
    denoiser = Denoiser(unet=unet, schedule=config.diffusion.schedule).requires_grad_(False)
    vae = AutoencoderKL(**config.autoencoder.architecture()).eval().requires_grad_(False)
    factor = vae.downsample_factor
    frames = round(CLIP_SECONDS * config.preprocess.mel.sample_rate / config.preprocess.mel.hop_length)
    shape = (1, vae.latent_channels, -(-frames // factor), config.preprocess.mel.n_mels // factor)
    contexts = [torch.randn(2, TEXT_TOKENS, text_width)]
    masks = [torch.ones(2, TEXT_TOKENS, dtype=torch.bool)]
    parameters = sum(p.numel() for p in unet.parameters()) / 1e6
    lines = [f"{name}: UNet {list(config.unet.block_out_channels)}, {parameters:.1f} M parameters, text width "
             f"{text_width}, latent {tuple(shape[1:])}, VAE {list(config.autoencoder.block_out_channels)}"]

    def sample(steps: int, dtype: torch.dtype | None, concurrent_guidance: bool | None = None) -> torch.Tensor:
        return sample_latents(
            denoiser, build_scheduler("dpmsolver++", config.diffusion.schedule), shape=shape, contexts=contexts,
            context_masks=masks, guidance_scale=3.0, num_inference_steps=steps,
            generator=torch.Generator().manual_seed(0), autocast_dtype=dtype, show_progress=False,
            concurrent_guidance=concurrent_guidance,
        )

    if args.guidance == "compare":
        lines[0] += f"; layers shared by the halves: {'yes' if unet.trunk_block is not None else 'none'}"
        for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            with torch.no_grad():
                sample(1, dtype, False)
                sample(1, dtype, True)
                rounds = [
                    [time_calls(lambda: sample(args.steps, dtype, concurrent), 1)[0].wall / args.steps
                     for concurrent in (False, True)]
                    for _ in range(args.repeats)
                ]
            batched, threads = (statistics.median(column) for column in zip(*rounds))
            ratio = statistics.median(b / c for b, c in rounds)
            lines.append(f"  {precision}: {batched:.3f} s per guided step batched, {threads:.3f} s in two threads "
                         f"(medians of {args.repeats} alternated rounds): batched / two threads x{ratio:.3f}")
        return lines

    with torch.no_grad():
        latents = sample(1, None)
        decode = fastest(time_calls(lambda: vae.decode(latents), args.repeats)).wall
    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        with torch.no_grad():
            sample(1, dtype)
            total = fastest(time_calls(lambda: sample(args.steps, dtype), args.repeats)).wall
        per_step = total / args.steps
        per_clip = per_step * args.clip_steps + decode
        lines.append(f"  {precision}: {per_step:.3f} s per guided step; {per_clip:.1f} s per 10 s clip "
                     f"({args.clip_steps} steps + VAE decode {decode:.2f} s fp32)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--clip_steps", type=int, default=25, help="sampling steps of one clip")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="debug,full")
    parser.add_argument("--guidance", choices=("default", "compare"), default="default",
                        help="compare: time batched against two-thread guidance")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header = [
        f"bench_sampling: torch {torch.__version__}, {describe_cpu()}, "
        f"{args.threads} threads, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}",
    ]
    lines = header
    for name in args.sizes.split(","):
        lines += bench_size(name, args)
        print("\n".join(lines[-3:]), flush=True)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
