#!/bin/sh
# Quality and time of samplers and step counts on the trained built-in model: the main job's stage-2 model
# generates one clip per test caption (seen and held-out combinations, seed 0, the quickstart's guidance 3) with
# each setting, and run_evaluate.sh measures every folder against the same reference (FD, FAD, KL, IS,
# text–audio score, adherence per family and attribute). The evidence that the inference default is the fastest
# setting that keeps quality; `bench_end_to_end.py sweep` gives the distances to 200-step DDIM on three prompts.
#
#   sh benchmarks/sampler_quality.sh [--settings "dpmsolver++:25 dpmsolver++:15 dpmsolver++:10 unipc:15"]
#       [--clips NAME=DIR ...] [--out exp/sampler_quality] [--output benchmarks/results/sampler_quality.md]
#
# --clips adds a folder generated before (e.g. default=exp/quickstart/generated, the main job's clips with the
# default DPM-Solver++ 25 steps) to the evaluation, without generating or timing it.
# Each setting is SCHEDULER:STEPS (the schedulers of run_inference.sh). Needs the main job's
# exp/quickstart/{audioldm,vocoder} and test prompts (sh egs/tta/quickstart/run.sh). A setting whose folder is
# complete is not generated again (the times are those of the runs that generated them). POSIX sh, from any
# directory.
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/.."
. egs/tta/script_args.sh

settings="dpmsolver++:25 dpmsolver++:15 dpmsolver++:10 unipc:15"
clips=""
out=exp/sampler_quality
output=benchmarks/results/sampler_quality.md
while [ $# -gt 0 ]; do
    case $1 in
        --settings | --clips | --out | --output)
            require_value "$1" $(($# - 1))
            case $1 in
                --settings) settings=$2 ;;
                --clips) clips="$clips --clips $2" ;;
                --out) out=$2 ;;
                --output) output=$2 ;;
            esac
            shift 2
            ;;
        -h | --help) show_help ;;
        *)
            echo "sampler_quality.sh: unknown argument '$1' (see --help)" >&2
            exit 2
            ;;
    esac
done

checkpoint=exp/quickstart/audioldm
prompts=exp/quickstart/test_prompts.txt
for needed in "$checkpoint" exp/quickstart/vocoder "$prompts"; do
    if [ ! -e "$needed" ]; then
        echo "sampler_quality.sh: $needed is missing: run sh egs/tta/quickstart/run.sh first" >&2
        exit 2
    fi
done

mkdir -p "$out"
for setting in $settings; do
    scheduler=${setting%%:*}
    steps=${setting#*:}
    name="${scheduler}_$steps"
    folder="$out/$name"
    if [ ! -f "$folder/.complete" ]; then
        rm -rf "$folder"
        echo "== $name ($(date +%H:%M:%S))"
        start=$(date +%s)
        sh egs/tta/audioldm/run_inference.sh --checkpoint "$checkpoint" --vocoder exp/quickstart/vocoder \
            --text_file "$prompts" --scheduler "$scheduler" --num_inference_steps "$steps" --ranker none \
            --seed 0 --batch_size 8 --output_dir "$folder"
        echo $(($(date +%s) - start)) > "$folder/.seconds"
        touch "$folder/.complete"
    fi
    clips="$clips --clips $name=$folder"
done

# shellcheck disable=SC2086  # the --clips pairs are words without spaces
sh egs/tta/evaluation/run_evaluate.sh $clips --output_dir "$out"

{
    echo "sampler_quality.sh — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
    echo "machine: $(python3 -c 'import sys; sys.path.insert(0, "."); from benchmarks.machine import describe_cpu; print(describe_cpu())'), $(nproc --all) CPUs, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
    echo "model: $checkpoint, the test captions, one 5 s clip each, guidance 3, seed 0, batch 8, precision auto"
    echo
    echo "Generation wall time of the $(wc -l < "$prompts") clips (model loading, sampling, VAE decode, vocoder, writing):"
    for setting in $settings; do
        name="${setting%%:*}_${setting#*:}"
        echo "  $name: $(cat "$out/$name/.seconds") s"
    done
    echo
    cat "$out/generation_metrics.md"
} > "$output"
echo "results: $output"
