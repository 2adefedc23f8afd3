"""Why fourbit's eager M = 1 column carries more than its graph column at some shapes on an H200 (BENCHMARKS_H200.md:
14336x4096 int4 31.4 eager against 24.0 from a three-call graph). Per shape and kernel, us (median of 100):
  eager      do_bench as the benchmark runs it (256 MB zero_ flush, then the eager call);
  graph1     a one-call CUDA graph under the same flush;
  graph3     the benchmark's graph column (three calls over three weight copies, per call);
  clean      the eager call after a flush that reads 256 MB instead of writing it (L2 left clean, not dirty);
for fourbit int4 / nf4 and torch's tinygemm (eager and graph1). If eager ~ graph1 > graph3, the gap is the L2 state
after the flush (dirty lines written back while the weights stream in), not host time.
Usage (GPU machine): python3 bench/probes/eager_gap.py"""
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fourbit  # noqa: E402
from gpu_peers import peer_tinygemm  # noqa: E402
from gpu_quick import graph_time  # noqa: E402
from timing_floor import graph_of  # noqa: E402


def timed(fn, flush, n=100):
    """Median us of fn after flush(), each between two events."""
    for _ in range(5):
        flush()
        fn()
    ts = []
    for _ in range(n):
        flush()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        ts.append((a, b))
    torch.cuda.synchronize()
    return sorted(a.elapsed_time(b) for a, b in ts)[n // 2] * 1e3


def main():
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    cache = torch.empty(1 << 26, dtype=torch.int32, device="cuda")
    sink = torch.empty((), dtype=torch.int64, device="cuda")
    dirty = lambda: cache.zero_()  # noqa: E731  (do_bench's flush)
    clean = lambda: torch.sum(cache, dim=0, out=sink)  # noqa: E731
    for N, K in ((14336, 4096), (4096, 14336), (4096, 4096)):
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02
        x = torch.randn(1, K, device="cuda", dtype=torch.bfloat16)
        tg, _ = peer_tinygemm(w)
        cases = {"tinygemm": (lambda: tg(x), None)}
        for f in ("int4", "nf4"):
            qws = [fourbit.quantize(w if i == 0 else torch.randn_like(w) * 0.02, f) for i in range(3)]
            out = torch.empty(1, N, device="cuda", dtype=torch.bfloat16)
            cases[f"fourbit {f}"] = (lambda q=qws[0]: fourbit.linear(x, q),
                                     [lambda a_=q.op_args(): torch.ops.fourbit.linear_out(x, *a_, None, out)
                                      for q in qws])
        for name, (fn, three) in cases.items():
            row = dict(eager=triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3,
                       graph1=triton.testing.do_bench(graph_of(fn), warmup=25, rep=100, return_mode="median") * 1e3,
                       graph3=graph_time(three) * 1e3 if three else float("nan"),
                       dirty=timed(fn, dirty), clean=timed(fn, clean))
            print(f"{N}x{K} {name:>14}: " + "  ".join(f"{k} {v:6.1f}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
