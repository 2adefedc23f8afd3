#!/usr/bin/env bash
# A/B of source trees in one GPU call: this tree (A) against each exported tree in .wt/ (named by its folder), e.g.
#   rm -rf .wt && mkdir -p .wt/B && git archive REF | tar -x -C .wt/B   (then carry .wt)
#   scripts/gpu_ab.sh "bench/gpu_tc.py --quick" ["tests/test_cuda_gemm_tc.py"]
#   PROFILE="bench/gpu_tc.py --profile" KERNEL=gemm_tc STALL_ARGS="--split LDGSTS" scripts/gpu_ab.sh   (ncu of each)
# Every tree is built for sm_90a side by side (pip --target, so none replaces another), the benchmark (an empty
# first argument runs none) runs against each in turn on the same warm card, and the optional pytest path runs
# against every tree.
set -uo pipefail
cd "$(dirname "$0")/.."
R=$PWD; BENCH=${1:-}; TESTS=${2:-}
OUT=${OUT:-/tmp/fourbit-ab}; mkdir -p "$OUT"; export PYTHONUNBUFFERED=1
declare -A SRC=([A]="$R")
for d in .wt/*/; do [ -d "$d" ] && SRC[$(basename "$d")]="$R/$d"; done
NAMES=$(printf '%s\n' "${!SRC[@]}" | sort)
for s in $NAMES; do  # install tree s into /tmp/ab/s
  python3 -m pip install -q --no-build-isolation --no-deps --target "/tmp/ab/$s" "${SRC[$s]}" \
    -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a -Cbuild-dir="/tmp/ab-build/$s" > "$OUT/build-$s.log" 2>&1 &
done
wait
for s in $NAMES; do [ -d "/tmp/ab/$s/fourbit" ] || { echo "build $s failed"; tail -20 "$OUT/build-$s.log"; exit 1; }; done
status=0
cd /tmp
for s in $NAMES; do
  [ -n "$TESTS" ] || break
  echo "=== $s: tests"; PYTHONPATH=/tmp/ab/$s timeout 240 python3 -m pytest -q -p no:cacheprovider "${SRC[$s]}/$TESTS" 2>&1 | tail -3
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
for s in $NAMES; do
  [ -n "$BENCH" ] || break
  echo "=== $s: $BENCH"; PYTHONPATH=/tmp/ab/$s timeout 200 python3 $R/$BENCH 2>&1 | tail -60
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
if [ -n "${PROFILE:-}" ]; then  # PROFILE="python script args" with a KERNEL regex: ncu stall summary for each
  for s in $NAMES; do
    echo "=== $s: ncu $PROFILE"
    PYTHONPATH=/tmp/ab/$s timeout 200 ncu --set full -k "regex:${KERNEL:?}" -c 1 -o "$OUT/prof$s" python3 $R/$PROFILE \
      > "$OUT/ncu$s.log" 2>&1 || tail -5 "$OUT/ncu$s.log"
    ncu -i "$OUT/prof$s.ncu-rep" --page source --csv --print-source sass > "$OUT/src$s.csv" 2>&1 &&
      python3 "$R/bench/ncu_stalls.py" "$OUT/src$s.csv" ${STALL_ARGS:-} | tail -40
    ncu -i "$OUT/prof$s.ncu-rep" --page details --csv > "$OUT/details$s.csv" 2>&1
    rm -f "$OUT/prof$s.ncu-rep"
  done
fi
exit $status
