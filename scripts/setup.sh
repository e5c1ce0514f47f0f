#!/usr/bin/env bash
# All set-up on a fresh machine (Python 3.11, pip reaching PyPI, apt for the sample data); idempotent.
#   .venv               torch 2.13 (CPU wheel) + this package with its train/test extras (dlib-bin included)
#   .venv-mediapipe     mediapipe 0.10.21 for pose extraction (it pins numpy<2, so it lives apart)
#   .cache/data         the real sample footage (vtest.avi, carphone) and the dlib landmark model
#   .cache/comfyui      the offline ComfyUI host the integration tests and the demo drive
# Set V2V_SETUP_FRESH=1 to recreate .venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

T0=$(date +%s)
step() { echo "== setup [$(( $(date +%s) - T0 )) s] $* (disk free: $(df -h --output=avail . | tail -1 | tr -d ' '))"; }
# This machine's pip config names local indexes that lack most projects; pip warns once per project.
quiet_pip() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
# No pip cache: everything is installed once, and the disk of a CI machine can be small (about 10 GB
# in all: .venv 1.8, .venv-mediapipe 1.0, the hosts 7 -- they share one torch through hard links).
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

[ "${V2V_SETUP_FRESH:-}" = 1 ] && rm -rf .venv
if [ ! -x .venv/bin/python ]; then
    step "python3.11 -m venv .venv"
    python3.11 -m venv .venv
fi
PY=.venv/bin/python
step "torch 2.13.0 (local CPU wheel), then the package with [train,test,face,pseudo]"
quiet_pip $PY -m pip install -q torch==2.13.0
quiet_pip $PY -m pip install -q -e '.[train,test,face,pseudo]'
$PY -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

if [ ! -x .venv-mediapipe/bin/python ] || ! .venv-mediapipe/bin/python -c "import mediapipe" 2>/dev/null; then
    step "mediapipe 0.10.21 in .venv-mediapipe (pose extraction runs there in a subprocess)"
    python3.11 -m venv .venv-mediapipe
    quiet_pip .venv-mediapipe/bin/python -m pip install -q mediapipe==0.10.21
fi

if [ ! -x /usr/bin/chromium ]; then
    step "Debian chromium (the browser test drives it headless through playwright)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi

step "sample footage"
$PY scripts/fetch_sample_data.py

step "offline ComfyUI host"
quiet_pip $PY scripts/comfy_host.py build --all
step "done"
