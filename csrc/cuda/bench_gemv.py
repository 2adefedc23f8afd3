"""Timing of the CUDA GEMV (median of triton.testing.do_bench, L2 flushed, random data) vs bf16 x @ w.T, and the
W4A4 path; run on the GPU machine: python3 csrc/cuda/bench_gemv.py"""
import torch
import triton

import fourbit
from fourbit.formats import PRESETS
from fourbit.ops import _native_cuda as nc

torch.manual_seed(0)
dev = "cuda"
print(torch.cuda.get_device_name(), "w4a4 atom:", nc.w4a4_atom())
n = 1 << 28
a = torch.empty(n, dtype=torch.uint8, device=dev)
b = torch.empty_like(a)
t = triton.testing.do_bench(lambda: b.copy_(a), warmup=25, rep=100, return_mode="median")
copy_bw = 2 * n / (t * 1e-3) / 1e12
print(f"copy: {copy_bw:.2f} TB/s (read + write)")
rows = []
for N, K in [(4096, 4096), (8192, 8192)]:
    w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    for M in (1, 16):
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        tb = triton.testing.do_bench(lambda: x @ w.T, warmup=25, rep=100, return_mode="median")
        rows.append((f"{N}x{K}", M, "bf16 cuBLAS", tb * 1e3, ""))
        for name in ("int4", "nf4", "nvfp4", "mxfp4"):
            qw = fourbit.quantize(w.float().cpu(), PRESETS[name])
            args = tuple(t_.cuda() if isinstance(t_, torch.Tensor) else t_ for t_ in qw.op_args())
            out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            ms = triton.testing.do_bench(lambda: nc.linear_out(x, *args, None, out), warmup=25, rep=100,
                                         return_mode="median")
            nbytes = sum(t_.numel() * t_.element_size() for t_ in args[:4] if isinstance(t_, torch.Tensor))
            bw = nbytes / (ms * 1e-3) / 1e12
            rows.append((f"{N}x{K}", M, name, ms * 1e3, f"{bw:.2f} TB/s = {100 * bw / copy_bw:.0f}% of copy"))
print(f"{'shape':>10} {'M':>3} {'kernel':>12} {'us':>8}  weight+scale bandwidth")
for r in rows:
    print(f"{r[0]:>10} {r[1]:>3} {r[2]:>12} {r[3]:8.1f}  {r[4]}")
