"""Probe: what the fused GEMM's per-process tuner measures and picks against each candidate's CUDA-graph time
(over weight copies that overflow L2). Usage: python3 bench/probes/tuner_pick.py"""
import sys

import torch

import fourbit
from fourbit import kernels  # noqa: F401
gemm = sys.modules["fourbit.kernels.gemm"]
from fourbit.kernels._launch import gpu_time  # noqa: E402
sys.path.insert(0, __file__.rsplit("/", 2)[0])
from gpu_quick import graph_time  # noqa: E402

dev = "cuda"
for N, K in ((4096, 4096), (8192, 8192)):
    R = max(2, int(2 * 50e6 // (N * K // 2)) + 1)
    ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(R)]
    for f in ("nf4", "int4"):
        qws = [fourbit.quantize(w, f) for w in ws]
        for M in (256, 512):
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            args = [q.op_args() for q in qws]
            mb = min(1 << (M - 1).bit_length(), 4096)
            for c in gemm._bucket_space(mb):
                run = lambda a, c=c: gemm.launch(x, *a, None, y, config=c)  # noqa: E731
                g = graph_time([lambda a=a: run(a) for a in args]) * 1e3
                tt = [gpu_time(lambda: run(args[0])) * 1e3 for _ in range(3)]
                print(f"{N}x{K} {f} M={M} {c}: graph {g:7.1f} us, tuner gpu_time {' '.join(f'{t:7.1f}' for t in tt)}")
            gemm._best.clear()
            kernels.linear(x, *args[0], None, out=y)
            print(f"  pick: {list(gemm._best.values())}", flush=True)
