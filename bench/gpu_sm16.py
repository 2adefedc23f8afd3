"""EXPERIMENT: the small-M GEMM against the GEMV at 8 < M <= 16 (FOURBIT_SM_MIN_M switches it at capture time)."""
import os

import torch

from fourbit.ops import _native_cuda as nc
from gpu_quick import graph_time
import fourbit
from fourbit.formats import PRESETS


def cuda_args(name, w):
    qw = fourbit.quantize(w.float().cpu(), PRESETS[name])
    return tuple(t_.cuda() if isinstance(t_, torch.Tensor) else t_ for t_ in qw.op_args())


dev = "cuda"
fmts = ("int4", "nf4", "nvfp4", "mxfp4")
print(f"{'shape':>11} {'M':>3} {'bf16':>6}" + "".join(f" {n + ' gemv':>10} {'sm':>6}" for n in fmts) + "   | M=1 gemv")
for N, K, R in [(4096, 4096, 12), (8192, 8192, 4), (28672, 8192, 2), (4096, 14336, 4), (14336, 4096, 4)]:
    w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) for _ in range(R)]
    qargs = {name: cuda_args(name, w) for name in fmts}
    copies = {name: [tuple(t_.clone() if isinstance(t_, torch.Tensor) else t_ for t_ in qargs[name])
                     for _ in range(R)] for name in fmts}
    m1 = {}
    for M in (1, 9, 16):
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
        tb = graph_time([lambda wi=wi: x @ wi.T for wi in ws]) * 1e3
        line = f"{N}x{K:<5} {M:>3} {tb:6.1f}"
        for name in fmts:
            ts = []
            for mn in ("16", "8"):
                os.environ["FOURBIT_SM_MIN_M"] = mn
                ts.append(graph_time([lambda a=a: nc.linear_out(x, *a, None, out) for a in copies[name]]) * 1e3)
            if M == 1:
                m1[name] = ts[0]
            line += f" {ts[0]:10.1f} {ts[1]:6.1f}"
        if M > 1:
            line += "   | " + " ".join(f"{n}:{m1[n]:.1f}" for n in fmts)
        print(line, flush=True)
