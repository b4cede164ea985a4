#!/bin/sh
# Train the two offline evaluation models on the built-in data: the audio classifier (FD / FAD / KL / IS backbone
# and attribute scorer), then the contrastive text–audio model (text–audio score, candidate ranking), whose audio
# tower starts from the classifier.
#
#   sh egs/tta/evaluation/run_train.sh [--debug] [--set key=value ...]
#       [--classifier_set key=value ...] [--text_audio_set key=value ...]
#
# Configs: egs/tta/evaluation/exp_config_classifier.json and exp_config_text_audio.json (about ten minutes each
# on 2 CPU cores); --debug uses the *_debug.json variants (a minute each, meaningless numbers). The dataset is
# prepared first (resumable). Every training resumes from its latest checkpoint, so re-running after an
# interruption continues where it stopped and a finished model is not retrained. --set overrides go to both
# trainings (keys both configs have, e.g. log_dir, trainer.num_workers; preprocess.* ones also to
# preprocessing), --classifier_set / --text_audio_set to one of them. Then measure them on the test split with
# `sh egs/tta/evaluation/run_evaluate.sh --eval_models`. POSIX sh: runs under sh (dash) and bash, from any
# directory.
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../../.."
. egs/tta/script_args.sh

recipe=egs/tta/evaluation
variant=""
# Overrides quoted for eval (values may hold spaces or quotes): for both trainings, for one, for preprocessing.
common=""
classifier=""
text_audio=""
data=""
quote() {
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}
count=$#
index=0
while [ "$index" -lt "$count" ]; do
    arg=$1
    shift
    index=$((index + 1))
    case $arg in
        -h | --help) show_help ;;
        --debug)
            variant=_debug
            ;;
        --set | --classifier_set | --text_audio_set)
            require_value "$arg" $((count - index))
            value="--set $(quote "$1")"
            case $arg in
                --set)
                    common="$common $value"
                    case $1 in preprocess.*) data="$data $value" ;; esac
                    ;;
                --classifier_set) classifier="$classifier $value" ;;
                --text_audio_set) text_audio="$text_audio $value" ;;
            esac
            shift
            index=$((index + 1))
            ;;
        *)
            echo "run_train.sh: unknown argument '$arg' (see --help)" >&2
            exit 2
            ;;
    esac
done

classifier_config=$recipe/exp_config_classifier$variant.json
text_audio_config=$recipe/exp_config_text_audio$variant.json

eval "python bins/tta/preprocess.py --config \"\$classifier_config\" --no-progress $data"
echo "== evaluation classifier ($classifier_config)"
eval "python bins/tta/train_tta.py --config \"\$classifier_config\" --resume $common $classifier"
echo "== text–audio model ($text_audio_config)"
eval "python bins/tta/train_tta.py --config \"\$text_audio_config\" --resume $common $text_audio"
