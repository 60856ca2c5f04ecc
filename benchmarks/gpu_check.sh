#!/usr/bin/env bash
# GPU check: verify and time what only a GPU shows (training throughput of resnet50 at
# 384² in fp32 vs bf16 + channels_last, all-pairs scoring at N = 15,697, MAP@5 at
# 8,000 × 15,697, peak memory) and the project's own paths (its training step, loader
# and all, on ~5k synthetic photos at 384 and 448 against the bare model on device
# tensors; one mining round at N = 15,697 with the HWI head [512, 128]; one validation
# step at 3,000 × 5,004), then print a table. Under 10 minutes on one GPU.
#
#   benchmarks/gpu_check.sh                      # on a GPU machine
#   benchmarks/gpu_check.sh --cpu --small        # smoke test without a GPU (a few minutes on 2 cores)
#   benchmarks/gpu_check.sh --only pipeline mining validation   # just the project's paths
#   benchmarks/gpu_check.sh --json out.json      # also save the rows
#
# Exits 0 with a message when no GPU is visible; 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi

if ! "$PY" -c "import torch, whaleflow" 2>/dev/null; then
  echo "gpu_check: $PY cannot import torch and whaleflow; run 'make install' (or pip install -e .) first." >&2
  exit 2
fi

cpu=0
for a in "$@"; do [[ "$a" == "--cpu" ]] && cpu=1; done
if [[ $cpu == 0 ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  fi
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU visible to torch; nothing to check (use --cpu --small for a smoke test)."
    exit 0
  fi
fi

# The whole check must stay under 10 minutes; the Python side budgets its own steps.
exec timeout --signal=INT 580 "$PY" benchmarks/gpu_check.py "$@"
