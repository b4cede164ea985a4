"""End-of-clip artefacts, per folder of wavs: how loud the last 0.1 s is against the 0.9 s before it (dB), and
how many clips have a sound event (evaluation.metrics.attributes' detector) starting in their last 0.3 s.

    python3 scripts/tail_level.py FOLDER [FOLDER ...]

Built-in clips fade out: real test clips end about 34 dB down (median) and 2 of 328 have an event that late.
Clips shorter than 1 s are skipped.
"""

import sys
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from evaluation.metrics.attributes import measure_clip  # noqa: E402

LATE_ONSET_S = 0.3


def tail_drop_db(waveform: np.ndarray, sample_rate: int) -> float:
    """Level (dB) of the last 0.1 s minus that of the 0.9 s before it, of a mono waveform (S,)."""
    tail, body = waveform[-sample_rate // 10 :], waveform[-sample_rate : -sample_rate // 10]
    level = lambda part: 10.0 * np.log10(np.mean(np.square(part, dtype=np.float64)) + 1e-10)
    return level(tail) - level(body)


def main(folders: list[str]) -> int:
    if not folders:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for folder in folders:
        paths = sorted(Path(folder).glob("*.wav"))
        if not paths:
            print(f"tail_level.py: no .wav files in {folder}", file=sys.stderr)
            return 1
        drops, late = [], 0
        for path in paths:
            waveform, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
            if waveform.shape[0] < sample_rate:
                continue
            drops.append(tail_drop_db(waveform[:, 0], sample_rate))
            onsets = [event["onset_s"] for event in measure_clip(waveform[:, 0], sample_rate)["detected_events"]]
            late += any(onset >= waveform.shape[0] / sample_rate - LATE_ONSET_S for onset in onsets)
        print(f"{folder}: {len(drops)} clips, last 0.1 s vs the 0.9 s before: median {np.median(drops):+.1f} dB, "
              f"mean {np.mean(drops):+.1f} dB; {late} with an event starting in the last {LATE_ONSET_S} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
