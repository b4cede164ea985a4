"""End-to-end text-to-audio speed on the CPU: our AudioLDM 2 pipeline against diffusers', and a sampler sweep.

    python benchmarks/bench_end_to_end.py full [--threads 1] [--reference_steps 200] [--our_steps 25]
        [--folder exp/bench_e2e/audioldm2_full] [--output benchmarks/results/end_to_end.txt]
    python benchmarks/bench_end_to_end.py sweep [--threads 1] [--checkpoint exp/quickstart/audioldm]
        [--output benchmarks/results/end_to_end.txt]

Run with OMP_WAIT_POLICY=PASSIVE in the environment on a shared machine (spinning OpenMP threads make every
multi-threaded op many times slower once other processes take the cores).

`full`: one 10.24 s clip ("a dog barks") at full AudioLDM 2 base size: CLAP (RoBERTa-base text branch, HTSAT
audio branch), Flan-T5-large encoder, GPT-2 (12 x 768), projection model, the 346.9 M-parameter UNet, the VAE
(128/256/512) and the 55.3 M-parameter HiFi-GAN, all with random weights (speed does not depend on them) and the
small tokenizers of the test fixture (only their vocabularies are small: the CLAP text branch still pads to
512 tokens). The diffusers pipeline is built once and saved in the diffusers layout under `--folder`; diffusers'
`AudioLDM2Pipeline` and ours (`AudioLDM2Pipeline.from_pretrained_folder`) load the same files. Timed, one after the
other in one process, each a full `generate`/`__call__` (text encoders, GPT-2, sampling, VAE decode, vocoder):
  ours    DPM-Solver++ 25 steps (the recipe's inference default), fp32 and bf16 autocast
  diffusers  its defaults: DDIM 200 steps, fp32 (`--reference_steps` fewer only to save time: then the
          200-step time is extrapolated from the measured per-step and fixed costs, and labelled so)
Our pipeline with the reference's own settings (DDIM 200 fp32) is reported as fixed cost + 200 x our measured
per-step cost (labelled: extrapolated). Per-step costs come from hooks around each UNet call (overlapping calls,
our two guidance halves, count as one step; with OMP_WAIT_POLICY=PASSIVE our first step counts as two, since
`ConcurrentGuidance` runs its halves one after the other as a warm-up, hence 26 "steps" for 25); the fixed cost
is the rest of the call (encoders, scheduler set-up, VAE decode, vocoder).

`sweep`: the trained built-in model (`--checkpoint`, 5 s clips, three prompts in one batch, guidance 3.5, seed
0): DPM-Solver++, UniPC and DDIM at 10-50 steps against 200-step DDIM: sampling time, and the distance of the
scaled latents and of the decoded log-mels to the 200-step DDIM result (RMS difference, and relative to the RMS
of the 200-step result), so the default is the fastest setting that stays close to it; the default and DDIM 200
again under bf16 autocast measure what bf16 itself moves.

Results go to `--output`: each part rewrites its own section and keeps the other's.
"""

import argparse
import functools
import gc
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from diffusers import AudioLDM2Pipeline as DiffusersAudioLDM2Pipeline  # noqa: E402
from diffusers import AutoencoderKL as DiffusersAutoencoderKL  # noqa: E402
from diffusers.pipelines.audioldm2.modeling_audioldm2 import (  # noqa: E402
    AudioLDM2ProjectionModel,
    AudioLDM2UNet2DConditionModel,
)
from diffusers.utils import logging as diffusers_logging  # noqa: E402
from transformers import (  # noqa: E402
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
    GPT2Config,
    GPT2Model,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
    T5Config,
    T5EncoderModel,
)
from transformers.utils import logging as transformers_logging  # noqa: E402

from benchmarks.machine import describe_cpu  # noqa: E402
from models.tta.audioldm.diffusion import build_scheduler  # noqa: E402
from models.tta.audioldm.pipeline import AudioLDMPipeline  # noqa: E402
from models.tta.audioldm.sampling import sample_latents  # noqa: E402
from models.tta.audioldm.text_states import encode_texts, pad_to_length  # noqa: E402
from models.tta.audioldm2.pipeline import AudioLDM2Pipeline  # noqa: E402
from tests.fixtures.tiny_audioldm2 import (  # noqa: E402
    _roberta_tokenizer,
    _t5_tokenizer,
    load_reference_pipeline,
    reference_scheduler,
)

PROMPT = "a dog barks"
SECONDS = 10.24
REFERENCE_STEPS = 200
OUR_SCHEDULER, OUR_STEPS = "dpmsolver++", 25
SWEEP_PROMPTS = ["Three short high beeps", "A dog barks", "Slow low piano chords"]
SWEEP_SECONDS = 5.0
SWEEP_SCHEDULERS = ("dpmsolver++", "unipc", "ddim")
SWEEP_STEPS = (10, 15, 20, 25, 50)
# Also run under bf16 autocast (the inference default on CPUs with bf16 units), against the same fp32 DDIM 200
# reference.
BF16_SWEEP = (("dpmsolver++", 25), ("unipc", 20), ("ddim", 200))
GUIDANCE = 3.5
SECTION_MARKERS = {"full": "## Full-size AudioLDM 2, one 10.24 s clip", "sweep": "## Sampler sweep, built-in model"}


def build_full_size_folder(folder: Path) -> None:
    """A randomly initialised AudioLDM 2 base pipeline at the public checkpoint's sizes, saved at ``folder``."""
    tokenizer = _roberta_tokenizer()
    tokenizer.model_max_length = 512
    tokenizer_2 = _t5_tokenizer()
    builders = {
        "text_encoder": lambda: ClapModel(ClapConfig(
            text_config=ClapTextConfig(vocab_size=len(tokenizer), projection_dim=512, layer_norm_eps=1e-5).to_dict(),
            audio_config=ClapAudioConfig(projection_dim=512).to_dict(), projection_dim=512,
        )),
        "text_encoder_2": lambda: T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_2), d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_heads=16,
            feed_forward_proj="gated-gelu", dropout_rate=0.0, is_encoder_decoder=False, use_cache=False,
        )),
        "projection_model": lambda: AudioLDM2ProjectionModel(
            text_encoder_dim=512, text_encoder_1_dim=1024, langauge_model_dim=768
        ),
        # A 32-token vocabulary: the pipeline feeds GPT-2 embeddings, never token ids (see the fixture).
        "language_model": lambda: GPT2Model(GPT2Config(
            vocab_size=32, bos_token_id=31, eos_token_id=31, max_new_tokens=8, n_positions=1024, n_embd=768,
            n_layer=12, n_head=12, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        )),
        "unet": lambda: AudioLDM2UNet2DConditionModel(
            sample_size=256, in_channels=8, out_channels=8, block_out_channels=(128, 256, 384, 640),
            layers_per_block=2, attention_head_dim=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=[[None, 768, 1024]] * 4,
        ),
        "vae": lambda: DiffusersAutoencoderKL(
            in_channels=1, out_channels=1, latent_channels=8, block_out_channels=(128, 256, 512), layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            norm_num_groups=32, sample_size=1024, scaling_factor=0.4110932946205139,
        ),
        "vocoder": lambda: SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024, upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5]] * 3, normalize_before=False,
        )),
    }
    components = {}
    for index, (name, build) in enumerate(builders.items()):
        torch.manual_seed(index)
        components[name] = build().eval()
    pipeline = DiffusersAudioLDM2Pipeline(
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, feature_extractor=ClapFeatureExtractor(),
        scheduler=reference_scheduler(), **components,
    )
    partial = folder.with_name(folder.name + ".partial")
    pipeline.save_pretrained(partial, safe_serialization=True)
    pipeline.tokenizer.backend_tokenizer.model.save(str(partial / "tokenizer"))
    partial.rename(folder)


class StepClock:
    """Wall and CPU time of every step of a module's calls (forward pre/post hooks), to split a run into steps and
    rest. Calls that overlap (the guidance halves our sampling loop runs in two threads) count as one step, from
    the first start to the last end."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.steps: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self.on_step = None
        self._running = 0
        self._started: tuple[float, float] | None = None
        self._lock = threading.Lock()
        module.register_forward_pre_hook(lambda *_: self._start())
        module.register_forward_hook(lambda *_: self._end())

    def _start(self) -> None:
        with self._lock:
            if self._running == 0:
                self._started = (time.perf_counter(), time.process_time())
            self._running += 1

    def _end(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running > 0:
                return
            self.steps.append((self._started, (time.perf_counter(), time.process_time())))
        if self.on_step is not None:
            self.on_step(self)

    def reset(self) -> None:
        self.steps.clear()

    def step_times(self, clock: int) -> list[float]:
        """Seconds per step: ``clock`` 0 for wall time, 1 for CPU time (this process, all threads)."""
        return [end[clock] - start[clock] for start, end in self.steps]


def timed_run(clock: StepClock, run) -> dict:
    """Run ``run()`` once; total wall/CPU seconds, per-step medians, and the fixed (non-UNet) part."""
    clock.reset()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = len(clock.steps)
    return dict(
        steps=steps,
        total_wall=total_wall,
        total_cpu=total_cpu,
        step_wall=statistics.median(clock.step_times(0)),
        step_cpu=statistics.median(clock.step_times(1)),
        fixed_wall=total_wall - sum(clock.step_times(0)),
        fixed_cpu=total_cpu - sum(clock.step_times(1)),
    )


def extrapolate(result: dict, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds of the same run with ``steps`` UNet calls: fixed cost + steps x median step."""
    return result["fixed_wall"] + steps * result["step_wall"], result["fixed_cpu"] + steps * result["step_cpu"]


def describe(name: str, result: dict) -> str:
    return (
        f"  {name:<44} {result['total_wall']:8.1f} s wall {result['total_cpu']:8.1f} s CPU  "
        f"({result['steps']} steps x {result['step_wall']:.2f} s wall / {result['step_cpu']:.2f} s CPU, "
        f"fixed {result['fixed_wall']:.1f} s wall / {result['fixed_cpu']:.1f} s CPU)"
    )


def header(args: argparse.Namespace) -> str:
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"torch {torch.__version__}, {describe_cpu()}, {args.threads} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average at the end {load}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def write_section(output: Path, part: str, lines: list[str]) -> None:
    """Rewrite ``part``'s section of ``output``, keeping the other part's section."""
    sections = {}
    if output.is_file():
        current = None
        for line in output.read_text(encoding="utf-8").splitlines():
            if line in SECTION_MARKERS.values():
                current = line
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
    sections[SECTION_MARKERS[part]] = lines
    text = []
    for marker in SECTION_MARKERS.values():
        if marker in sections:
            text += [marker, *sections[marker]]
            if text[-1] != "":
                text.append("")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(text), encoding="utf-8")


def run_full(args: argparse.Namespace) -> None:
    if not (args.folder / "model_index.json").is_file():
        print(f"building the full-size random pipeline in {args.folder}", flush=True)
        build_full_size_folder(args.folder)
    options = "".join(
        f" --{name} {value}" for name, value, default in (
            ("threads", args.threads, None), ("reference_steps", args.reference_steps, REFERENCE_STEPS),
            ("our_steps", args.our_steps, OUR_STEPS),
        ) if value != default
    )
    lines = [
        "Random weights at the public sizes; one 10.24 s clip, guidance 3.5, `python benchmarks/bench_end_to_end.py "
        f"full{options}`.",
    ]

    def report(extra: list[str] | None = None) -> None:
        write_section(args.output, "full", [*lines, *(extra or []), header(args), ""])
        print("\n".join([*lines, *(extra or [])][-3:]), flush=True)

    ours = AudioLDM2Pipeline.from_pretrained_folder(args.folder)
    our_clock = StepClock(ours.unet)
    results = {}
    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        name = f"ours {OUR_SCHEDULER} {args.our_steps} steps {precision}"
        results[name] = timed_run(our_clock, functools.partial(
            ours.generate, PROMPT, num_inference_steps=args.our_steps, scheduler=OUR_SCHEDULER,
            audio_length_in_s=SECONDS, generator=torch.Generator().manual_seed(0), autocast_dtype=dtype,
        ))
        lines.append(describe(name, results[name]))
        report()
    fp32 = results[f"ours {OUR_SCHEDULER} {args.our_steps} steps fp32"]
    our_reference_settings = extrapolate(fp32, REFERENCE_STEPS)
    lines.append(
        f"  {'ours DDIM 200 steps fp32 (EXTRAPOLATED)':<44} {our_reference_settings[0]:8.1f} s wall "
        f"{our_reference_settings[1]:8.1f} s CPU  (fixed + 200 x the fp32 step above)"
    )
    del ours
    gc.collect()

    reference = load_reference_pipeline(args.folder)
    reference.set_progress_bar_config(disable=True)
    reference_clock = StepClock(reference.unet)

    def progress(clock: StepClock) -> None:
        done = len(clock.steps)
        if done % 20 == 0 and done < args.reference_steps:
            times = clock.step_times(0)
            report([f"  (diffusers run in progress: {done} steps done, median {statistics.median(times):.2f} s wall)"])

    reference_clock.on_step = progress
    name = f"diffusers DDIM {args.reference_steps} steps fp32"
    reference_result = timed_run(reference_clock, lambda: reference(
        PROMPT, num_inference_steps=args.reference_steps, audio_length_in_s=SECONDS,
        generator=torch.Generator().manual_seed(0),
    ))
    lines.append(describe(name, reference_result))
    if args.reference_steps == REFERENCE_STEPS:
        reference_wall, reference_cpu = reference_result["total_wall"], reference_result["total_cpu"]
        label = "measured"
    else:
        reference_wall, reference_cpu = extrapolate(reference_result, REFERENCE_STEPS)
        label = f"EXTRAPOLATED from {args.reference_steps} measured steps"
        lines.append(f"  {'diffusers DDIM 200 steps fp32 (EXTRAPOLATED)':<44} {reference_wall:8.1f} s wall "
                     f"{reference_cpu:8.1f} s CPU")
    lines.append(f"Speed-up vs diffusers defaults (DDIM 200 fp32, {label}), by CPU time (wall time in brackets):")
    for name, result in results.items():
        cpu_ratio, wall_ratio = reference_cpu / result["total_cpu"], reference_wall / result["total_wall"]
        lines.append(f"  {name:<44} x{cpu_ratio:5.1f} (x{wall_ratio:.1f})")
    lines.append(
        f"  {'ours DDIM 200 steps fp32 (EXTRAPOLATED)':<44} x{reference_cpu / our_reference_settings[1]:5.2f} "
        f"(x{reference_wall / our_reference_settings[0]:.2f})"
    )
    lines.append(
        f"  UNet step alone, fp32: x{reference_result['step_cpu'] / fp32['step_cpu']:.2f} by CPU time "
        f"(x{reference_result['step_wall'] / fp32['step_wall']:.2f} wall)"
    )
    report()


def run_sweep(args: argparse.Namespace) -> None:
    pipeline = AudioLDMPipeline.from_checkpoint(args.checkpoint)
    denoiser, schedule = pipeline.denoiser, pipeline.schedule
    states, mask = encode_texts(pipeline.text_encoder, SWEEP_PROMPTS)
    negative_states, negative_mask = encode_texts(pipeline.text_encoder, [""])
    length = max(states.shape[1], negative_states.shape[1])
    states, mask = pad_to_length(states, mask, length)
    negative_states, negative_mask = pad_to_length(negative_states, negative_mask, length)
    count = len(SWEEP_PROMPTS)
    contexts = [torch.cat([negative_states.expand(count, -1, -1), states])]
    masks = [torch.cat([negative_mask.expand(count, -1), mask])]
    factor = pipeline.autoencoder.downsample_factor
    shape = (count, pipeline.autoencoder.latent_channels, pipeline.latent_frames(SWEEP_SECONDS),
             pipeline.mel.n_mels // factor)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def sample(scheduler: str, steps: int, autocast_dtype: torch.dtype | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        latents = sample_latents(
            denoiser, build_scheduler(scheduler, schedule), shape=shape, contexts=contexts, context_masks=masks,
            guidance_scale=GUIDANCE, num_inference_steps=steps, latents=noise, show_progress=False,
            autocast_dtype=autocast_dtype,
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        with torch.no_grad():
            mels = pipeline.autoencoder.decode(latents / pipeline.scale_factor)
        return latents, mels, wall, cpu

    reference_latents, reference_mels, reference_wall, reference_cpu = sample("ddim", REFERENCE_STEPS)
    latent_rms = reference_latents.pow(2).mean().sqrt().item()
    mel_rms = (reference_mels - reference_mels.mean()).pow(2).mean().sqrt().item()
    lines = [
        f"{args.checkpoint} (UNet {sum(p.numel() for p in denoiser.parameters()) / 1e6:.1f} M parameters), "
        f"{len(SWEEP_PROMPTS)} prompts x {SWEEP_SECONDS} s in one batch, guidance {GUIDANCE}, "
        "fp32 unless marked bf16 (autocast), seed 0; "
        f"`python benchmarks/bench_end_to_end.py sweep --threads {args.threads}`.",
        "Distance to DDIM 200: RMS of the difference of the scaled latents (relative: / RMS of the DDIM 200 "
        f"latents, {latent_rms:.3f}) and of the decoded log-mels (relative: / std of the DDIM 200 log-mels, "
        f"{mel_rms:.3f}).",
        f"  {'sampler':<16} {'steps':>5} {'wall s':>7} {'CPU s':>7} {'x DDIM200':>9}  {'latent RMS':>10} {'rel':>6}  "
        f"{'mel RMS':>8} {'rel':>6}",
        f"  {'ddim':<16} {REFERENCE_STEPS:>5} {reference_wall:7.1f} {reference_cpu:7.1f} {1.0:9.1f}  {0.0:10.4f} "
        f"{0.0:6.3f}  {0.0:8.4f} {0.0:6.3f}",
    ]
    runs = [(scheduler, steps, None) for scheduler in SWEEP_SCHEDULERS for steps in SWEEP_STEPS]
    runs += [(scheduler, steps, torch.bfloat16) for scheduler, steps in BF16_SWEEP]
    for scheduler, steps, autocast_dtype in runs:
        latents, mels, wall, cpu = sample(scheduler, steps, autocast_dtype)
        latent_distance = (latents - reference_latents).pow(2).mean().sqrt().item()
        mel_distance = (mels - reference_mels).pow(2).mean().sqrt().item()
        label = scheduler if autocast_dtype is None else f"{scheduler} bf16"
        lines.append(
            f"  {label:<16} {steps:>5} {wall:7.1f} {cpu:7.1f} {reference_cpu / cpu:9.1f}  "
            f"{latent_distance:10.4f} {latent_distance / latent_rms:6.3f}  {mel_distance:8.4f} "
            f"{mel_distance / mel_rms:6.3f}"
        )
        print(lines[-1], flush=True)
        write_section(args.output, "sweep", [*lines, header(args), ""])
    write_section(args.output, "sweep", [*lines, header(args), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=sorted(SECTION_MARKERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference_steps", type=int, default=REFERENCE_STEPS)
    parser.add_argument("--our_steps", type=int, default=OUR_STEPS, help="our sampler's steps (fewer: smoke test)")
    parser.add_argument("--folder", type=Path, default=REPO_ROOT / "exp" / "bench_e2e" / "audioldm2_full")
    parser.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "exp" / "quickstart" / "audioldm")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "end_to_end.txt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    if args.part == "full":
        run_full(args)
    else:
        run_sweep(args)


if __name__ == "__main__":
    main()
