"""Which plain read is the floor of the M = 1 targets, and what does do_bench add to a kernel? One GPU call, one card:
the CUDA plain read of bench/read_floor.cu (2 or 4 CTAs an SM; plain / L2 evict_first loads), bench/read_floor.py's
Triton read, the M = 1 GEMV (int4, mxfp4) and a one-element add, each timed three ways:
  do_bench (eager, L2 flushed: the peers' method), CUPTI kernel us after the same flush, and a CUDA graph of 3 calls
  over 3 copies (gpu_peers.py's graph us: do_bench of the replay / 3).
(The ctypes launches are not captured by torch's graph: their graph column is empty, 0.4 us.)
Measured (H100 80GB HBM3, 2026-11-28, two runs, us do_bench / CUPTI): the one-element add 4.3-4.7 / ~1 (graph 2.6);
4096^2 (8.4 MB) CUDA read 8.5-9.5 / 5.6-5.8, Triton read_floor 8.7 / 5.7, GEMV int4 - / 9.7, mxfp4 - / 8.9 (graph 10.8
/ 10.0); 8192^2 CUDA read 17.7-18.7 / 14.7-16.0, read_floor 20.9 / 16.9, GEMV int4 24.4-24.6, mxfp4 22.0-22.3 (graph
25.5 / 23.2); 28672x8192 CUDA read 47.7-48.6 / 44.7-45.1, read_floor 53.2 / 49.5, GEMV int4 74.6-75.5, mxfp4 65.3-65.7
(graph 76.0 / 66.5). So at the kernel level the M = 1 GEMV moves its codes at 60-68% of a plain read's rate; the
gap to the 80%-of-copy target is the GEMV's own (csrc/cuda/gemv.cu, round 8), while the plain read itself reaches 77%
of copy at 8192^2 and 89% at 28672x8192. (The GEMV's eager do_bench column is host-bound in these runs: 50-140 us.)
Usage (GPU machine, fourbit importable, nvcc): python3 bench/probes/read_method.py"""
import os
import sys

import torch
import triton

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))  # bench/
import fourbit  # noqa: E402
import read_floor  # noqa: E402
from gpu_quick import graph_time  # noqa: E402
from timing_floor import cupti_kernels  # noqa: E402
from route_floor import flush_dirty  # noqa: E402

dev = "cuda"


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3


def main():
    L = read_floor.cuda_lib()  # bench/read_floor.cu's l2p_read (its load policy is an argument)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    sink = torch.empty(64 * sms * 256, dtype=torch.int32, device=dev)
    print(torch.cuda.get_device_name(), torch.__version__, triton.__version__)
    t1 = torch.zeros(1, device=dev)
    fl = cupti_kernels(lambda: None, before=flush_dirty)  # the flush's own kernel (subtracted by name below)
    rows = [("add 1 element", [lambda: t1.add_(1)] * 3)]
    print(f"{'case':>34} {'do_bench':>9} {'cupti':>8} {'graph/3':>8}")
    for N, K in ((4096, 4096), (8192, 8192), (28672, 8192)):
        nb = N * K // 2
        codes = [torch.randint(-2**31, 2**31 - 1, (nb // 4,), device=dev, dtype=torch.int32) for _ in range(3)]
        st = torch.cuda.current_stream().cuda_stream

        def cread(c, per, pol):
            return lambda: L.l2p_read(c.data_ptr(), nb, sink.data_ptr(), per * sms, pol, st)
        for per in (2, 4):
            for pol, pn in ((0, "plain"), (1, "evict_first")):
                rows.append((f"{N}x{K} cuda read {per}/SM {pn}", [cread(c, per, pol) for c in codes]))
        rows.append((f"{N}x{K} triton read_floor", [read_floor.read_fn(c, kind="triton") for c in codes]))
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02
        x = torch.randn(1, K, device=dev, dtype=torch.bfloat16)
        out = torch.empty(1, N, device=dev, dtype=torch.bfloat16)
        for f in ("int4", "mxfp4"):
            qs = [fourbit.quantize(w if i == 0 else torch.randn_like(w) * 0.02, f) for i in range(3)]
            rows.append((f"{N}x{K} gemv {f} (op)",
                         [lambda a_=q.op_args(): torch.ops.fourbit.linear_out(x, *a_, None, out) for q in qs]))
        for name, fns in rows:
            ks = cupti_kernels(fns[0], before=flush_dirty)
            ks = {k: v - fl.get(k, 0.0) for k, v in ks.items() if v - fl.get(k, 0.0) > 0.05}  # the flush's kernel out
            print(f"{name:>34} {bench(fns[0]):9.2f} {sum(ks.values()):8.2f} {graph_time(fns) * 1e3:8.2f}   "
                  + "; ".join(f"{k[:40]} {v:.2f}" for k, v in ks.items()))
        rows = []
        del codes, w
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
