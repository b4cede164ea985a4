"""Fixtures for AudioLDM 2 fine-tuning tests: the tiny AudioLDM 2 folder converted into our format, a few built-in
sound-effect clips preprocessed with the tiny model's 16 mel bins, and the real recipe config shrunk onto them."""

from pathlib import Path

from models.tta.audioldm2.convert import convert_audioldm2_folder
from preprocessors.config import load_preprocess_config
from preprocessors.pipeline import run_preprocess
from tests.fixtures.tiny_audioldm2 import MEL_BINS

REPO_ROOT = Path(__file__).resolve().parents[4]
RECIPE_CONFIG = REPO_ROOT / "egs" / "tta" / "audioldm2" / "exp_config.json"
PROMPT = "a dog barks"


def make_tiny_mel16_data(root: Path) -> Path:
    """10 built-in sound-effect clips of 2 s with 16-bin mels under `root/processed/builtin_sfx`; returns the
    processed dir."""
    processed = root / "processed"
    config_path = root / "preprocess.json"
    config_path.write_text(
        '{ preprocess: { processed_dir: "%s", dataset: "builtin_sfx", num_workers: 1, valid_fraction: 0.2,'
        " mel: { n_mels: %d }, builtin: { num_clips: 10, clip_seconds: 2.0, families: [\"sfx\"] } } }"
        % (processed.as_posix(), MEL_BINS),
        encoding="utf-8",
    )
    run_preprocess(load_preprocess_config(config_path))
    return processed


def convert_tiny_folder(folder: Path, root: Path) -> Path:
    return convert_audioldm2_folder(folder, root / "converted")


def shrink_overrides(processed_dir: Path, converted: Path, exp_root: Path) -> list[str]:
    """`--set` overrides turning the real recipe config into a seconds-long run on the tiny fixtures."""
    return [
        f"preprocess.processed_dir={processed_dir.as_posix()}",
        "preprocess.dataset=builtin_sfx",
        f"preprocess.mel.n_mels={MEL_BINS}",
        f"log_dir={exp_root.as_posix()}",
        f"pretrained.checkpoint={converted.as_posix()}",
        "data.segment_frames=32",
        "trainer.max_steps=2",
        "trainer.batch_size=2",
        "trainer.valid_batch_size=2",
        "trainer.valid_max_batches=1",
        "trainer.gradient_accumulation_steps=1",
        "trainer.num_workers=0",
        "trainer.log_every=1",
        "trainer.valid_every=2",
        "trainer.sample_every=2",
        "trainer.save_every=1",
        "trainer.optimizers.unet.learning_rate=1e-3",
        "trainer.optimizers.unet.warmup_steps=0",
        f"validation.prompts=['{PROMPT}']",
        "validation.num_inference_steps=2",
        "validation.audio_length_in_s=0.32",
    ]
