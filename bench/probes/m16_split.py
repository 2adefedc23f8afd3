"""Where an M = 16 call spends its time against M = 1 (the "M = 16 <= 1.3x its M = 1" rows): CUPTI us of each kernel
of one call after do_bench's L2 flush (M = 1: the GEMV; M = 16: the small-M GEMM and its split-K reduce), and the graph
us of bench/gpu_peers.py's method (3 calls over 3 weight copies, do_bench of the replay / 3).
--timeline: instead, the kernels of one replay of that graph (after a flush) as CUPTI saw them: start and end, us
from the first kernel's start, and the gap since the previous kernel ended.
Usage (GPU machine, fourbit importable): python3 bench/probes/m16_split.py [--timeline]"""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, here)
from gpu_quick import cuda_args, graph_time, weight_copies  # noqa: E402
from route_floor import flush_dirty  # noqa: E402
from timing_floor import cupti_kernels  # noqa: E402

from fourbit.ops import _native_cuda as nc  # noqa: E402


def timeline(fns, label):
    """Two replays of a graph of fns (each after do_bench's flush) under torch.profiler: each kernel's start / end."""
    def show(replay):
        for _ in range(3):
            replay()
        for rep in range(2):
            flush_dirty()
            torch.cuda.synchronize()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                replay()
                torch.cuda.synchronize()
            ks = sorted((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                        if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.end > e.time_range.start)
            t0, prev = ks[0][0], ks[0][0]
            print(f"{label} replay {rep}: span {ks[-1][1] - t0:.2f} us")
            for a, b, n in ks:
                print(f"   {a - t0:7.2f} .. {b - t0:7.2f}  gap {a - prev:6.2f}  {n[:70]}")
                prev = b
        return 0.0
    graph_time(fns, show)  # its capture, with this in place of the timer


def main():
    print(torch.cuda.get_device_name(), torch.__version__)
    if "--timeline" in sys.argv:
        for N, K in ((4096, 4096),):
            for fmt in ("int4", "nvfp4"):
                copies = weight_copies(cuda_args(fmt, torch.randn(N, K)), 3)
                for M in (1, 16):
                    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
                    out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
                    timeline([lambda a=a: nc.linear_out(x, *a, None, out) for a in copies], f"{N}x{K} {fmt} M={M}")
        return
    for N, K in ((4096, 4096), (8192, 8192)):
        for fmt in ("int4", "nvfp4"):
            copies = weight_copies(cuda_args(fmt, torch.randn(N, K)), 3)
            for M in (1, 16):
                x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
                out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
                ks = cupti_kernels(lambda: nc.linear_out(x, *copies[0], None, out), n=30, before=flush_dirty)
                ks = {k: v for k, v in ks.items() if "zero" not in k.lower() and "fill" not in k.lower()}
                g = graph_time([lambda a=a: nc.linear_out(x, *a, None, out) for a in copies]) * 1e3
                parts = "; ".join(f"{k[:40]} {v:.2f}" for k, v in ks.items())
                print(f"{N}x{K} {fmt:5s} M={M:2d} graph {g:6.2f} us | CUPTI sum {sum(ks.values()):6.2f}: {parts}",
                      flush=True)


if __name__ == "__main__":
    main()
