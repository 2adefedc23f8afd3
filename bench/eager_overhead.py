"""Where an eager fourbit.linear call spends its host time (the part do_bench cannot hide when it syncs or when the
host is slower than the kernel): host us per call without sync, do_bench eager vs CUDA-graph replay, and a cProfile
of the slowest case. Run: python3 bench/eager_overhead.py
"""
import cProfile
import pstats
import time

import torch
import triton

import fourbit
from gpu_quick import graph_time

dev = "cuda"


def main():
    for (N, K), M, f in [((4096, 4096), 1, "int4"), ((4096, 4096), 1, "mxfp4"), ((4096, 4096), 256, "int4"),
                         ((4096, 4096), 256, "mxfp4"), ((8192, 8192), 1, "nf4"), ((4096, 4096), 64, "int4")]:
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02
        qw = fourbit.quantize(w, f)
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        fn = lambda: fourbit.linear(x, qw)  # noqa: E731
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(200):
            fn()
        host = (time.perf_counter() - t0) / 200
        torch.cuda.synchronize()
        eager = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
        args = qw.op_args()
        out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
        g = graph_time([lambda: torch.ops.fourbit.linear_out(x, *args, None, out)])
        print(f"{N}x{K} M={M} {f}: host {host * 1e6:.1f} us/call, do_bench eager {eager * 1e3:.1f} us, "
              f"graph {g * 1e3:.1f} us")
    pr = cProfile.Profile()
    w = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
    qw = fourbit.quantize(w, "int4")
    x = torch.randn(256, 4096, device=dev, dtype=torch.bfloat16)
    pr.enable()
    for _ in range(200):
        fourbit.linear(x, qw)
    torch.cuda.synchronize()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    main()
