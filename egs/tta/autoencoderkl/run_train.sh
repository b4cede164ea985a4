#!/bin/sh
# Train stage 1, the mel VAE with a GAN loss, then measure its latent scale factor for stage 2.
#
#   sh egs/tta/autoencoderkl/run_train.sh [--config FILE] [--resume] [--set key=value ...]
#
# Run from the repository root. --config defaults to exp_config.json next to this script
# (exp_config_debug.json trains a tiny VAE on a CPU in minutes); --set overrides any config value and is
# passed to every step (preprocess.* overrides also to preprocessing). The steps:
#   1. bins/tta/preprocess.py    builds the dataset named in the config's preprocess section (resumable: clips
#                                already processed are kept, so this is quick when the data exists);
#   2. bins/tta/train_tta.py     trains into <log_dir>/<exp_name> (--resume continues the newest valid checkpoint);
#   3. bins/tta/vae_scale_factor.py  writes latent_scale.json into the newest checkpoint.
# For several GPUs or nodes run step 2 under accelerate instead, e.g.
#   accelerate launch --multi_gpu --num_processes 4 bins/tta/train_tta.py --config FILE
# Set PYTHON to choose the interpreter (default python3).
set -eu

config=$(dirname "$0")/exp_config.json
. "$(dirname "$0")/../train_args.sh"

echo "== 1/3 preprocess ($config)"
preprocess "$@"
echo "== 2/3 train"
# $resume is empty or one word, so it is left unquoted to vanish when empty.
"$python" bins/tta/train_tta.py --config "$config" $resume "$@"
echo "== 3/3 latent scale factor"
"$python" bins/tta/vae_scale_factor.py --config "$config" "$@"
