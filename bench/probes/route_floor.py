"""Three questions in one GPU call (medians in us, one card, one run):
A. What does the L2 flush cost a read-bound kernel? do_bench flushes by zeroing 256 MB, which leaves the L2 full of
   dirty lines that the timed kernel's reads must write back first. A pure 32 MB read (torch.sum) and the M = 1 GEMV,
   each timed after that flush, after a read-only flush (the L2 then holds clean lines), and back to back without a
   flush over rotating copies (graph), against the device-to-device copy of 1 GB. (bench/probes/read_method.py and
   bench/read_floor.cu, 2026-11-28, answer it at the kernel level: after the flush a 33.6 MB read is as fast as back to back;
   what do_bench adds is ~3-4 us an eager call.)
B. Should the register-A wgmma GEMM (gemm_rs) take M > 1024 from dequantize + cuBLAS? Both routes as CUDA graphs over
   3 weight copies, against bf16 cuBLAS.
C. Where the time goes at the near misses (CUPTI kernel durations a call): 4096^2 M = 64 (gemm_rs + split-K reduce),
   M = 4096 (dequantize + cuBLAS).
D. Should the W4A8 op's CUDA FP8 GEMM (csrc/cuda/gemm_w4a8.cu) take M >= 1024 from the block-scaled cuBLAS route?
   Both routes (w4a8.NATIVE_MAX_M) as CUDA graphs of 3 calls over 3 weight copies, against bf16 cuBLAS.
Usage (GPU machine): python3 bench/probes/route_floor.py [A] [B] [C] [D]"""
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # bench/
import fourbit  # noqa: E402
from fourbit.ops import cuda as route  # noqa: E402
import read_floor  # noqa: E402
from gpu_quick import graph_time  # noqa: E402
from timing_floor import cupti_kernels, graph_of as one_graph  # noqa: E402 (bench/probes/, this script's folder)

dev = "cuda"
FMTS = ("int4", "nf4", "nvfp4", "mxfp4")
_buf = {}  # the flush buffers, made on first use (gemv_ab.py imports this module and never flushes)


def _flush_buf(name, numel, dtype):  # 256 MB, do_bench's flush size
    if name not in _buf:
        _buf[name] = torch.empty(numel, dtype=dtype, device=dev)
    return _buf[name]


def timed(fn, flush, n=100):
    """Median event time of fn (us) with flush() before each call; events made up front, as do_bench does."""
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n + 10)]
    for a, b in ev:
        flush()
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    return sorted(a.elapsed_time(b) for a, b in ev[10:])[n // 2] * 1e3


def flush_dirty():
    _flush_buf("dirty", 1 << 28, torch.uint8).zero_()  # do_bench's flush


def flush_clean():
    _flush_buf("clean", 1 << 26, torch.float32).sum()  # reads 256 MB: the L2 ends up full of clean lines


def back_to_back(fns, reps=50):
    """us a call, fns replayed back to back from one graph, no flush (the copies rotate past the L2)."""
    return graph_time(fns, lambda f: timed(f, lambda: None, reps) * 1e-3) * 1e3


def part_a():
    n = 1 << 30
    a, b = torch.empty(n, dtype=torch.uint8, device=dev), torch.empty(n, dtype=torch.uint8, device=dev)
    copy = 2 * n / triton.testing.do_bench(lambda: b.copy_(a), return_mode="median") / 1e9
    del a, b
    print(f"\nA. copy 1 GB: {copy:.2f} TB/s (read + write); one-call graphs timed after do_bench's zero flush, after "
          "a read-only flush, and back to back over 3 copies without a flush")
    print("| work | MB read | zero flush | read flush | back to back | % of copy (zero / read / b2b) |\n"
          "|---|---|---|---|---|---|")
    for N, K in ((8192, 8192), (28672, 8192), (4096, 4096)):
        ws = [torch.randint(-2**31, 2**31 - 1, (N * K // 8,), device=dev, dtype=torch.int32) for _ in range(3)]
        cases = [(f"read x{m}", ws[0].numel() * 4, [read_floor.read_fn(t, m) for t in ws]) for m in (2, 4, 8)]
        cases.append(("torch.sum", ws[0].numel() * 4, [lambda t=t: t.view(torch.float32).sum() for t in ws]))
        w = torch.randn(N, K, device=dev) * 0.02
        x = torch.randn(1, K, device=dev, dtype=torch.bfloat16)
        out = torch.empty(1, N, device=dev, dtype=torch.bfloat16)
        for f in FMTS:
            qs = [fourbit.quantize(w if i == 0 else torch.randn_like(w) * 0.02, f) for i in range(3)]
            cases.append((f"GEMV {f}", qs[0].nbytes,
                          [lambda a_=q.op_args(): torch.ops.fourbit.linear_out(x, *a_, None, out) for q in qs]))
        for name, nb, fns in cases:
            g = one_graph(fns[0])
            z = triton.testing.do_bench(g, warmup=25, rep=100, return_mode="median") * 1e3
            r, bb = timed(g, flush_clean), back_to_back(fns)
            pc = lambda t: 100 * nb / t / 1e6 / copy  # noqa: E731
            print(f"| {name} {N}x{K} | {nb / 1e6:.1f} | {z:.1f} | {r:.1f} | {bb:.1f} | "
                  f"{pc(z):.0f} / {pc(r):.0f} / {pc(bb):.0f} |", flush=True)
        del ws, w, cases
        torch.cuda.empty_cache()


def graph_us(fns):
    return graph_time(fns) * 1e3


def part_b():
    print("\nB. M > 1024: dequantize + cuBLAS against gemm_rs (CUDA graph us over 3 weight copies; x bf16 = bf16 / it)")
    print("| shape | M | bf16 | " + " | ".join(f"{f} dq / rs" for f in FMTS) + " |\n|---|---|---|" + "---|" * 4)
    rs_max = route.RS_MAX_M
    for (N, K), ms in (((4096, 4096), (1024, 2048, 4096)), ((8192, 8192), (1024, 2048, 4096))):
        w = torch.randn(N, K, device=dev) * 0.02
        wb = w.to(torch.bfloat16)
        qs = {f: [fourbit.quantize(w if i == 0 else torch.randn_like(w) * 0.02, f) for i in range(3)] for f in FMTS}
        for M in ms:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            t16 = graph_us([lambda: torch.mm(x, wb.t(), out=out)] * 3)
            cells = []
            for f in FMTS:
                fns = [lambda a_=q.op_args(): torch.ops.fourbit.linear_out(x, *a_, None, out) for q in qs[f]]
                ts = []
                for cap in (1024 if M > 1024 else 0, 1 << 20):  # M > cap: dequant+mm; else rs (M = 1024: dq forced)
                    route.RS_MAX_M = cap
                    ts.append(graph_us(fns))
                route.RS_MAX_M = rs_max
                cells.append(f"{ts[0]:.1f} / {ts[1]:.1f} ({t16 / ts[0]:.2f}x / {t16 / ts[1]:.2f}x)")
            print(f"| {N}x{K} | {M} | {t16:.1f} | " + " | ".join(cells) + " |", flush=True)
        del w, wb, qs
        torch.cuda.empty_cache()


def part_c():
    print("\nC. CUPTI kernel us a call (after a zero flush each; the flush kernel listed too)")
    for N, K, M in ((4096, 4096, 64), (8192, 8192, 64), (4096, 4096, 4096), (8192, 8192, 1024)):
        w = torch.randn(N, K, device=dev) * 0.02
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        for f in FMTS:
            q = fourbit.quantize(w, f)
            ks = cupti_kernels(lambda: fourbit.linear(x, q), before=flush_dirty)
            print(f"{N}x{K} M={M} {f}: " + "; ".join(f"{k} {v:.1f}" for k, v in ks.items()), flush=True)
        wb = w.to(torch.bfloat16)
        ks = cupti_kernels(lambda: x @ wb.t(), before=flush_dirty)
        print(f"{N}x{K} M={M} bf16: " + "; ".join(f"{k} {v:.1f}" for k, v in ks.items()), flush=True)


def part_d():
    from fourbit.ops import w4a8  # noqa: PLC0415
    print("\nD. W4A8 at M >= 1024: block-scaled cuBLAS route / CUDA FP8 GEMM (graph us; x bf16 in brackets)")
    print("| shape | M | bf16 | int4 | mxfp4 |\n|---|---|---|---|---|")
    cap = w4a8.NATIVE_MAX_M
    for (N, K), ms in (((8192, 8192), (1024, 2048, 4096)), ((4096, 4096), (1024, 2048, 4096))):
        w = torch.randn(N, K, device=dev) * 0.02
        wb = w.to(torch.bfloat16)
        qs = {f: [fourbit.quantize(w if i == 0 else torch.randn_like(w) * 0.02, f) for i in range(3)]
              for f in ("int4", "mxfp4")}
        for M in ms:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            t16 = graph_us([lambda: x @ wb.t()] * 3)
            cells = []
            for f, q3 in qs.items():
                ts = []
                for c in (M - 1, M):  # M > cap: cuBLAS route; M <= cap: the CUDA GEMM
                    w4a8.NATIVE_MAX_M = c
                    ts.append(graph_us([lambda q=q: fourbit.linear(x, q, act="fp8_e4m3") for q in q3]))
                w4a8.NATIVE_MAX_M = cap
                cells.append(f"{ts[0]:.1f} / {ts[1]:.1f} ({t16 / ts[0]:.2f}x / {t16 / ts[1]:.2f}x)")
            print(f"| {N}x{K} | {M} | {t16:.1f} | " + " | ".join(cells) + " |", flush=True)
        del w, wb, qs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    parts = [a for a in sys.argv[1:] if a in "ABCD"] or ["A", "B", "C", "D"]
    for p in parts:
        {"A": part_a, "B": part_b, "C": part_c, "D": part_d}[p]()
