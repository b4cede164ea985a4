#!/bin/sh
# Train stage 2 (text-conditioned latent diffusion) on the built-in data, after stage 1 (the VAE) has trained.
#
#   sh egs/tta/audioldm/run_train.sh [--config FILE] [--resume] [--set key=value ...] [--exp_dir DIR]
#
# Default config: egs/tta/audioldm/exp_config.json (the full built-in recipe, under an hour on 2 CPU cores);
# egs/tta/audioldm/exp_config_debug.json trains in minutes. The config's dataset is prepared first (resumable:
# a finished dataset is skipped). Every other argument goes to bins/tta/train_tta.py. POSIX sh: runs under sh
# (dash) and bash, from any directory.
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../../.."
. egs/tta/script_args.sh

config=egs/tta/audioldm/exp_config.json
count=$#
index=0
while [ "$index" -lt "$count" ]; do
    arg=$1
    shift
    index=$((index + 1))
    case $arg in
        -h | --help) show_help ;;
        --config)
            require_value --config $((count - index))
            config=$1
            shift
            index=$((index + 1))
            ;;
        --config=*)
            config=${arg#--config=}
            ;;
        *)
            set -- "$@" "$arg"
            ;;
    esac
done

python bins/tta/preprocess.py --config "$config" --no-progress
exec python bins/tta/train_tta.py --config "$config" "$@"
