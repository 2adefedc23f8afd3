"""The CUDA W4A8 GEMM (csrc/cuda/gemm_w4a8.cu) alone and after the CUDA activation quantizer, with and without
programmatic dependent launch (after_act), against bf16 cuBLAS in the same run. Medians of do_bench with the L2
flushed, in us; the quantizer + GEMM pairs and the op are timed as CUDA graphs (no host time). A checksum of the GEMM's
output shows that after_act does not change it. Above fourbit.ops.w4a8.NATIVE_MAX_M the op is also timed through the
CUDA GEMM. Usage (GPU machine): python3 bench/probes/w8_gemm.py [--quick] [--shapes NxKxM,...]; FOURBIT_W8_BN (64 /
128 / 256) fixes the GEMM's x tile."""
import hashlib
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fourbit  # noqa: E402
from fourbit.kernels import w4a8 as kw  # noqa: E402
from fourbit.ops import _native_cuda as nc  # noqa: E402
from fourbit.ops import w4a8  # noqa: E402
from gpu_quick import graph_time  # noqa: E402

SHAPES = [(8192, 8192, 256), (4096, 4096, 256), (8192, 8192, 512), (8192, 8192, 1024), (28672, 8192, 256)]


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median") * 1e3


def digest(y):
    return hashlib.sha1(y.cpu().view(torch.int16).numpy().tobytes()).hexdigest()[:8]


def main():
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    shapes = SHAPES[:2] if "--quick" in sys.argv else SHAPES
    if "--shapes" in sys.argv:  # NxKxM,... (e.g. 8192x8192x4096)
        shapes = [tuple(int(v) for v in t.split("x")) for t in sys.argv[sys.argv.index("--shapes") + 1].split(",")]
    for N, K, M in shapes:
        gen = torch.Generator(device="cuda").manual_seed(0)
        w = torch.randn(N, K, device="cuda", generator=gen) * 0.02
        x = torch.randn(M, K, device="cuda", generator=gen).to(torch.bfloat16)
        wb = w.to(torch.bfloat16)
        cub = graph_time([lambda: x @ wb.T], bench)
        cells = [f"cuBLAS bf16 {cub:.1f}"]
        for name in ("int4", "mxfp4"):
            qd, sc, z, fmt, G = w4a8.w4a8_args(fourbit.quantize(w, name))
            if not w4a8.native_gemm(qd, sc, fmt, G):
                cells.append(f"{name} n/a")
                continue
            perm = kw.PERM_MXFP4 if fmt == "mxfp4" else kw.PERM_INT4
            xp, sp = w4a8.quantize_act(x, perm=perm)
            y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
            zz = z if z.numel() else None
            gemm = bench(lambda: nc.w4a8_linear_out(xp, sp, qd, sc, zz, G, None, y))
            h0 = digest(y)

            def pair(pdl):
                nc.w4a8_linear_out(*w4a8.quantize_act(x, perm=perm), qd, sc, zz, G, None, y, pdl)

            serial, pdl = graph_time([lambda: pair(False)], bench), graph_time([lambda: pair(True)], bench)
            h1 = digest(y)
            op = graph_time([lambda: torch.ops.fourbit.w4a8_linear(x, qd, sc, z, fmt, G, None)], bench)
            if M > w4a8.NATIVE_MAX_M:  # the op's other route, block-scaled cuBLAS, against the CUDA GEMM above
                lim, w4a8.NATIVE_MAX_M = w4a8.NATIVE_MAX_M, 1 << 30
                native = graph_time([lambda: torch.ops.fourbit.w4a8_linear(x, qd, sc, z, fmt, G, None)], bench)
                cells.append(f"{name}: op through the CUDA GEMM {native:.1f} = {cub / native:.2f}x")
                w4a8.NATIVE_MAX_M = lim
            cells.append(f"{name}: gemm {gemm:.1f}, act+gemm {serial:.1f} / pdl {pdl:.1f}, op {op:.1f} = "
                         f"{cub / op:.2f}x #{h0}{'' if h0 == h1 else ' PDL CHANGED IT #' + h1}")
        print(f"{N}x{K} M={M}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
