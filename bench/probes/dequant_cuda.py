"""The CUDA dequantize (csrc/cuda/dequant.cu) against the Triton one (kernels/dequantize.py), and the dequantize +
cuBLAS route with each: one-call CUDA graphs under do_bench (L2 flushed), us; every CUDA output checked bit-exact
against Triton's (and NaN-free random weights, so torch.equal is the check). % of copy counts codes + scales read
and the output written, against a 256 MB copy timed the same way.
--route: also the register-A GEMM against CUDA dequantize + cuBLAS at M = 1024 / 2048 (ops/cuda.py RS_MAX_M).
Usage (GPU machine, fourbit built): python3 bench/probes/dequant_cuda.py [--quick] [--route]"""
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fourbit  # noqa: E402
from fourbit.ops import _native_cuda  # noqa: E402
from timing_floor import graph_of  # noqa: E402

FORMATS = ("int4", "nf4", "nvfp4", "mxfp4")


def us(fn):
    return triton.testing.do_bench(graph_of(fn), return_mode="median") * 1e3


def main(quick=False, route=False):
    from fourbit import kernels  # noqa: PLC0415
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    a, b = torch.empty(1 << 28, dtype=torch.uint8, device="cuda"), torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    copy = 2 * a.numel() / us(lambda: b.copy_(a)) / 1e6  # TB/s
    del a, b
    print(f"copy {copy:.2f} TB/s")
    shapes = ((4096, 4096), (8192, 8192)) if quick else ((4096, 4096), (8192, 8192), (14336, 4096), (4096, 14336))
    rows = []
    for N, K in shapes:
        w = torch.randn(N, K, device="cuda") * 0.02
        for f in FORMATS:
            args = fourbit.quantize(w, f).op_args()
            nb = sum(t.numel() * t.element_size() for t in args[:4] if isinstance(t, torch.Tensor))
            for dt in (torch.bfloat16,) if (quick or (N, K) != (8192, 8192)) else (torch.bfloat16, torch.float16,
                                                                                   torch.float32):
                ref = kernels.dequantize(*args, dt)
                got = _native_cuda.dequantize(*args, dt)
                if got is None:
                    print(f"{N}x{K} {f} {dt}: not taken by the CUDA kernel")
                    continue
                ok = torch.equal(got.view(torch.uint8), ref.view(torch.uint8))
                tt = us(lambda: kernels.dequantize(*args, dt))
                tc = us(lambda: _native_cuda.dequantize(*args, dt))
                by = nb + N * K * dt.itemsize
                rows.append((f"{N}x{K}", f, str(dt).split(".")[-1], tt, tc, 100 * by / tt / 1e6 / copy,
                             100 * by / tc / 1e6 / copy, "" if ok else "MISMATCH"))
                print(*rows[-1], flush=True)
    print("\ndequantize + cuBLAS (bf16), us: Triton dequantize / CUDA dequantize / bf16 cuBLAS alone")
    for N, K, M in ((4096, 4096, 4096), (8192, 8192, 1024), (8192, 8192, 4096)):
        w = torch.randn(N, K, device="cuda") * 0.02
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        wb = w.bfloat16()
        y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        tb = us(lambda: torch.mm(x, wb.t(), out=y))
        for f in FORMATS:
            args = fourbit.quantize(w, f).op_args()
            t0 = us(lambda: torch.mm(x, kernels.dequantize(*args, torch.bfloat16).t(), out=y))
            t1 = us(lambda: torch.mm(x, _native_cuda.dequantize(*args, torch.bfloat16).t(), out=y))
            print(f"{N}x{K} M={M} {f}: {t0:.1f} / {t1:.1f} / {tb:.1f} ({tb / t0:.3f}x -> {tb / t1:.3f}x bf16)",
                  flush=True)
    if route:
        print("\nthe register-A GEMM (RS_MAX_M's window) against CUDA dequantize + cuBLAS, us (bf16 cuBLAS)")
        for N, K in ((4096, 4096), (8192, 8192)):
            w = torch.randn(N, K, device="cuda") * 0.02
            for M in (1024, 2048):
                x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
                y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
                wb = w.bfloat16()
                tb = us(lambda: torch.mm(x, wb.t(), out=y))
                for f in FORMATS:
                    args = fourbit.quantize(w, f).op_args()
                    if not _native_cuda.rs_takes(x, *args[:3], args[4], args[5]):
                        continue
                    trs = us(lambda: _native_cuda.linear_out(x, *args, None, y, rs=True))
                    tdq = us(lambda: torch.mm(x, _native_cuda.dequantize(*args, torch.bfloat16).t(), out=y))
                    print(f"{N}x{K} M={M} {f}: rs {trs:.1f} / dequant+mm {tdq:.1f} ({tb:.1f})", flush=True)
    print("\nshape format dtype: Triton us / CUDA us (% of copy)")
    for r in rows:
        print(f"{r[0]:>10} {r[1]:>5} {r[2]:>8}: {r[3]:7.1f} / {r[4]:7.1f} us ({r[5]:3.0f}% -> {r[6]:3.0f}%) {r[7]}")


if __name__ == "__main__":
    main("--quick" in sys.argv[1:], "--route" in sys.argv[1:])
