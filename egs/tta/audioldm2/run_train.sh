#!/bin/sh
# Fine-tune the UNet of a converted AudioLDM 2 checkpoint on a processed dataset (text side, VAE, vocoder frozen).
#
#   python bins/tta/convert_audioldm2.py --model_dir checkpoints/audioldm2 --output_dir exp/audioldm2_converted
#   sh egs/tta/audioldm2/run_train.sh [--config FILE] [--resume] [--set key=value ...]
#
# --config defaults to exp_config.json next to this script; its pretrained.checkpoint names the converted
# checkpoint. --set overrides any config value and is passed to every step (preprocess.* overrides also to
# preprocessing). The steps:
#   1. bins/tta/preprocess.py    builds the dataset named in the config's preprocess section (resumable: clips
#                                already processed are kept, so this is quick when the data exists);
#   2. bins/tta/train_tta.py     trains into <log_dir>/<exp_name> (--resume continues the newest valid checkpoint).
# Generate from the result with sh egs/tta/audioldm2/run_inference.sh --model_dir <log_dir>/<exp_name>.
# For several GPUs or nodes run step 2 under accelerate instead, e.g.
#   accelerate launch --multi_gpu --num_processes 4 bins/tta/train_tta.py --config FILE
# POSIX sh: runs under sh (dash) and bash, from any directory (paths are relative to the repository root).
# Set PYTHON to choose the interpreter (default python3).
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../../.."

config=egs/tta/audioldm2/exp_config.json
. egs/tta/train_args.sh

echo "== 1/2 preprocess ($config)"
preprocess "$@"
echo "== 2/2 train"
# $resume is empty or one word, so it is left unquoted to vanish when empty.
exec "$python" bins/tta/train_tta.py --config "$config" $resume "$@"
