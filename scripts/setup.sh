#!/bin/sh
# Install everything the recipe and its tests need into the current Python environment.
# On a machine without torch this installs the CPU build 2.13.0 first (a GPU user installs the torch build that
# matches their CUDA before running this; requirements.txt then leaves it alone).
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet torch==2.13.0
fi
"$PYTHON" -m pip install --quiet -r requirements.txt -r requirements-dev.txt
# tinysoundfont renders the built-in dataset's music offline; its pyaudio requirement is only for playback.
"$PYTHON" -m pip install --quiet --no-deps tinysoundfont
