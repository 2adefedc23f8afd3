"""W4A8 on the GPU: median us of triton.testing.do_bench(fn, warmup=25, rep=100) (L2 flushed between runs) for
  bf16 cuBLAS x @ w.T | torch._scaled_mm FP8 row-wise (reference point, GEMM only) | fourbit W4A8 total (activation
  quantize kernel + GEMM) and GEMM only, int4 g128 and mxfp4 through the CUDA FP8 GEMM (int4/cuda, mxfp4/cuda:
  csrc/cuda/gemm_w4a8.cu, which the op takes up to NATIVE_MAX_M) and the Triton kernels (mxfp4: folded scales and one
  dot per 32-K group), at
  8192x8192 for M = 256, 1024, 4096 and 4096x4096 at M = 256 and 1024 (--quick: the two M = 256 cases).
Usage (GPU machine): PYTHONUNBUFFERED=1 python3 bench/gpu_w4a8.py [--quick | --profile N,K,M]. Prints the fused
kernel's config (kw.pick) per case (M >= 512 runs the block-scaled cuBLAS path instead) and a table last; the speedups
are against bf16 cuBLAS of the same run.

Result (H100 80GB HBM3, torch 2.11.0+cu130, Triton 3.6.0, 2026-11-26; README.md "W4A8" discusses it):
| N x K, M | cuBLAS bf16 | `_scaled_mm` FP8 row-wise | act quantize | W4A8 int4 g128: total (GEMM) | W4A8 mxfp4 folded | W4A8 mxfp4 per-32 group |
|---|---|---|---|---|---|---|
| 8192^2, 256 | 65.2 | 41.5 (1.57x) | 10.8 | 104.6 (96.9) = 0.62x (0.67x) | 106.5 (97.8) = 0.61x (0.67x) | 148.5 (137.1) = 0.44x |
| 8192^2, 1024 | 192.1 | 117.0 (1.64x) | 24.2 | 347.9 (321.4) = 0.55x (0.60x) | 359.3 (335.0) = 0.53x (0.57x) | 477.3 (457.6) = 0.40x |
| 8192^2, 4096 | 785.5 | 451.3 (1.74x) | 76.5 | 1303.6 (1255.0) = 0.60x (0.63x) | 1401.2 (1320.2) = 0.56x (0.59x) | 1802.2 (1754.7) = 0.44x |
| 4096^2, 1024 | 48.3 | 32.5 (1.48x) | 14.9 | 103.0 (87.5) = 0.47x (0.55x) | 107.4 (94.3) = 0.45x (0.51x) | 154.4 (138.8) = 0.31x |
The 2026-11-27 run with the int4/cuda column (same card): README.md, section W4A8.
"""
import sys

import torch
import triton

import fourbit
from fourbit.kernels import w4a8 as kw
from fourbit.ops import _native_cuda as nc, w4a8

from gpu_quick import graph_time  # noqa: E402 (bench/ is the script's folder)

SHAPES = [(8192, 8192, 256), (4096, 4096, 256), (8192, 8192, 1024), (8192, 8192, 4096), (4096, 4096, 1024)]


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3


def picked(M):
    return "/".join(map(str, kw.pick(M)))


def main():
    quick = "--quick" in sys.argv
    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    rows = []
    for N, K, M in SHAPES[:2] if quick else SHAPES:
        gen = torch.Generator(device=dev).manual_seed(0)
        w = torch.randn(N, K, device=dev, generator=gen) * 0.02
        x = torch.randn(M, K, device=dev, generator=gen).to(torch.bfloat16)
        wb = w.to(torch.bfloat16)
        t_cublas = bench(lambda: x @ wb.T)
        # FP8 row-wise reference: per-row scales of x, per-column scales of w
        xs = x.float().abs().amax(1, keepdim=True) / 448
        ws = w.abs().amax(1, keepdim=True) / 448
        x8 = (x.float() / xs).to(torch.float8_e4m3fn)
        w8 = (w / ws).to(torch.float8_e4m3fn)
        t_scaled = bench(lambda: torch._scaled_mm(x8, w8.T, scale_a=xs, scale_b=ws.T, out_dtype=torch.bfloat16))
        row = {"shape": f"{N}x{K} M={M}", "cublas": t_cublas, "scaled_mm": t_scaled}
        xq, sq = kw.quantize_act(x)
        row["actq"] = bench(lambda: kw.quantize_act(x))  # the Triton quantizer
        row["actq_cuda"] = bench(lambda: w4a8.quantize_act(x, perm=True)) if w4a8.act_cuda(x) else float("nan")
        # the same calls as one-call CUDA graphs: GPU time without this host's per-call Python cost
        row["actq_g"] = graph_time([lambda: kw.quantize_act(x)], bench)
        row["actq_cuda_g"] = graph_time([lambda: w4a8.quantize_act(x, perm=True)], bench)
        for name in ("int4", "mxfp4"):
            qw = fourbit.quantize(w, name)
            qd, sc, z, fmt, G = w4a8.w4a8_args(qw)
            fid = kw.FMT_MXFP4 if fmt == "mxfp4" else kw.FMT_INT4_ASYM
            y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            folds = (True, False) if fmt == "mxfp4" else (False,)
            for fold in folds:
                if fold and not kw.fold_ok(qd, sc):
                    print(f"{row['shape']} {name}: folding not exact for these weights, skipped")
                    continue
                tag = name + ("" if fmt != "mxfp4" else ("/fold" if fold else "/g32"))
                kw.linear(xq, sq, qd, sc, z, fid, G, None, y, fold=fold)
                cfg = picked(M)
                g = bench(lambda: kw.linear(xq, sq, qd, sc, z, fid, G, None, y, fold=fold))
                tot = bench(lambda: kw.linear(*w4a8.quantize_act(x), qd, sc, z, fid, G, None, y, fold=fold))
                ref = x @ qw.dequantize(torch.bfloat16).T  # W4A16 math (cuBLAS), a sanity check of the result
                rel = ((y.float() - ref.float()).norm() / ref.float().norm()).item()
                print(f"{row['shape']} {tag}: gemm {g:.1f} us, total {tot:.1f} us, pick {cfg}; "
                      f"rel diff vs W4A16 {rel:.4f}", flush=True)
                row[tag] = (tot, g)
            if w4a8.native_gemm(qd, sc, fmt, G):  # the CUDA FP8 GEMM (csrc/cuda/gemm_w4a8.cu), which the op takes
                perm = kw.PERM_MXFP4 if fmt == "mxfp4" else kw.PERM_INT4
                xp, sp = w4a8.quantize_act(x, perm=perm)
                zz = z if z.numel() else None
                g = bench(lambda: nc.w4a8_linear_out(xp, sp, qd, sc, zz, G, None, y))
                tot = bench(lambda: nc.w4a8_linear_out(*w4a8.quantize_act(x, perm=perm), qd, sc, zz, G, None, y))
                op = bench(lambda: torch.ops.fourbit.w4a8_linear(x, qd, sc, z, fmt, G, None))  # eager, as users call it
                row[name + "/op"] = (op, graph_time([lambda: torch.ops.fourbit.w4a8_linear(x, qd, sc, z, fmt, G, None)],
                                                    bench))
                rel = ((y.float() - ref.float()).norm() / ref.float().norm()).item()
                route = "cuda" if w4a8.native_gemm(qd, sc, fmt, G, M) else "triton / cuBLAS"
                print(f"{row['shape']} {name}/cuda: gemm {g:.1f} us, total {tot:.1f} us, op {op:.1f} us (the op takes "
                      f"{route}); rel diff vs W4A16 {rel:.4f}", flush=True)
                row[name + "/cuda"] = (tot, g)
                row[name + "/cuda_g"] = graph_time([lambda: nc.w4a8_linear_out(*w4a8.quantize_act(x, perm=perm), qd, sc,
                                                                               zz, G, None, y)], bench)
        rows.append(row)
        print(row, flush=True)
    tags = ["int4/cuda", "int4", "mxfp4/cuda", "mxfp4/fold", "mxfp4/g32"]
    print("\n| shape | cuBLAS bf16 | _scaled_mm fp8 | act-quant Triton / CUDA (graph: Triton / CUDA) | op int4 eager / "
          "graph | op mxfp4 eager / graph | " + " | ".join(f"W4A8 {t} total (GEMM only)" for t in tags) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(tags))
    for r in rows:
        c = r["cublas"]
        cells = []
        for t in tags:
            if t in r:
                tot, g = r[t]
                cells.append(f"{tot:.1f} ({g:.1f}) = {c / tot:.2f}x ({c / g:.2f}x)")
            else:
                cells.append("-")
        ops = []
        for name in ("int4", "mxfp4"):
            if name + "/op" in r:
                e, gr = r[name + "/op"]
                ops.append(f"{e:.1f} / {gr:.1f} = {c / e:.2f}x / {c / gr:.2f}x (CUDA GEMM route from a graph: "
                           f"{r[name + '/cuda_g']:.1f})")
            else:
                ops.append("-")
        print(f"| {r['shape']} | {c:.1f} | {r['scaled_mm']:.1f} = {c / r['scaled_mm']:.2f}x | {r['actq']:.1f} / "
              f"{r['actq_cuda']:.1f} ({r['actq_g']:.1f} / {r['actq_cuda_g']:.1f}) | " + " | ".join(ops + cells) + " |")
    print("(us, median of do_bench; Nx = speedup vs bf16 cuBLAS; total = activation quantize + GEMM, with the quantizer "
          "the op takes (w4a8.act_cuda); op = the whole torch.ops.fourbit.w4a8_linear call; /cuda: the CUDA FP8 GEMM, "
          "called directly)")


def profile(case):
    """One CUDA W4A8 GEMM call (int4 g128) of N,K,M after a warm-up, for ncu (scripts/gpu_check.sh w4a8)."""
    N, K, M = (int(v) for v in case.split(","))
    qw = fourbit.quantize(torch.randn(N, K, device="cuda") * 0.02, "int4")
    qd, sc, z, fmt, G = w4a8.w4a8_args(qw)
    xp, sp = w4a8.quantize_act(torch.randn(M, K, device="cuda").bfloat16(), perm=kw.PERM_INT4)
    y = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
    for _ in range(2):
        nc.w4a8_linear_out(xp, sp, qd, sc, z if z.numel() else None, G, None, y)
    torch.cuda.synchronize()


if __name__ == "__main__":
    if "--profile" in sys.argv:
        profile(sys.argv[sys.argv.index("--profile") + 1])
    else:
        main()
