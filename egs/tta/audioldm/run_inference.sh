#!/bin/sh
# Generate audio from text with a trained stage-2 model.
#
#   sh egs/tta/audioldm/run_inference.sh --text "three short high beeps" [--text "a low hum" ...]
#       [--checkpoint DIR] [--text_file FILE] [--negative_prompt TEXT] [--guidance_scale G]
#       [--num_inference_steps N] [--audio_length_in_s S] [--num_waveforms_per_prompt K] [--seed N]
#       [--scheduler ddim|ddpm|pndm|dpmsolver++|unipc|euler] [--vocoder SPEC] [--output_dir DIR]
#       [--batch_size N] [--precision auto|fp32|bf16] [--device cpu|cuda] [--allow_long_audio]
#       [--ranker none|auto|ours:DIR|clap:DIR]
#
# --ranker orders each prompt's candidates best first (files <stem>_0 ... <stem>_<K-1>, score and rank in their
# JSON), within that prompt only: ours:DIR is a text–audio experiment (sh egs/tta/evaluation/run_train.sh),
# clap:DIR a local transformers CLAP folder, none keeps generation order; the default, auto, ranks with the
# committed built-in model pretrained/evaluation/text_audio_builtin when K > 1 (it knows only the built-in
# dataset's sounds), else keeps generation order and says so.
# --checkpoint defaults to the built-in recipe's experiment folder (exp/audioldm_builtin). Each flag and its
# value reach bins/tta/inference.py as separate, quoted arguments, so multi-word prompts stay whole. POSIX sh:
# runs under sh (dash) and bash, from any directory (paths are relative to the repository root).
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../../.."
. egs/tta/script_args.sh

checkpoint=exp/audioldm_builtin
count=$#
index=0
while [ "$index" -lt "$count" ]; do
    arg=$1
    shift
    index=$((index + 1))
    case $arg in
        -h | --help) show_help ;;
        --checkpoint | --text | --text_file | --negative_prompt | --guidance_scale | --num_inference_steps | \
        --audio_length_in_s | --num_waveforms_per_prompt | --seed | --scheduler | --vocoder | --output_dir | \
        --batch_size | --precision | --device | --ranker)
            require_value "$arg" $((count - index))
            value=$1
            shift
            index=$((index + 1))
            if [ "$arg" = "--checkpoint" ]; then
                checkpoint=$value
            else
                set -- "$@" "$arg" "$value"
            fi
            ;;
        --checkpoint=*)
            checkpoint=${arg#--checkpoint=}
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

exec python bins/tta/inference.py --checkpoint "$checkpoint" "$@"
