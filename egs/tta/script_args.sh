# Sourced (`. egs/tta/script_args.sh`) by the egs and benchmark scripts that parse their own flags, once they have
# set `script` to their own path: `show_help` prints the script's header comment (its usage) and exits 0;
# `require_value FLAG LEFT` exits 2 naming FLAG when LEFT, the number of arguments after it, is 0. POSIX sh.
show_help() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$script"
    exit 0
}

require_value() {
    if [ "$2" -lt 1 ]; then
        echo "$(basename "$script"): $1 needs a value" >&2
        exit 2
    fi
}
