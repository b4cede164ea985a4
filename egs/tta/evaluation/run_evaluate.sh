#!/bin/sh
# Measure folders of clips against the built-in training clips: FD, FAD, KL, IS, text–audio score and attribute
# adherence per family and attribute, one table row per folder. Or, with --eval_models, measure the evaluation
# models themselves on a held-out split (classifier accuracy per head, text–audio retrieval recall).
#
#   sh egs/tta/evaluation/run_evaluate.sh --clips NAME=DIR [--clips NAME=DIR ...] [--output_dir DIR]
#       [--config FILE] [--debug] [--tensorboard_dir DIR] [--set evaluation.key=value ...]
#   sh egs/tta/evaluation/run_evaluate.sh --eval_models [--split test] [--output_dir DIR] [--config FILE] [--debug]
#
# A folder may hold generated clips (<stem>.wav + <stem>.json with the "prompt", as run_inference.sh writes
# them), real clips or reconstructions named <Uid>.wav, or a mix; clips are paired with the dataset records whose
# caption is their prompt (or whose Uid is their name). Writes <output_dir>/generation_metrics.json and
# generation_metrics.md (default output_dir: exp/evaluation); --eval_models writes eval_models_<split>.json. The evaluation models come from
# egs/tta/evaluation/eval_config.json (trained by run_train.sh; --debug: eval_config_debug.json); --config names
# another config with an evaluation section. POSIX sh: runs under sh (dash) and bash, from any directory (paths
# are relative to the repository root).
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../../.."
. egs/tta/script_args.sh

config=egs/tta/evaluation/eval_config.json
output_dir=exp/evaluation
command=generation
split=test
count=$#
index=0
while [ "$index" -lt "$count" ]; do
    arg=$1
    shift
    index=$((index + 1))
    case $arg in
        -h | --help) show_help ;;
        --debug)
            config=egs/tta/evaluation/eval_config_debug.json
            ;;
        --eval_models)
            command=eval_models
            ;;
        --clips | --output_dir | --config | --tensorboard_dir | --set | --split)
            require_value "$arg" $((count - index))
            value=$1
            shift
            index=$((index + 1))
            case $arg in
                --config) config=$value ;;
                --output_dir) output_dir=$value ;;
                --split) split=$value ;;
                *) set -- "$@" "$arg" "$value" ;;
            esac
            ;;
        *)
            echo "run_evaluate.sh: unknown argument '$arg' (see --help)" >&2
            exit 2
            ;;
    esac
done

if [ "$command" = eval_models ]; then
    exec python bins/tta/evaluate.py eval_models --config "$config" --split "$split" \
        --output "$output_dir/eval_models_$split.json" "$@"
fi
exec python bins/tta/evaluate.py generation --config "$config" --output_dir "$output_dir" "$@"
