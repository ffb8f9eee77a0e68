#!/usr/bin/env bash
# Create the anchor venvs for benchmarks/anchor_bench.py:
#   $ROOT/mace    : mace-torch (pins e3nn 0.4.4, so it cannot share eformer's venv)
#   $ROOT/nequip  : nequip (shares e3nn 0.6 with eformer)
# Usage: benchmarks/anchors.sh [ROOT]   (default ROOT=/work/venvs)
# torch==2.13.0 is installed FIRST from the CPU wheel (pip's find-links on this
# machine); a bare torch requirement would pull a multi-GB CUDA build.
set -euo pipefail
ROOT="${1:-/work/venvs}"
PYTHON="${PYTHON:-python3.11}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
# On machines without the local CPU wheel, take it from PyTorch's CPU index.
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
mkdir -p "$ROOT"

make_venv() {
    local name="$1"; shift
    local venv="$ROOT/$name"
    local start=$SECONDS
    if [ ! -x "$venv/bin/python" ]; then
        "$PYTHON" -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --upgrade pip
    local wheel
    wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)
    if [ -n "$wheel" ]; then
        "$venv/bin/pip" install -q "$wheel"
    else
        "$venv/bin/pip" install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX" \
            --extra-index-url https://pypi.org/simple
    fi
    "$venv/bin/pip" install -q "$@" ase
    echo "$name: installed in $((SECONDS - start)) s into $venv"
    "$venv/bin/python" -c "import torch, e3nn; print('  torch', torch.__version__, 'e3nn', e3nn.__version__)"
}

make_venv mace mace-torch
make_venv nequip nequip
