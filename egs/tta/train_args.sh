# Sourced (`. egs/tta/train_args.sh`) by the run_train.sh scripts of autoencoderkl, hifigan and audioldm2, after
# they set `config` to their default: parses --config FILE, --resume and --set key=value (also --config=FILE and
# --set=key=value), leaving exactly the --set pairs in "$@"; sets `python` and `resume`; defines `preprocess`,
# which runs bins/tta/preprocess.py with the preprocess.* overrides only. --help prints the calling script's header
# comment (egs/tta/script_args.sh). POSIX sh.
usage() {
    echo "usage: sh $0 [--config FILE] [--resume] [--set key=value ...]" >&2
    exit 2
}

if [ ! -f bins/tta/train_tta.py ]; then
    echo "$0: run this from the repository root" >&2
    exit 2
fi
script=${script:-$0}
. egs/tta/script_args.sh

python=${PYTHON:-python3}
resume=""

# Consume the arguments from the front; the --set pairs are re-appended at the back, so afterwards "$@" holds
# exactly them, with their quoting intact (POSIX sh has no arrays).
remaining=$#
while [ "$remaining" -gt 0 ]; do
    argument=$1
    shift
    remaining=$((remaining - 1))
    case $argument in
        --config)
            require_value --config "$remaining"
            config=$1
            shift
            remaining=$((remaining - 1))
            ;;
        --config=*) config=${argument#--config=} ;;
        --resume) resume="--resume" ;;
        --set)
            require_value --set "$remaining"
            set -- "$@" --set "$1"
            shift
            remaining=$((remaining - 1))
            ;;
        --set=*) set -- "$@" --set "${argument#--set=}" ;;
        -h | --help) show_help ;;
        *)
            echo "$0: unknown argument '$argument'" >&2
            usage
            ;;
    esac
done

if [ ! -f "$config" ]; then
    echo "$0: config file '$config' not found" >&2
    exit 2
fi

# Preprocessing takes only preprocess.* overrides: pick them out of the --set pairs.
preprocess() {
    pairs=$#
    while [ "$pairs" -gt 0 ]; do
        value=$2
        shift 2
        pairs=$((pairs - 2))
        case $value in
            preprocess.*) set -- "$@" --set "$value" ;;
        esac
    done
    "$python" bins/tta/preprocess.py --config "$config" "$@"
}

