#!/usr/bin/env bash
# Creates the virtual environment .venv with everything gmsep needs.
# Idempotent: `make` only calls it again when requirements.txt or setup.cfg change.
#   GMSEP_TORCH   the torch requirement to install when no torch is present
#                 (default: the CPU build torch==2.13.0+cpu on a machine without
#                 an NVIDIA GPU, the registry's default CUDA build otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
python=${PYTHON:-python3}

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip() { "$venv/bin/python" -m pip install -q "$@"; }

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    if [ -z "${GMSEP_TORCH:-}" ]; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            GMSEP_TORCH=torch
        else
            # Pinned exactly: only the CPU wheel matches, never a CUDA build.
            GMSEP_TORCH=torch==2.13.0+cpu
        fi
    fi
    echo "setup: installing $GMSEP_TORCH"
    pip "$GMSEP_TORCH"
fi
echo "setup: installing requirements"
pip -r requirements.txt "pytest>=8" "ruff>=0.6"
pip --no-deps -e .
"$venv/bin/python" tools/fix_torchaudio.py
# Headless Chromium, for the browser test of the evaluation report
# (tests/test_report.py) and `make report-screenshot`: a Debian package,
# installed only where it is missing and apt-get is there. Setup goes on
# without it (those tests are then skipped, saying why).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium (apt-get)"
    as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo -n"
    { $as_root apt-get update -q && $as_root apt-get install -y -q chromium; } \
        || echo "setup: chromium could not be installed; the report's browser tests will be skipped"
fi
touch "$venv/.gmsep-setup"
echo "setup: done ($venv)"
