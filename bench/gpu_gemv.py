"""Timing of the CUDA GEMV vs bf16 x @ w.T on the GPU machine: python3 bench/gpu_gemv.py

Each variant is captured in a CUDA graph of R calls over R different weight copies (R * weight bytes > L2, so no call
finds its weight in L2), and the graph replay is timed with triton.testing.do_bench (median, L2 flushed before each
replay); the per-call time is that / R. This takes the Python launcher overhead (tens of us) out of the number,
which otherwise dominates at these sizes. Random data."""
import sys

import torch
import triton

from fourbit.ops import _native_cuda as nc
from gpu_quick import cuda_args, graph_time, weight_copies  # bench/ is on sys.path when this script runs

torch.manual_seed(0)
dev = "cuda"

if "--profile" in sys.argv:
    # Driver for ncu: one call per (shape, M, format), no warm-up (ncu replays each kernel itself), e.g.
    #   ncu --set full -k regex:gemv -o prof python3 bench/gpu_gemv.py --profile
    for N, K, M, name in [(8192, 8192, 1, "int4"), (8192, 8192, 16, "int4"), (4096, 4096, 1, "int4"),
                          (8192, 8192, 1, "nf4"), (8192, 8192, 16, "nvfp4")]:
        args = cuda_args(name, torch.randn(N, K))
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
        nc.linear_out(x, *args, None, out)
        torch.cuda.synchronize()
        print("profiled", N, K, M, name)
    sys.exit(0)
print(torch.cuda.get_device_name(), "w4a4 atom:", nc.w4a4_atom())
n = 1 << 28
a = torch.empty(n, dtype=torch.uint8, device=dev)
b = torch.empty_like(a)
t = triton.testing.do_bench(lambda: b.copy_(a), warmup=25, rep=100, return_mode="median")
copy_bw = 2 * n / (t * 1e-3) / 1e12
print(f"copy: {copy_bw:.2f} TB/s (read + write)")


rows = []
for N, K, R in [(4096, 4096, 12), (8192, 8192, 4), (4096, 14336, 4)]:
    w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) for _ in range(R)]
    qargs = {name: cuda_args(name, w) for name in ("int4", "nf4", "nvfp4", "mxfp4")}  # quantized once per shape (CPU)
    for M in (1, 16):
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        tb = graph_time([lambda wi=wi: x @ wi.T for wi in ws])
        rows.append((f"{N}x{K}", M, "bf16 cuBLAS", tb * 1e3, ""))
        for name in ("int4", "nf4", "nvfp4", "mxfp4"):
            args = qargs[name]
            copies = weight_copies(args, R)
            out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            ms = graph_time([lambda a=a: nc.linear_out(x, *a, None, out) for a in copies])
            nbytes = sum(t_.numel() * t_.element_size() for t_ in args[:4] if isinstance(t_, torch.Tensor))
            bw = nbytes / (ms * 1e-3) / 1e12
            rows.append((f"{N}x{K}", M, name, ms * 1e3, f"{bw:.2f} TB/s = {100 * bw / copy_bw:.0f}% of copy"))
print(f"{'shape':>10} {'M':>3} {'kernel':>12} {'us':>8}  weight+scale bandwidth")
for r in rows:
    print(f"{r[0]:>10} {r[1]:>3} {r[2]:>12} {r[3]:8.1f}  {r[4]}")
