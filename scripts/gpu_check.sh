#!/usr/bin/env bash
# One prepared GPU check of the WKV CUDA kernels, RWKV-4 and RWKV-7 (see scripts/gpu_check.py
# and scripts/gpu_check_wkv7.py for what it does).
#
# Usage, from the repository root on a machine with an NVIDIA GPU:
#   bash scripts/gpu_check.sh                 # build, check vs float64, time, print a table,
#                                             # then run the CUDA cases of tests/test_wkv.py
#                                             # and tests/test_wkv7.py
#   bash scripts/gpu_check.sh --compile-only  # just build (works without a GPU given nvcc)
# Results go to $OUT (when set) or results/gpu_check/: gpu_check.md and gpu_check.json.
#
# Python: $PYTHON if set, else the first of python3 / .venv/bin/python whose torch has CUDA.
# If none has, wheels carried in .whl/ (torch with CUDA + its deps) are installed to
# /tmp/site first. The build goes to $SYMATO_BUILD_DIR (default /tmp/symato-build).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export SYMATO_BUILD_DIR="${SYMATO_BUILD_DIR:-/tmp/symato-build}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
[ -n "${CUDA_HOME:-}" ] || { [ -d /usr/local/cuda ] && export CUDA_HOME=/usr/local/cuda; } || true

has_cuda_torch() { "$1" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; }
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3 .venv/bin/python; do
    if command -v "$cand" >/dev/null && has_cuda_torch "$cand"; then PY="$cand"; break; fi
  done
fi
if [ -z "$PY" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  PY=python3
fi
[ -n "$PY" ] || { echo "gpu_check: no python with a CUDA build of torch found" >&2; exit 2; }

# Build for the visible GPU's architecture (sm_90 on H100/H200), or sm_90 without a GPU.
if [ -z "${TORCH_CUDA_ARCH_LIST:-${SYMATO_CUDA_ARCH:-}}" ]; then
  arch=$("$PY" -c 'import torch; c=torch.cuda; print("%d.%d" % c.get_device_capability() if c.is_available() else "9.0")')
  export TORCH_CUDA_ARCH_LIST="$arch"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
echo "python: $PY; arch: ${TORCH_CUDA_ARCH_LIST:-$SYMATO_CUDA_ARCH}; build dir: $SYMATO_BUILD_DIR"
status=0
"$PY" scripts/gpu_check.py "$@" || status=$?
# The CUDA cases of the test suite too (they skip without a GPU), unless only compiling.
case " $* " in *" --compile-only "*) ;; *)
  if "$PY" -c 'import pytest' 2>/dev/null; then
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -q -p no:cacheprovider \
      tests/test_wkv.py tests/test_wkv7.py -k "cuda and not emulated and not compiles" \
      || status=$?
  fi ;;
esac
exit $status
