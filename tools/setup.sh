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
touch "$venv/.gmsep-setup"
echo "setup: done ($venv)"
