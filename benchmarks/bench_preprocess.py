"""Preprocessing speed: mel extraction alone, and the whole stage on generated clips with 1 and 2 workers.

    python benchmarks/bench_preprocess.py [--clips 300] [--output benchmarks/results/preprocess.txt]

1. Mel extraction (`utils.audio` front end, torch on `--threads` threads) on 10 s clips at 16 kHz: one clip at a
   time (`compute_log_mel`) and in batches of `--batch`; clips per second and times real time.
2. `run_preprocess` on a folder of `--clips` generated 10 s clips (44.1 kHz mono 16-bit wav, so decoding and
   resampling are included, as for downloaded AudioCaps) with 1 and 2 workers, then a re-run where every clip
   is already done (the resume check alone). Wall times include starting the worker processes (the first
   2-worker run also starts the forkserver, which imports torch and librosa once); the best of `--repeats` runs
   is shown with every run's time, since the machine may be shared (the load average is printed).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402  (after the repo root is on sys.path)
import soundfile  # noqa: E402
import torch  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from benchmarks.timing import fastest, time_calls  # noqa: E402
from preprocessors.config import PreprocessConfig, SourceConfig  # noqa: E402
from preprocessors.pipeline import run_preprocess  # noqa: E402
from utils.audio import MelConfig, build_log_mel, compute_log_mel  # noqa: E402

CLIP_SECONDS = 10.0
SOURCE_RATE = 44100


def generated_clip(rng: np.random.Generator, sample_rate: int, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """A 10 s clip with some spectral content: a gliding tone plus noise bursts, (S,) float32."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = rng.uniform(100, 2000) * np.exp(rng.uniform(-0.1, 0.1) * t)
    tone = 0.2 * np.sin(2 * np.pi * np.cumsum(f0) / sample_rate)
    bursts = (np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t) > 0.7) * rng.standard_normal(t.size) * 0.05
    return (tone + bursts).astype(np.float32)


def bench_mel(num_clips: int, batch: int, repeats: int) -> list[str]:
    rng = np.random.default_rng(0)
    clips = np.stack([generated_clip(rng, 16000) for _ in range(num_clips)])
    front_end = build_log_mel(MelConfig())
    compute_log_mel(clips[0], front_end)  # warm-up

    per_clip = fastest(time_calls(lambda: [compute_log_mel(clip, front_end) for clip in clips], repeats))

    def batched():
        with torch.no_grad():
            for start in range(0, num_clips, batch):
                front_end(torch.from_numpy(clips[start : start + batch]))

    batched_seconds = fastest(time_calls(batched, repeats))
    audio_seconds = num_clips * CLIP_SECONDS
    lines = [f"mel extraction, {num_clips} clips of {CLIP_SECONDS:.0f} s at 16 kHz, {torch.get_num_threads()} threads"]
    for name, (seconds, cpu_seconds) in (("per clip", per_clip), (f"batched x{batch}", batched_seconds)):
        lines.append(
            f"  {name:<12} {num_clips / seconds:8.1f} clips/s  {audio_seconds / seconds:8.0f} x real time  "
            f"({seconds * 1000 / num_clips:.1f} ms/clip wall, {cpu_seconds * 1000 / num_clips:.1f} ms/clip CPU)"
        )
    return lines


def bench_stage(workdir: Path, num_clips: int, repeats: int) -> list[str]:
    rng = np.random.default_rng(1)
    audio_dir = workdir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rows = ["file,caption,split"]
    for index in range(num_clips):
        soundfile.write(str(audio_dir / f"clip{index:04d}.wav"), generated_clip(rng, SOURCE_RATE), SOURCE_RATE)
        rows.append(f"clip{index:04d}.wav,generated clip {index},train")
    (workdir / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    source = SourceConfig(kind="folder", audio_dir=str(audio_dir), captions_file=str(workdir / "captions.csv"))
    audio_seconds = num_clips * CLIP_SECONDS
    lines = [
        f"preprocessing stage, {num_clips} clips of {CLIP_SECONDS:.0f} s, {SOURCE_RATE} Hz wav -> 16 kHz wav + mel"
    ]
    for workers in (1, 2):
        config = PreprocessConfig(
            processed_dir=str(workdir / f"out{workers}"),
            dataset="bench",
            source=source,
            num_workers=workers,
            overwrite=True,
        )

        summaries = []
        runs = time_calls(lambda: summaries.append(run_preprocess(config)), repeats)
        assert all(summary.processed == num_clips for summary in summaries), summaries
        seconds, cpu_seconds = fastest(runs)
        # With one worker the clips are processed in this process, so its CPU time is the cost of the work.
        cpu_note = f", {cpu_seconds * 1000 / num_clips:.0f} ms CPU/clip" if workers == 1 else ""
        lines.append(
            f"  {workers} worker{'s' if workers > 1 else ' '}    {seconds:7.1f} s  {num_clips / seconds:6.1f} clips/s  "
            f"{audio_seconds / seconds:6.0f} x real time   (runs: {', '.join(f'{run:.1f} s' for run, _ in runs)}"
            f"{cpu_note})"
        )
    config.overwrite = False
    started = time.perf_counter()
    summary = run_preprocess(config)
    seconds = time.perf_counter() - started
    assert summary.resumed == num_clips, summary
    lines.append(f"  re-run, all {num_clips} clips already done (2 workers): {seconds:.1f} s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300, help="generated clips for the stage benchmark")
    parser.add_argument("--mel-clips", type=int, default=64, help="clips for the mel benchmark")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the batched mel benchmark")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the mel benchmark")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per measurement")
    parser.add_argument("--output", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    header = [
        "bench_preprocess.py — " + time.strftime("%Y-%m-%d %H:%M"),
        f"machine: {describe_cpu()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"load average before {os.getloadavg()[0]:.1f}",
    ]
    lines = header + [""] + bench_mel(args.mel_clips, args.batch, max(3, args.repeats)) + [""]
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as workdir:
        lines += bench_stage(Path(workdir), args.clips, args.repeats)
    lines += ["", f"load average after {os.getloadavg()[0]:.1f}"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
