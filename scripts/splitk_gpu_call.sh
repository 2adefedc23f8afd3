#!/bin/bash
# One GPU call for the split-K work: build, split-K GPU tests (background, before timing), the gemm_tune sweep.
# Run from the repo root on the device machine: bash scripts/splitk_gpu_call.sh [pytest -k pattern]
ROOT=$PWD
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-build-isolation --no-deps . -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a > $OUT/build.log 2>&1 || tail -30 $OUT/build.log
cd /tmp
rm -f /tmp/tdone
(FOURBIT_TRITON_AUTOTUNE=0 timeout ${TEST_TIMEOUT:-200} python3 -m pytest -q -m gpu $ROOT/tests/test_gpu_ops.py \
  $ROOT/tests/test_triton.py -k "${1:-split}" > $OUT/tests.log 2>&1; touch /tmp/tdone) &
WAIT_FILE=/tmp/tdone TUNE_BUDGET_S=${TUNE_BUDGET_S:-250} timeout ${TUNE_TIMEOUT:-320} python3 $ROOT/bench/gemm_tune.py > $OUT/tune.log 2>&1
wait
grep -E "^FAILED|^ERROR|passed|failed" $OUT/tests.log | head -30
grep -E "FAIL|WRONG|compiled|checked|done|budget" $OUT/tune.log | head -20
sed -n '/^NVIDIA\|^shape M/,$p' $OUT/tune.log
