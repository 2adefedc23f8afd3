#!/usr/bin/env bash
# One call on the GPU machine: build, GPU tests, compute-sanitizer (memcheck with a planted-bug control, racecheck),
# quick benchmark table (printed last). Logs and JSON go to $OUT when set.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/fourbit-gpu}; mkdir -p "$OUT"; export OUT PYTHONUNBUFFERED=1
status=0
step() { echo "=== $1"; }
step "build"
python3 -m pip install -q --no-build-isolation --no-deps . > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cd /tmp  # import the installed package, not the source tree
R=$OLDPWD
step "GPU tests"
# one Triton config per shape in tests (autotuning every shape the tests draw would take minutes)
FOURBIT_TRITON_AUTOTUNE=0 timeout 330 python3 -m pytest -q --maxfail=15 -p no:cacheprovider -m gpu "$R/tests" 2>&1 | tee "$OUT/gpu_tests.log" | tail -25 || status=1
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
step "memcheck (control: a planted overrun must be caught)"
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 60 compute-sanitizer --tool memcheck --padding 512 python3 "$R/scripts/gpu_smoke.py" plant \
  > "$OUT/memcheck_plant.log" 2>&1
grep -q "Invalid __global__ write" "$OUT/memcheck_plant.log" && echo "control caught" || { echo "control NOT caught"; status=1; }
step "memcheck"
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 90 compute-sanitizer --tool memcheck --padding 512 python3 "$R/scripts/gpu_smoke.py" \
  > "$OUT/memcheck.log" 2>&1; grep "ERROR SUMMARY" "$OUT/memcheck.log" || tail -5 "$OUT/memcheck.log"
grep -q "ERROR SUMMARY: 0 errors" "$OUT/memcheck.log" || status=1
step "racecheck"
timeout 90 compute-sanitizer --tool racecheck python3 "$R/scripts/gpu_smoke.py" > "$OUT/racecheck.log" 2>&1
grep "ERROR SUMMARY\|RACECHECK SUMMARY" "$OUT/racecheck.log" || tail -5 "$OUT/racecheck.log"
grep -q "ERROR SUMMARY: 0 errors\|RACECHECK SUMMARY: 0 hazards" "$OUT/racecheck.log" || status=1
step "benchmark"
timeout 150 python3 "$R/bench/gpu_quick.py" 2>&1 | tee "$OUT/bench.log" | tail -45
echo "gpu_check status: $status"
exit $status
