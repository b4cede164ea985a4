"""The preprocessing stage: read the configured source, then write the common layout (see common.py)."""

from preprocessors.amphion_layout import read_amphion_layout
from preprocessors.audiocaps import read_audiocaps
from preprocessors.builtin_source import read_builtin
from preprocessors.common import PreprocessSummary, SourceListing, write_processed_dataset
from preprocessors.config import PreprocessConfig
from preprocessors.folder import read_folder


def list_source(config: PreprocessConfig, *, show_progress: bool = False) -> SourceListing:
    """The clips of `preprocess.source` (generating the built-in set first when that is the source)."""
    kind = config.source.kind
    if kind == "audiocaps":
        return read_audiocaps(config.source)
    if kind == "amphion":
        return read_amphion_layout(config.source)
    if kind == "folder":
        return read_folder(
            config.source, valid_fraction=config.valid_fraction, test_fraction=config.test_fraction
        )
    return read_builtin(config, show_progress=show_progress)


def run_preprocess(config: PreprocessConfig, *, show_progress: bool = False) -> PreprocessSummary:
    """Preprocess one dataset into `<processed_dir>/<dataset>/`; raises ConfigError for unusable inputs."""
    listing = list_source(config, show_progress=show_progress)
    return write_processed_dataset(config, listing, show_progress=show_progress)
