#!/usr/bin/env bash
# Builds this tree for the GPU machine on this one (sm_90a, its Python ABI: 3.12) into .pre/NAME, so a device call
# carries .pre/NAME instead of compiling there (~28 MB; the extension links no libtorch, so one build serves torch
# 2.11 there). Usage: scripts/prebuild.sh NAME [SRC]; then `PREBUILT=.pre/NAME scripts/gpu_check.sh tests` with
# carry [".pre"], or PYTHONPATH=$PWD/.pre/NAME for a benchmark. Needs a CPython 3.12 with scikit-build-core and
# pybind11 (PY, default pyenv's 3.12) and nvcc; .pre/ is git-ignored through .git/info/exclude. CUDA_FLAGS adds nvcc
# flags for a variant build (an A/B of a compile-time switch: CUDA_FLAGS=-DFOURBIT_GEMV_T64L=0).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?name}; SRC=${2:-$PWD}
PY=${PY:-$(ls -d /root/.pyenv/versions/3.12*/bin/python3 2>/dev/null | head -1)}
grep -qx '/.pre/' .git/info/exclude 2>/dev/null || echo /.pre/ >> .git/info/exclude
rm -rf ".pre/$NAME"
"$PY" -m pip install -q --no-build-isolation --no-deps --target ".pre/$NAME" "$SRC" \
  -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a -Cbuild-dir="/tmp/pre-build/$NAME" \
  ${CUDA_FLAGS:+"-Ccmake.define.CMAKE_CUDA_FLAGS=$CUDA_FLAGS"}
ls -la ".pre/$NAME"/fourbit/_C*.so
