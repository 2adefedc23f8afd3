"""Driver for ncu: one M = 1 call each of torch's tinygemm (int4 g128) and fourbit's GEMV (int4, nf4) at 4096^2 and
14336x4096, the shapes where tinygemm is faster from a graph (BENCHMARKS_H200.md, 2026-11-28). Profile with
  ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \\
      --section SchedulerStats -k "regex:tinygemm|gemv_nib4" python3 bench/probes/m1_vs_tinygemm.py
(ncu replays each kernel itself, so there is no warm-up here)."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fourbit  # noqa: E402
from gpu_peers import peer_tinygemm  # noqa: E402


def main():
    for N, K in ((4096, 4096), (14336, 4096)):
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02
        x = torch.randn(1, K, device="cuda", dtype=torch.bfloat16)
        tg, _ = peer_tinygemm(w)
        tg(x)
        for f in ("int4", "nf4"):
            fourbit.linear(x, fourbit.quantize(w, f))
        torch.cuda.synchronize()
        print("profiled", N, K, flush=True)


if __name__ == "__main__":
    main()
