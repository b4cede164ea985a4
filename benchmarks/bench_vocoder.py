"""Vocoder inference speed on the CPU, as × real time (seconds of audio per second of wall clock), fp32 and bf16
autocast, for the full-size HiFi-GAN (AudioLDM 2's vocoder, config/hifigan.json), the small CPU one
(egs/tta/hifigan/exp_config_debug.json) and the CPU Vocos (egs/tta/hifigan/exp_config_vocos_cpu.json, the
quickstart's vocoder), with Griffin-Lim (32 iterations, librosa, float64) for reference.

    python benchmarks/bench_vocoder.py [--seconds 10] [--batch 1] [--threads 2] [--repeats 3]
        [--output benchmarks/results/vocoder.txt]

Random weights (speed does not depend on them), weight norm folded as at inference, a random log-mel of
`--seconds` (100 frames per second). The best of `--repeats` timings is reported with the CPU time it took and the
machine's load average, since the machine may be shared; "per CPU second" divides the audio by the process's CPU
time instead of the wall clock, which is what the work costs when the cores are not shared.
"""

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from benchmarks.timing import fastest, time_calls  # noqa: E402
from models.tta.hifigan.config import HifiGanExperiment, build_generator  # noqa: E402
from models.tta.vocoders import TrimmedVocoder, load_vocoder  # noqa: E402
from utils.config import load_config  # noqa: E402

CONFIGS = {
    "full": REPO_ROOT / "egs" / "tta" / "hifigan" / "exp_config.json",
    "small": REPO_ROOT / "egs" / "tta" / "hifigan" / "exp_config_debug.json",
    "vocos_cpu": REPO_ROOT / "egs" / "tta" / "hifigan" / "exp_config_vocos_cpu.json",
}


def _line(label: str, audio_seconds: float, wall: float, cpu: float) -> str:
    """Speed per wall second, and per CPU second (what an idle core would give; robust to a shared machine)."""
    return (f"  {label:<14} {audio_seconds / wall:8.1f} x real time wall   {audio_seconds / max(cpu, 1e-9):8.1f} x "
            f"real time per CPU second   ({wall * 1000:8.1f} ms wall, {cpu * 1000:8.1f} ms CPU)")


def bench_generator(name: str, mel: torch.Tensor, audio_seconds: float, repeats: int) -> list[str]:
    config: HifiGanExperiment = load_config(CONFIGS[name], HifiGanExperiment)
    torch.manual_seed(0)
    generator = build_generator(config.model, mel=config.preprocess.mel, use_weight_norm=False)
    vocoder = TrimmedVocoder(generator, sample_rate=config.preprocess.mel.sample_rate).eval().requires_grad_(False)
    parameters = sum(p.numel() for p in vocoder.parameters()) / 1e6
    model = config.model
    if model.generator == "vocos":
        described = (f"Vocos, dim {model.vocos.dim}, {model.vocos.num_layers} ConvNeXt layers, inverse STFT n_fft "
                     f"{model.vocos.n_fft}")
    else:
        described = (f"HiFi-GAN, initial channels {model.upsample_initial_channel}, rates {model.upsample_rates}, "
                     f"resblock kernels {model.resblock_kernel_sizes}")
    lines = [f"{name}: {parameters:.2f} M parameters, {described}"]
    for precision, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        def run() -> torch.Tensor:
            with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                return vocoder(mel)

        run()
        wall, cpu = fastest(time_calls(run, repeats))
        lines.append(_line(precision, audio_seconds, wall, cpu))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length per clip")
    parser.add_argument("--batch", type=int, default=1, help="clips per call")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="full,small,vocos_cpu", help="comma-separated: full, small, vocos_cpu")
    parser.add_argument("--no_griffin_lim", action="store_true", help="skip the Griffin-Lim reference")
    parser.add_argument("--output", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sizes.split(",")) - set(CONFIGS))
    if unknown:
        parser.error(f"--sizes: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    torch.set_num_threads(args.threads)
    frames = round(args.seconds * 100)
    audio_seconds = args.batch * frames / 100
    torch.manual_seed(0)
    mel = torch.randn(args.batch, frames, 64) - 5.0

    lines = [
        f"bench_vocoder.py — {datetime.now():%Y-%m-%d %H:%M}",
        f"machine: {describe_cpu()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"load average before {os.getloadavg()[0]:.1f}",
        f"input: {args.batch} x {args.seconds:g} s log-mel ({frames} frames), {args.threads} torch threads, "
        f"best of {args.repeats}",
        "",
    ]
    for name in args.sizes.split(","):
        lines += bench_generator(name, mel, audio_seconds, args.repeats) + [""]
    if not args.no_griffin_lim:
        config: HifiGanExperiment = load_config(CONFIGS["small"], HifiGanExperiment)
        griffin_lim = load_vocoder("griffin_lim", mel=config.preprocess.mel)
        wall, cpu = fastest(time_calls(lambda: griffin_lim(mel), args.repeats))
        lines += ["griffin_lim: 32 iterations, librosa (float64)", _line("fp64", audio_seconds, wall, cpu), ""]
    lines.append(f"load average after {os.getloadavg()[0]:.1f}")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
