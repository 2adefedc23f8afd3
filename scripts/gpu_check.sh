#!/usr/bin/env bash
# One call on the GPU machine: build, GPU tests, compute-sanitizer (memcheck with a planted-bug control, racecheck),
# then the benchmark of fourbit against every peer (bench/gpu_peers.py: table printed last, peers.json and the
# roofline PNG and BENCHMARKS.md in $OUT). Usage: scripts/gpu_check.sh [STEPS], STEPS a comma list of tests (or
# its halves tests-a and tests-b),
# sanitize, bench (default all three), or tc: the Hopper wgmma GEMM's tests, its timing against the Triton kernel
# and bf16 cuBLAS (bench/gpu_tc.py --quick) and an ncu stall summary of it (bench/ncu_stalls.py; ~3 minutes), or rs:
# the same for the register-A GEMM (bench/gpu_rs.py; its ncu lines include the tensor pipe's active cycles), or w4a8:
# the same for the CUDA W4A8 GEMM (tests/test_w4a8.py's GPU tests, bench/gpu_w4a8.py --quick and, unless NCU=0, its
# --profile under ncu). One
# device call is limited to 10 minutes: run `tests`, `sanitize` and `bench` as three calls there.
# Peers travel as shared/ANCHORS.md says: wheels in .whl/, gemlite's source in .whl/pysrc (both git-ignored).
# The build compiles sm_90a only (the GPU is a Hopper; CI compiles and SASS-checks every architecture).
# PREBUILT=.pre/X skips it: that folder holds this tree as scripts/prebuild.sh built it here (saves device time).
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-tests,sanitize,bench}
want() { [[ ",$MODE," == *",$1,"* ]]; }
OUT=${OUT:-/tmp/fourbit-gpu}; mkdir -p "$OUT"; export OUT PYTHONUNBUFFERED=1
status=0; T0=$SECONDS
step() { echo "=== $1 (t=$((SECONDS - T0)) s)"; }
if [ -n "${PREBUILT:-}" ]; then  # a tree scripts/prebuild.sh built for this machine's Python (carry its folder)
  step "prebuilt $PREBUILT"; export PYTHONPATH=$PWD/$PREBUILT
else
  step "build"
  python3 -m pip install -q --no-build-isolation --no-deps . -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a \
    > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD/.whl/pysrc${PYTHONPATH:+:$PYTHONPATH}
fi
cd /tmp  # import the installed package, not the source tree
R=$OLDPWD
if want tests || want tests-a || want tests-b; then
  # tests-a / tests-b: every other GPU test (tests/conftest.py FOURBIT_TEST_SHARD), each half in its own device call.
  # Why: the whole suite took 466 s on an H100 (2026-11-27), ~6 min on an H200 (17:18 UTC 2026-11-28) and then more
  # than its 560 s on a two-H200 machine (18:50 UTC, 538 of 541 done), against the 600 s a call may run.
  shard=""
  want tests-a && shard=0/2
  want tests-b && shard=1/2
  step "GPU tests ($MODE)"
  # one Triton config per shape in tests (autotuning every shape the tests draw would take minutes); --durations:
  # the slowest tests go to the log
  FOURBIT_TEST_SHARD=$shard FOURBIT_TRITON_AUTOTUNE=0 timeout 560 python3 -m pytest -q --maxfail=15 -p no:cacheprovider \
    --durations=15 -m gpu "$R/tests" 2>&1 | tee "$OUT/gpu_tests.log" | tail -25 || status=1
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
if want sanitize; then
  step "memcheck (control: a planted overrun must be caught)"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 150 compute-sanitizer --tool memcheck --padding 512 \
    python3 "$R/scripts/gpu_smoke.py" plant > "$OUT/memcheck_plant.log" 2>&1
  grep -q "Invalid __global__ write" "$OUT/memcheck_plant.log" && echo "control caught" || { echo "control NOT caught"; status=1; }
  step "memcheck"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 180 compute-sanitizer --tool memcheck --padding 512 python3 "$R/scripts/gpu_smoke.py" \
    > "$OUT/memcheck.log" 2>&1; grep "ERROR SUMMARY" "$OUT/memcheck.log" || tail -5 "$OUT/memcheck.log"
  grep -q "ERROR SUMMARY: 0 errors" "$OUT/memcheck.log" || status=1
  step "racecheck"
  # 400 s: on an H200 (2026-11-28 11:43 UTC) racecheck had not finished the smoke workload after 300 s, where the
  # workload without this day's CUDA dequantize had finished within it at 10:27 UTC (memcheck: 40 s)
  timeout 400 compute-sanitizer --tool racecheck python3 "$R/scripts/gpu_smoke.py" > "$OUT/racecheck.log" 2>&1
  grep "ERROR SUMMARY\|RACECHECK SUMMARY" "$OUT/racecheck.log" || tail -5 "$OUT/racecheck.log"
  # a hazard fails the step unless both accesses are in cuBLAS's own kernels (nvjet: 4 known splitK hazards, outside
  # fourbit's control); the run must also have finished ("gpu smoke done")
  grep -q "gpu smoke done" "$OUT/racecheck.log" || status=1
  if ! grep -q "ERROR SUMMARY: 0 errors\|RACECHECK SUMMARY: 0 hazards" "$OUT/racecheck.log"; then
    theirs=$(grep -c "access at nvjet_" "$OUT/racecheck.log"); all=$(grep -c "access at " "$OUT/racecheck.log")
    echo "racecheck: $all hazard accesses, $theirs in cuBLAS (nvjet)"; [ "$all" -eq "$theirs" ] || status=1
  fi
fi
# ncu of one bench script's profile mode: NAME, kernel regex, kernel count, --split regex, then the script and its
# arguments. Prints the report's throughput / pipe / scheduler lines and bench/ncu_stalls.py's summary; the report
# itself (tens of MB) stays behind.
ncu_step() {
  local name=$1 rx=$2 n=$3 split=$4; shift 4
  timeout 240 ncu --set full -k "regex:$rx" -c "$n" -o "$OUT/${name}_prof" python3 "$@" > "$OUT/${name}_ncu.log" 2>&1 \
    || tail -5 "$OUT/${name}_ncu.log"
  local keep="_kernel|Duration|Compute \(SM\) Th|Memory Th|DRAM Th|Issue Slots Busy|Eligible Warps|Active Warps Per"
  keep+="|Warp Cycles Per Issued|Registers Per|Block Limit"
  ncu -i "$OUT/${name}_prof.ncu-rep" --page details 2>&1 | grep -E "$keep" | tee "$OUT/${name}_details.txt"
  local m=sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active
  m+=,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__cycles_elapsed.avg
  ncu -i "$OUT/${name}_prof.ncu-rep" --page raw --csv --metrics "$m" > "$OUT/${name}_raw.csv" 2>&1 &&
    cut -c1-400 "$OUT/${name}_raw.csv" | tail -4
  ncu -i "$OUT/${name}_prof.ncu-rep" --page source --csv --print-source sass > "$OUT/${name}_src.csv" 2>&1 &&
    python3 "$R/bench/ncu_stalls.py" "$OUT/${name}_src.csv" --split "$split" --top 15
  rm -f "$OUT/${name}_prof.ncu-rep" "$OUT/${name}_src.csv"
}
if want tc; then
  step "tc: tests, timing, ncu stall summary"
  timeout 200 python3 -m pytest -q -p no:cacheprovider "$R/tests/test_cuda_gemm_tc.py" 2>&1 | tail -3 || status=1
  timeout 200 python3 "$R/bench/gpu_tc.py" --quick 2>&1 | tail -10 || status=1
  ncu_step tc gemm_tc 1 LDGSTS "$R/bench/gpu_tc.py" --profile
fi
if want rs; then  # the register-A GEMM at M = 64 and 256 (8192^2 int4): is the tensor pipe or the issue its bound?
  step "rs: tests, timing, ncu"
  timeout 120 python3 -m pytest -q -p no:cacheprovider "$R/tests/test_cuda_gemm_rs.py" 2>&1 | tail -3 || status=1
  timeout 120 python3 "$R/bench/gpu_rs.py" --quick --ms 1,16,64,256 --fmts int4,nvfp4 2>&1 | tail -10 || status=1
  ncu_step rs gemm_rs 2 USETMAXREG "$R/bench/gpu_rs.py" --profile 8192,8192,64,int4 8192,8192,256,int4
  nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/wgmma_rate "$R/bench/probes/wgmma_rate.cu" && /tmp/wgmma_rate  # the floor
fi
if want w4a8; then  # the CUDA W4A8 GEMM (csrc/cuda/gemm_w4a8.cu): GPU tests, timing against the Triton paths, ncu
  step "w4a8: tests, timing, ncu"
  timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu "$R/tests/test_w4a8.py" 2>&1 | tail -3 || status=1
  timeout 200 python3 "$R/bench/gpu_w4a8.py" --quick 2>&1 | tail -6 || status=1
  [ "${NCU:-1}" = 0 ] || ncu_step w4a8 gemm_w4a8 1 USETMAXREG "$R/bench/gpu_w4a8.py" --profile 8192,8192,256
fi
if want bench; then
  step "benchmark: fourbit vs peers"
  timeout 420 python3 "$R/bench/gpu_peers.py" > "$OUT/bench.log" 2>&1 || { tail -20 "$OUT/bench.log"; status=1; }
  python3 "$R/bench/roofline.py" "$OUT/peers.json" "$OUT/roofline.png" > /dev/null 2>&1 || echo "roofline failed"
  python3 "$R/bench/benchmarks_md.py" "$OUT/peers.json" bench/roofline.png > "$OUT/BENCHMARKS.md" || echo "BENCHMARKS.md failed"
  # (the repo's BENCHMARKS.md also appends bench/benchmarks_notes.md, the analysis of a run, written after reading it)
  step "done"
  sed -n '/^large-M crossover/,$p' "$OUT/bench.log"
fi
echo "gpu_check $MODE status: $status (t=$((SECONDS - T0)) s)"
exit $status
