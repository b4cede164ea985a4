#!/bin/sh
# Train the HiFi-GAN vocoder (log-mel -> 16 kHz waveform) on the recipe's mel front end.
#
#   sh egs/tta/hifigan/run_train.sh [--config FILE] [--resume] [--set key=value ...]
#
# Run from the repository root. --config defaults to exp_config.json next to this script (AudioLDM 2's vocoder
# size, meant for a GPU; exp_config_debug.json trains a small vocoder on a CPU in 6-8 minutes on two cores,
# exp_config_vocos_cpu.json a small Vocos vocoder, better than Griffin-Lim, in about 4 minutes); --set
# overrides any config value and is passed to every step (preprocess.* overrides also to preprocessing). The steps:
#   1. bins/tta/preprocess.py    builds the dataset named in the config's preprocess section (resumable: clips
#                                already processed are kept, so this is quick when the data exists);
#   2. bins/tta/train_tta.py     trains into <log_dir>/<exp_name> (--resume continues the newest valid checkpoint).
# The experiment folder is then a vocoder for every other stage: `vocoder: "exp/hifigan_debug"` in their configs,
# or `--vocoder exp/hifigan_debug` for bins/tta/evaluate.py.
# For several GPUs or nodes run step 2 under accelerate instead, e.g.
#   accelerate launch --multi_gpu --num_processes 4 bins/tta/train_tta.py --config FILE
# Set PYTHON to choose the interpreter (default python3).
set -eu

config=$(dirname "$0")/exp_config.json
. "$(dirname "$0")/../train_args.sh"

echo "== 1/2 preprocess ($config)"
preprocess "$@"
echo "== 2/2 train"
# $resume is empty or one word, so it is left unquoted to vanish when empty.
"$python" bins/tta/train_tta.py --config "$config" $resume "$@"
