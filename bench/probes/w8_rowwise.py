"""mxfp4 W4A8 at large M: cuBLAS's row-wise scaled FP8 GEMM on weights folded to one factor a row
(kernels.w4a8.linear_rowwise) against the block-scaled one (linear_blockwise, 1x128 scales) and the CUDA FP8 GEMM,
bf16 cuBLAS in the same run. Medians of do_bench with the L2 flushed, us; the op also from a CUDA graph (no host time).
Prints which output dtypes torch's row-wise _scaled_mm takes, each part's time (activation quantize, the two weight
conversions, the two cuBLAS GEMMs, use_fast_accum on for reference) and the two outputs' largest difference.
Usage (GPU machine): python3 bench/probes/w8_rowwise.py [--shapes NxKxM,...]."""
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fourbit  # noqa: E402
from fourbit.kernels import w4a8 as kw  # noqa: E402
from fourbit.ops import w4a8  # noqa: E402
from gpu_quick import cli_list, graph_time  # noqa: E402

SHAPES = ["8192x8192x4096", "4096x4096x4096", "8192x8192x2048", "8192x8192x1024", "4096x4096x1024", "8192x8192x512"]


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median") * 1e3


def op_time(x, args, rowwise):
    """(eager us, graph us, output) of torch.ops.fourbit.w4a8_linear with linear_rowwise on or off."""
    os.environ["FOURBIT_W4A8_ROWWISE"] = "1" if rowwise else "0"
    f = lambda: torch.ops.fourbit.w4a8_linear(x, *args, None)  # noqa: E731
    y = f()
    return bench(f), graph_time([f], bench), y


def main():
    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        ok = kw._probe_scaled_mm(torch.ones(16, 1, device=dev), torch.ones(1, 16, device=dev), dt)
        print(f"row-wise _scaled_mm out {dt}: {ok}")
    rows = []
    for N, K, M in [tuple(int(v) for v in s.split("x")) for s in cli_list("--shapes", SHAPES)]:
        gen = torch.Generator(device=dev).manual_seed(0)
        w = torch.randn(N, K, device=dev, generator=gen) * 0.02
        x = torch.randn(M, K, device=dev, generator=gen).to(torch.bfloat16)
        wb = w.to(torch.bfloat16)
        r = {"case": f"{N}x{K} M={M}", "bf16": bench(lambda: x @ wb.T)}
        qd, sc, z, fmt, G = w4a8.w4a8_args(fourbit.quantize(w, "mxfp4"))
        assert kw.fold_ok(qd, sc, window=K, span=kw.ROW_SPAN)
        x8, xs = w4a8.quantize_act(x)
        r["act"] = bench(lambda: w4a8.quantize_act(x))
        r["conv_rows"] = bench(lambda: kw.weight_fp8_rows(qd, sc))
        w8r, fr = kw.weight_fp8_rows(qd, sc)
        w8b, fb = kw.weight_fp8(qd, sc, z, kw.FMT_MXFP4, G, True)
        y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
        r["gemm_rows"] = bench(lambda: kw._rowwise_gemm(x8, xs, w8r, fr, None, y))
        r["gemm_rows_fast"] = bench(lambda: torch._scaled_mm(x8, w8r.t(), scale_a=xs[:, None], scale_b=fr[None, :],
                                                             out_dtype=torch.bfloat16, use_fast_accum=True))
        r["gemm_blk"] = bench(lambda: kw._blockwise_gemm(x8, xs, w8b, fb, None, y, M - M % 16))
        args = (qd, sc, z, fmt, G)
        r["op_blk"], r["op_blk_g"], yb = op_time(x, args, False)
        r["op_rows"], r["op_rows_g"], yr = op_time(x, args, True)
        r["maxdiff"] = (yr.float() - yb.float()).abs().max().item() / yb.float().abs().max().item()
        r["native"] = w4a8.native_gemm(qd, sc, fmt, G, M)
        print(r, flush=True)
        rows.append(r)
    print("\n| case | bf16 | act q | conv rows / blk | GEMM rows (fast) / blk | op rows eager / graph | op before eager / "
          "graph | x bf16 rows / before (graph) | max diff / max |y| |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["bf16"]
        print(f"| {r['case']} | {b:.1f} | {r['act']:.1f} | {r['conv_rows']:.1f} / {r['conv_blk']:.1f} | "
              f"{r['gemm_rows']:.1f} ({r['gemm_rows_fast']:.1f}) / {r['gemm_blk']:.1f} | {r['op_rows']:.1f} / "
              f"{r['op_rows_g']:.1f} | {r['op_blk']:.1f} / {r['op_blk_g']:.1f}"
              f"{' (CUDA GEMM)' if r['native'] else ''} "
              f"| {b / r['op_rows_g']:.2f}x / {b / r['op_blk_g']:.2f}x | {r['maxdiff']:.2e} |")


if __name__ == "__main__":
    main()
