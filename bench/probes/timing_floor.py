"""What do_bench reports for tiny GPU work on this machine, against the kernels' own durations (CUPTI, through
torch.profiler): a one-element add, and W4A8's activation quantizers (the CUDA and the Triton one) at a few sizes.
Columns (us): do_bench eager | do_bench of a one-call CUDA graph | do_bench without the L2 flush (graph) | the
kernels' summed CUPTI duration a call. Usage (GPU machine): python3 bench/probes/timing_floor.py"""
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from gpu_quick import graph_time  # noqa: E402

from fourbit.kernels import w4a8 as kw  # noqa: E402
from fourbit.ops import w4a8  # noqa: E402


def us(fn, flush=True):
    if flush:
        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    ev[0].record()
    for _ in range(200):
        fn()
    ev[1].record()
    torch.cuda.synchronize()
    return ev[0].elapsed_time(ev[1]) * 1e3 / 200


def cupti_kernels(fn, n=20, before=None):
    """{kernel name (60 chars): CUPTI us a call} over n calls of fn, each after before() (its kernels listed too)."""
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            if before is not None:
                before()
            fn()
        torch.cuda.synchronize()
    return {e.key[:60]: e.device_time_total / n for e in prof.key_averages() if e.device_time_total > 0}


def cupti_us(fn, n=20):
    return sum(cupti_kernels(fn, n).values())


def graph_of(fn):
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def main():
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    t = torch.zeros(1, device="cuda")
    cases = [("add 1 element", lambda: t.add_(1))]
    for M, K in ((1, 4096), (256, 4096), (256, 8192), (1024, 8192)):
        x = torch.randn(M, K, device="cuda").bfloat16()
        cases.append((f"act CUDA {M}x{K}", lambda x=x: w4a8.quantize_act(x, perm=True)))
        cases.append((f"act Triton {M}x{K}", lambda x=x: kw.quantize_act(x, perm=True)))
    print("| work | eager | graph | graph, no flush | CUPTI kernels |\n|---|---|---|---|---|")
    for name, fn in cases:
        g = graph_of(fn)
        print(f"| {name} | {us(fn):.1f} | {us(g):.1f} | {us(g, flush=False):.1f} | {cupti_us(fn):.1f} |", flush=True)


if __name__ == "__main__":
    main()
