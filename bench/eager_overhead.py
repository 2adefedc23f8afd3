"""Where an eager fourbit.linear call spends its host time (the part do_bench cannot hide when the host is slower
than the GPU): per case, host us per call without sync and do_bench's eager median for the public call (eager fast
path with replays, fourbit.ops.eager) and for the registered op (torch.library dispatch, JIT launches), against the
CUDA-graph replay of the same kernels; then a cProfile of the public call. Run: python3 bench/eager_overhead.py
"""
import cProfile
import pstats
import time

import torch
import triton

import fourbit
from fourbit.ops import w4a8
from gpu_quick import graph_time

dev = "cuda"
CASES = [((4096, 4096), M, f) for M in (1, 16, 64, 256, 1024) for f in ("int4", "nf4")] + \
    [((8192, 8192), M, "int4") for M in (1, 64, 256, 1024)] + \
    [((8192, 8192), M, f) for M in (256, 1024) for f in ("int4+fp8", "mxfp4+fp8")] + [((4096, 4096), 256, "int4+fp8")]


def host_us(fn, n=200):
    """Host microseconds per call, no sync inside the loop (the GPU queue absorbs the kernels)."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t = (time.perf_counter() - t0) / n
    torch.cuda.synchronize()
    return t * 1e6


def main():
    print("| N x K | M | fmt | host public | host op | do_bench public | do_bench op | graph | (us; +fp8: W4A8)")
    rows = []
    for (N, K), M, f in CASES:
        w8 = f.endswith("+fp8")  # W4A8: act="fp8_e4m3"
        qw = fourbit.quantize(torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02, f.removesuffix("+fp8"))
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        if w8:
            args = w4a8.w4a8_args(qw)
            pub = lambda: fourbit.linear(x, qw, act="fp8_e4m3")  # noqa: E731
            op = lambda: torch.ops.fourbit.w4a8_linear(x, *args, None)  # noqa: E731
            graphed = op
        else:
            args = qw.op_args()
            pub = lambda: fourbit.linear(x, qw)  # noqa: E731
            op = lambda: torch.ops.fourbit.linear(x, *args, None)  # noqa: E731
            out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            graphed = lambda: torch.ops.fourbit.linear_out(x, *args, None, out)  # noqa: E731
        hp, ho = host_us(pub), host_us(op)
        ep = triton.testing.do_bench(pub, warmup=25, rep=100, return_mode="median") * 1e3
        eo = triton.testing.do_bench(op, warmup=25, rep=100, return_mode="median") * 1e3
        g = graph_time([graphed]) * 1e3
        rows.append(((N, K), M, f, hp, ho, ep, eo, g))
        print(f"| {N}x{K} | {M} | {f} | {hp:.1f} | {ho:.1f} | {ep:.1f} | {eo:.1f} | {g:.1f} |", flush=True)
    pr = cProfile.Profile()
    qw = fourbit.quantize(torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16), "int4")
    x = torch.randn(256, 4096, device=dev, dtype=torch.bfloat16)
    fourbit.linear(x, qw)
    pr.enable()
    for _ in range(200):
        fourbit.linear(x, qw)
    torch.cuda.synchronize()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()
