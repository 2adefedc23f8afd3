"""nvfp4 quantize at 8192^2: the 16-bit pair kernel (kernels/quantize.py _nvfp4_16bit_kernel) over its tiles and warps,
and the generic kernel with the division-free encoder (float32 weights), each checked bit-exact against a baseline
copy of the previous kernel (kernels/_quantize_head.py, if present; `git show <rev>:kernels/quantize.py` makes it).
One-call CUDA graphs under do_bench (L2 flushed), us, with a bf16 copy of the same tensor as the bandwidth yardstick
(% of copy counts one read of the weight plus the codes and scales written, as bench/gpu_peers.py's table does).
Usage (GPU machine): python3 bench/probes/quant_nvfp4.py [--amax]"""
import importlib
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing_floor import graph_of  # noqa: E402


def us(fn):
    return triton.testing.do_bench(graph_of(fn), warmup=25, rep=100, return_mode="median") * 1e3


def main():
    import fourbit.kernels  # noqa: F401, PLC0415
    new = importlib.import_module("fourbit.kernels.quantize")
    try:
        old = importlib.import_module("fourbit.kernels._quantize_head")
    except ImportError:
        old = None
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    N = K = 8192
    gen = torch.Generator(device="cuda").manual_seed(0)
    w = torch.randn(N, K, device="cuda", generator=gen).bfloat16()
    w[1, :64] = float("nan")
    w[2, 100] = float("inf")
    w[3, :256] *= 2.0**-120
    nbytes = N * K * 2 + N * K // 2 + N * K // 16
    dst = torch.empty_like(w)
    copy = us(lambda: dst.copy_(w))
    copy_tbs = 2 * N * K * 2 / copy / 1e6
    print(f"copy {copy:.1f} us ({copy_tbs:.2f} TB/s read + write)")
    amax = torch.zeros(1, device="cuda")
    t = us(lambda: new._amax_kernel[(triton.cdiv(w.numel(), 4096),)](w, w.numel(), amax.zero_(), BLOCK=4096))
    print(f"amax pass alone {t:.1f} us", flush=True)

    def row(name, fn, ref):
        got = fn()
        same = ref is None or all(torch.equal(a.view(torch.uint8) if a.dtype != torch.float32 else a,
                                              b.view(torch.uint8) if b.dtype != torch.float32 else b)
                                  for a, b in zip(got, ref))
        t = us(fn)
        print(f"{name:34s} {t:7.1f} us  {nbytes / t / 1e6 / copy_tbs * 100:5.1f}% of copy  bit-exact: {same}",
              flush=True)
        return t

    if "--amax" in sys.argv:
        return amax_sweep(new, w, amax, us, row)
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        x = w.to(dt)
        ref = old.quantize(x, "nvfp4", "", 16) if old else None
        if old:
            row(f"previous kernel {dt}", lambda: old.quantize(x, "nvfp4", "", 16), None)
        row(f"this tree {dt} (default)", lambda: new.quantize(x, "nvfp4", "", 16), ref)
        if dt != torch.bfloat16:
            continue
        for tile, nw in ((1024, 1), (2048, 1), (4096, 2), (8192, 4)):
            for rev in (True, False):
                row(f"  bf16 pairs tile {tile} warps {nw} rev {int(rev)}",
                    lambda tile=tile, nw=nw, rev=rev: new.quantize(x, "nvfp4", "", 16, tile=tile, num_warps=nw,
                                                                   rev=rev), ref)


def amax_sweep(new, w, amax, us, row):
    """--amax: the 16-bit amax pass (_amax16_kernel) over its (words a load, loads a program, warps) against
    _amax_kernel, then the whole bf16 / fp16 op with the best of them and its last `keep` MB read evict_last (the
    block pass reads them first, evict_first); bit-exact against the float32 weight's op (the generic kernels)."""
    nwords = w.numel() // 2
    best = None
    for cfg in ((1024, 1, 4), (1024, 2, 4), (1024, 4, 4), (2048, 2, 8), (2048, 4, 8), (512, 8, 4), (4096, 2, 16),
                (1024, 8, 8), (4096, 4, 16)):
        blk, it, nw = cfg
        t = us(lambda: new._amax16_kernel[(triton.cdiv(nwords, blk * it),)](w, nwords, amax.zero_(), 0, BLOCK=blk,
                                                                            ITERS=it, F16=False, KEEP=False,
                                                                            num_warps=nw))
        print(f"amax16 words {blk} loads {it} warps {nw}: {t:.1f} us", flush=True)
        if best is None or t < best[0]:
            best = (t, cfg)
    cfg = best[1]
    for dt in (torch.bfloat16, torch.float16):
        x = w.to(dt)
        ref = new.quantize(x.float(), "nvfp4", "", 16)
        row(f"default {dt}", lambda: new.quantize(x, "nvfp4", "", 16), ref)
        for keep_mb in (0, 8, 16, 24, 32):
            row(f"  amax16 {cfg} keep {keep_mb} MB", lambda keep_mb=keep_mb: new.quantize(
                x, "nvfp4", "", 16, amax_cfg=cfg, keep=keep_mb << 20), ref)


if __name__ == "__main__":
    main()
