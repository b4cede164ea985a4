#!/bin/sh
# The whole recipe on the built-in data, on a CPU: build the data, train the VAE, the vocoder and the latent
# diffusion model, generate audio for the prompts in prompts.txt and for the test split's captions (seen and
# held-out attribute combinations), and evaluate real, reconstructed (VAE + vocoder) and generated test clips
# with the committed evaluation models (pretrained/evaluation/: one fixed evaluator, so that runs compare).
#
#   sh egs/tta/quickstart/run.sh [--large] [--train_eval_models]
#
# Every stage resumes: re-running after an interruption continues where it stopped, and finished stages are
# quick no-ops. Outputs go to exp/quickstart/: samples/ and generated/ (wav, spectrogram PNG and settings JSON
# per clip), real/ and reconstructed/ (the test clips and their VAE + vocoder reconstructions),
# generation_metrics.md / .json (FD, KL, IS, text–audio score, attribute adherence per family and attribute),
# reconstruction_metrics.json (VAE + vocoder) and vocoder_metrics_<vocoder>.json (the trained vocoder on the
# real test mels); TensorBoard logs are in each stage's logs/ folder (tensorboard --logdir exp).
# --large trains the recipes' longer CPU configs instead of the quickstart ones (autoencoderkl/exp_config_debug.json,
# hifigan/exp_config_vocos_cpu.json, audioldm/exp_config.json: stage 2 for 2000 steps), with outputs in
# exp/quickstart_large/. --train_eval_models also trains the evaluation models anew (egs/tta/evaluation/run_train.sh,
# into exp/audio_classifier_builtin and exp/text_audio_builtin: 8 minutes on 2 cores with AMX, 23 without) and
# evaluates with them instead. POSIX sh: runs under sh (dash) and bash.
set -eu
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/../../.."
. egs/tta/script_args.sh

python=${PYTHON:-python3}
quick=egs/tta/quickstart
vae_config=$quick/autoencoderkl.json
vocoder_config=$quick/vocoder.json
ldm_config=$quick/audioldm.json
out=exp/quickstart
vae_exp=exp/quickstart/autoencoderkl
vocoder_exp=exp/quickstart/vocoder
ldm_exp=exp/quickstart/audioldm
eval_config=egs/tta/evaluation/eval_config.json
train_eval_models=0
for arg in "$@"; do
    case $arg in
        --large)
            vae_config=egs/tta/autoencoderkl/exp_config_debug.json
            vocoder_config=egs/tta/hifigan/exp_config_vocos_cpu.json
            ldm_config=egs/tta/audioldm/exp_config.json
            out=exp/quickstart_large
            vae_exp=exp/autoencoderkl_debug
            vocoder_exp=exp/vocos_cpu
            ldm_exp=exp/audioldm_builtin
            ;;
        --train_eval_models)
            train_eval_models=1
            eval_config=egs/tta/evaluation/eval_config_retrained.json
            ;;
        -h | --help) show_help ;;
        *)
            echo "run.sh: unknown argument '$arg' (see --help)" >&2
            exit 2
            ;;
    esac
done

stage() {
    echo
    echo "== quickstart [$1/7] $2 ($(date +%H:%M:%S))"
}

stage 1 "build and preprocess the built-in data"
"$python" bins/tta/preprocess.py --config "$ldm_config"

# The vocoder first: the VAE's and stage 2's TensorBoard audio then go through it.
stage 2 "vocoder (Vocos)"
sh egs/tta/hifigan/run_train.sh --config "$vocoder_config" --resume

stage 3 "stage 1: mel VAE with a GAN loss"
sh egs/tta/autoencoderkl/run_train.sh --config "$vae_config" --resume

stage 4 "stage 2: text-conditioned latent diffusion"
sh egs/tta/audioldm/run_train.sh --config "$ldm_config" --resume

stage 5 "evaluation models (audio classifier, text-audio model)"
if [ "$train_eval_models" = 1 ]; then
    sh egs/tta/evaluation/run_train.sh
else
    echo "using the committed ones in pretrained/evaluation/ (--train_eval_models trains them anew)"
fi

stage 6 "generate audio: $quick/prompts.txt, and the test split's captions"
# One clip per listening prompt; then one clip per test caption for the evaluation of stage 7 (the test split
# holds new clips of attribute combinations seen in training and every clip of the held-out combinations; stage 7
# reports adherence on both). A finished folder is marked complete; an interrupted one starts over.
generate() {
    if [ -f "$2/.complete" ]; then
        echo "already generated: $2"
        return
    fi
    rm -rf "$2"
    sh egs/tta/audioldm/run_inference.sh --checkpoint "$ldm_exp" --vocoder "$vocoder_exp" \
        --text_file "$1" --num_waveforms_per_prompt "$3" --ranker none --seed 0 --batch_size 8 --output_dir "$2"
    touch "$2/.complete"
}
generate "$quick/prompts.txt" "$out/samples" 1
"$python" bins/tta/export_split.py --config "$ldm_config" --split test --prompts "$out/test_prompts.txt" --overwrite
generate "$out/test_prompts.txt" "$out/generated" 1

stage 7 "evaluate the vocoder, and real, reconstructed (VAE + vocoder) and generated test clips"
# The trained vocoder on the real test mels. Griffin-Lim, its fixed baseline, is left to the README's command
# (1.5 of the 30 minutes): --vocoder griffin_lim with the same arguments.
"$python" bins/tta/evaluate.py reconstruction --vocoder "$vocoder_exp" --config "$ldm_config" --split test \
    --output "$out/vocoder_metrics_$(basename "$vocoder_exp").json" --no_progress > /dev/null
"$python" bins/tta/export_split.py --config "$ldm_config" --split test --wav_dir "$out/real"
"$python" bins/tta/evaluate.py reconstruction --vae "$vae_exp" --vocoder "$vocoder_exp" --config "$ldm_config" \
    --split test --save_audio "$out/reconstructed" --output "$out/reconstruction_metrics.json" > /dev/null
sh egs/tta/evaluation/run_evaluate.sh --clips "real=$out/real" --clips "reconstructed=$out/reconstructed" \
    --clips "generated=$out/generated" --config "$eval_config" --output_dir "$out"
echo
echo "done: audio and spectrograms in $out/samples and $out/generated, metrics in $out/generation_metrics.md"
