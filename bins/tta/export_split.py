"""Export one split of the processed data for generation and evaluation: its prompts and/or its real clips.

    python bins/tta/export_split.py --config CFG [--split test] [--prompts FILE] [--wav_dir DIR] [--max_clips N]

`--prompts FILE` writes the split's captions, one per line (each clip's first caption, duplicates dropped, in
Uid order), ready for `run_inference.sh --text_file`: generating from them gives clips that
`evaluate.py generation` pairs with the split's records by caption, so attribute adherence is measured on
captions (and, for the built-in test split, attribute combinations) the model never trained on. `--wav_dir DIR`
copies the split's real wavs to DIR/<Uid>.wav, the "real" row of an evaluation table. The data is the config's
`preprocess` section (`--set preprocess.KEY=VALUE` overrides it). Exit status 2 on unusable input; files are
written whole (temporary name, then rename) and an existing one is never overwritten unless `--overwrite`.
"""

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.base.data import ClipRecord, read_split  # noqa: E402
from preprocessors.config import load_preprocess_config  # noqa: E402
from utils.config import ConfigError  # noqa: E402


def split_prompts(records: list[ClipRecord]) -> list[str]:
    """The first caption of each record, in Uid order, without repeats (a prompt is generated once)."""
    prompts: dict[str, None] = {}
    for record in sorted(records, key=lambda record: record.uid):
        prompts.setdefault(record.captions[0].strip(), None)
    return list(prompts)


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _copy_wavs(records: list[ClipRecord], processed_dir: Path, wav_dir: Path, overwrite: bool) -> int:
    wav_dir.mkdir(parents=True, exist_ok=True)
    for record in records:
        source, target = record.wav_path(processed_dir), wav_dir / f"{record.uid}.wav"
        if not source.is_file():
            raise FileNotFoundError(f"{source} not found: the split lists clip {record.uid!r} but its wav is missing")
        if target.exists() and not overwrite:
            continue
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(source, partial)
        partial.replace(target)
    return len(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="config with a preprocess section")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="preprocess.KEY=VALUE")
    parser.add_argument("--split", default="test", help="split to export (default: test)")
    parser.add_argument("--prompts", type=Path, help="write the split's prompts to this file")
    parser.add_argument("--wav_dir", type=Path, help="copy the split's real wavs into this folder")
    parser.add_argument("--max_clips", type=int, help="only the first N clips (in Uid order)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    try:
        if args.prompts is None and args.wav_dir is None:
            raise ValueError("nothing to do: give --prompts, --wav_dir, or both")
        if args.max_clips is not None and args.max_clips < 1:
            raise ValueError(f"--max_clips must be >= 1, got {args.max_clips}")
        if args.prompts is not None and args.prompts.exists() and not args.overwrite:
            raise FileExistsError(f"{args.prompts} exists (give --overwrite to replace it)")
        preprocess = load_preprocess_config(args.config, args.overrides)
        processed_dir = Path(preprocess.processed_dir)
        records = sorted(read_split(processed_dir, [preprocess.dataset], args.split), key=lambda record: record.uid)
        records = records[: args.max_clips]
        if args.prompts is not None:
            prompts = split_prompts(records)
            args.prompts.parent.mkdir(parents=True, exist_ok=True)
            _write_text(args.prompts, "\n".join(prompts) + "\n")
            print(f"{len(prompts)} prompts of {preprocess.dataset}/{args.split} -> {args.prompts}")
        if args.wav_dir is not None:
            count = _copy_wavs(records, processed_dir, args.wav_dir, args.overwrite)
            print(f"{count} clips of {preprocess.dataset}/{args.split} -> {args.wav_dir}")
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"export_split: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
