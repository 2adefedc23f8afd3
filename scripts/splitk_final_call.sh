#!/bin/bash
# Final GPU call for the split-K work: build, every gpu-marked test of test_gpu_ops.py + test_triton.py (xdist),
# then bench/gemm_small_m.py (before / after / bf16 cuBLAS through the public op). Run from the repo root.
ROOT=$PWD
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-build-isolation --no-deps . -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a > $OUT/build.log 2>&1 || tail -30 $OUT/build.log
cd /tmp
# (2026-11-26: all 224 tests reported "." but the xdist run did not exit within 170 s; give it more time or drop -n)
FOURBIT_TRITON_AUTOTUNE=0 timeout ${TEST_TIMEOUT:-170} python3 -m pytest -q -n 8 -m gpu $ROOT/tests/test_gpu_ops.py \
  $ROOT/tests/test_triton.py > $OUT/tests.log 2>&1
echo "pytest rc $?"
grep -E "^FAILED|^ERROR|passed|failed" $OUT/tests.log | head -30
TABLE_BUDGET_S=${TABLE_BUDGET_S:-100} timeout ${TABLE_TIMEOUT:-140} python3 $ROOT/bench/gemm_small_m.py > $OUT/table.log 2>&1
echo "table rc $?"
grep -E "compiled|done|budget|Error" $OUT/table.log | head
sed -n '/^NVIDIA/,$p' $OUT/table.log
