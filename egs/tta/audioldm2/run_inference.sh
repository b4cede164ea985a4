#!/bin/sh
# Generate audio from text with an AudioLDM 2 model: public (a diffusers-layout folder), converted, or fine-tuned.
#
#   sh egs/tta/audioldm2/run_inference.sh --model_dir DIR --text "a dog barks" [--text "rain on a roof" ...]
#       [--text_file FILE] [--negative_prompt TEXT] [--guidance_scale G] [--num_inference_steps N]
#       [--audio_length_in_s S] [--num_waveforms_per_prompt K] [--seed N]
#       [--scheduler dpmsolver++|unipc|ddim|ddpm|pndm|euler|checkpoint] [--output_dir DIR] [--batch_size N]
#       [--precision auto|fp32|bf16] [--device cpu|cuda] [--allow_long_audio] [--text_model_dir DIR]
#
# --model_dir is a folder the user downloaded (cvssp/audioldm2, cvssp/audioldm2-large or cvssp/audioldm2-music), a
# checkpoint written by bins/tta/convert_audioldm2.py, or a fine-tuning experiment folder of run_train.sh (its newest
# checkpoint, EMA weights) or one of its checkpoint folders; nothing is downloaded here. Each flag and its value
# reach bins/tta/inference_audioldm2.py as separate, quoted arguments, so multi-word prompts stay whole. POSIX sh:
# runs under sh (dash) and bash, from any directory (paths are relative to the repository root).
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../../.."
. egs/tta/script_args.sh

model_dir=
count=$#
index=0
while [ "$index" -lt "$count" ]; do
    arg=$1
    shift
    index=$((index + 1))
    case $arg in
        -h | --help) show_help ;;
        --model_dir | --text | --text_file | --negative_prompt | --guidance_scale | --num_inference_steps | \
        --audio_length_in_s | --num_waveforms_per_prompt | --seed | --scheduler | --output_dir | --batch_size | \
        --precision | --device | --text_model_dir)
            require_value "$arg" $((count - index))
            value=$1
            shift
            index=$((index + 1))
            if [ "$arg" = "--model_dir" ]; then
                model_dir=$value
            else
                set -- "$@" "$arg" "$value"
            fi
            ;;
        --model_dir=*)
            model_dir=${arg#--model_dir=}
            ;;
        --allow_long_audio | --*=*)
            set -- "$@" "$arg"
            ;;
        *)
            echo "run_inference.sh: unknown argument '$arg' (see --help)" >&2
            exit 2
            ;;
    esac
done

if [ -z "$model_dir" ]; then
    echo "run_inference.sh: --model_dir DIR is required (a local AudioLDM 2 folder, e.g. of cvssp/audioldm2)" >&2
    exit 2
fi

exec python3 bins/tta/inference_audioldm2.py --model_dir "$model_dir" "$@"
