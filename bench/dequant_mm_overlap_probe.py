"""Probe: does the large-M path (dequantize W to x's dtype, then cuBLAS) gain from cutting W into row chunks and
dequantizing chunk i + 1 on a side stream while cuBLAS multiplies chunk i? CUDA-graph timings (host cost out),
median of do_bench with L2 flushed. Run on the GPU machine: python3 bench/dequant_mm_overlap_probe.py"""
import torch
import triton

import fourbit
from fourbit.kernels import dequantize  # the launcher (kernels/dequantize.py)
from gpu_quick import graph_time

dev = "cuda"


def run(x, args, out, chunks, side):
    qdata, scales, zeros, gs, lut, G = args
    N = qdata.shape[0]
    step = N // chunks
    main = torch.cuda.current_stream()
    bufs = []
    if side is not None:
        side.wait_stream(main)
    for c in range(chunks):
        sl = slice(c * step, (c + 1) * step)
        z = zeros[sl] if zeros.numel() else zeros
        if side is None:
            w = dequantize(qdata[sl], scales[sl], z, gs, lut, G, x.dtype)
        else:
            with torch.cuda.stream(side):
                w = dequantize(qdata[sl], scales[sl], z, gs, lut, G, x.dtype)
                ev = torch.cuda.Event()
                ev.record(side)
            main.wait_event(ev)
        torch.mm(x, w.t(), out=out[:, sl])
        bufs.append(w)
    if side is not None:
        main.wait_stream(side)


def main():
    print(torch.cuda.get_device_name(), torch.__version__, triton.__version__)
    side = torch.cuda.Stream()
    print("| N x K | M | fmt | bf16 mm | dequant | dequant + mm | chunks=2 | 4 | 8 | overlapped 2 | 4 | 8 | (us)")
    for (N, K, M) in [(8192, 8192, 1024), (8192, 8192, 512), (4096, 4096, 1024), (8192, 8192, 4096), (28672, 8192, 1024)]:
        for f in ("int4", "nvfp4"):
            qw = fourbit.quantize(torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02, f)
            args = qw.op_args()
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            wb = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
            out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            t = [graph_time([lambda: torch.mm(x, wb.t(), out=out)]),
                 graph_time([lambda: dequantize(*args[:6], x.dtype)])]
            for s in (None, side):
                for ch in ((1, 2, 4, 8) if s is None else (2, 4, 8)):
                    t.append(graph_time([lambda ch=ch, s=s: run(x, args, out, ch, s)]))
            print(f"| {N}x{K} | {M} | {f} | " + " | ".join(f"{v * 1e3:.1f}" for v in t) + " |", flush=True)


if __name__ == "__main__":
    main()
