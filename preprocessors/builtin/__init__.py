"""The built-in captioned audio dataset: procedural sound effects, CC0 animal recordings and soundfont-rendered
instrument music, with attribute-accurate captions, so the whole recipe runs without AudioCaps."""

from preprocessors.builtin.builder import (
    CAPTIONS_FILE,
    FAMILIES,
    INFO_FILE,
    SPLIT_RULE,
    build_builtin_dataset,
    is_held_out,
)
from preprocessors.builtin.levels import active_rms_db

__all__ = [
    "CAPTIONS_FILE", "FAMILIES", "INFO_FILE", "SPLIT_RULE", "active_rms_db", "build_builtin_dataset", "is_held_out",
]
