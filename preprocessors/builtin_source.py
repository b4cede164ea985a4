"""The built-in dataset as a source: generate its raw clips (once), then read them as a captioned folder.

The generator (`preprocessors.builtin`) writes `<raw_dir>/wav/<Uid>.wav` and `<raw_dir>/captions.json` (records
with "Split", "Family", "Attributes", kept in the split files). It is deterministic and resumable, and refuses a
folder built with other rendering settings. The settings of the last completed build are kept in
`<raw_dir>/build_settings.json`, so a re-run with the same ones reuses the raw clips without calling it.
"""

import json
from pathlib import Path

from preprocessors.builtin import FAMILIES, SPLIT_RULE, build_builtin_dataset
from preprocessors.common import SourceListing
from preprocessors.config import PreprocessConfig
from preprocessors.folder import read_captioned_folder
from utils.config import ConfigError

BUILD_SETTINGS_FILE = "build_settings.json"
CAPTIONS_FILE = "captions.json"


def builtin_raw_dir(config: PreprocessConfig) -> Path:
    """Where the raw built-in clips live: `preprocess.builtin.raw_dir`, default `<processed_dir>/<dataset>_raw`."""
    if config.builtin.raw_dir:
        return Path(config.builtin.raw_dir)
    return Path(config.processed_dir) / f"{config.dataset}_raw"


def builtin_families(config: PreprocessConfig) -> tuple[str, ...]:
    """The families to generate; an empty `preprocess.builtin.families` means all of them."""
    return tuple(config.builtin.families) or FAMILIES


def read_builtin(config: PreprocessConfig, *, show_progress: bool = False) -> SourceListing:
    """Generate the raw built-in set unless the last build had these settings, then list its clips.

    Raises ConfigError when the generator rejects the settings (e.g. `raw_dir` holds clips rendered with
    other ones).
    """
    raw_dir = builtin_raw_dir(config)
    settings = {
        "num_clips": config.builtin.num_clips,
        "clip_seconds": config.builtin.clip_seconds,
        "sample_rate": config.mel.sample_rate,
        "seed": config.builtin.seed,
        "families": list(builtin_families(config)),
        "valid_fraction": config.valid_fraction,
        "test_fraction": config.test_fraction,
        "split_rule": SPLIT_RULE,
    }
    captions_path = raw_dir / CAPTIONS_FILE
    settings_path = raw_dir / BUILD_SETTINGS_FILE
    recorded = json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.is_file() else None
    if not captions_path.is_file() or recorded != settings:
        settings_path.unlink(missing_ok=True)
        try:
            captions_path = Path(
                build_builtin_dataset(
                    output_dir=raw_dir,
                    num_clips=config.builtin.num_clips,
                    clip_seconds=config.builtin.clip_seconds,
                    sample_rate=config.mel.sample_rate,
                    seed=config.builtin.seed,
                    families=builtin_families(config),
                    valid_fraction=config.valid_fraction,
                    test_fraction=config.test_fraction,
                    num_workers=config.num_workers,
                    show_progress=show_progress,
                )
            )
        except ValueError as error:
            raise ConfigError(f"preprocess.builtin: {error}") from error
        settings_path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return read_captioned_folder(
        captions_path.parent / "wav",
        captions_path,
        valid_fraction=config.valid_fraction,
        test_fraction=config.test_fraction,
        captions_key="preprocess.builtin.raw_dir",
    )
