"""A/B of the CUDA W4A8 GEMM's multicast clusters (csrc/cuda/gemm_w4a8.cu): run once per FOURBIT_W8_MC (1: none, 2:
x tiles shared by weight-tile pairs, 4: and weight tiles by x-tile pairs); prints do_bench medians (L2 flushed) of
the GEMM alone and a checksum of its output, which must not depend on the mode (same per-CTA accumulation order).
Usage (GPU machine): for m in 1 2 4; do FOURBIT_W8_MC=$m python3 bench/probes/w8_multicast.py; done"""
import hashlib
import os

import torch
import triton

import fourbit
from fourbit.ops import _native_cuda as nc
from fourbit.ops import w4a8
from fourbit.kernels import w4a8 as kw

SHAPES = [(8192, 8192, 256), (4096, 4096, 256), (8192, 8192, 512), (8192, 8192, 1024), (4096, 4096, 1024),
          (28672, 8192, 256), (8192, 8192, 4096)]


def main():
    mode = os.environ.get("FOURBIT_W8_MC", "default")
    for N, K, M in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(0)
        w = torch.randn(N, K, device="cuda", generator=gen) * 0.02
        x = torch.randn(M, K, device="cuda", generator=gen).to(torch.bfloat16)
        cells = []
        for name in ("int4", "mxfp4"):
            qd, sc, z, fmt, G = w4a8.w4a8_args(fourbit.quantize(w, name))
            if not w4a8.native_gemm(qd, sc, fmt, G):
                cells.append(f"{name} n/a")
                continue
            xp, sp = w4a8.quantize_act(x, perm=kw.PERM_MXFP4 if fmt == "mxfp4" else kw.PERM_INT4)
            y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
            zz = z if z.numel() else None
            nc.w4a8_linear_out(xp, sp, qd, sc, zz, G, None, y)
            h = hashlib.sha1(y.cpu().view(torch.int16).numpy().tobytes()).hexdigest()[:8]
            t = triton.testing.do_bench(lambda: nc.w4a8_linear_out(xp, sp, qd, sc, zz, G, None, y), warmup=25,
                                        rep=200, return_mode="median") * 1e3
            cells.append(f"{name} {t:6.1f} us ({2 * M * N * K / t / 1e6:5.0f} TF/s) #{h}")
        print(f"MC={mode} {N}x{K} M={M}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
