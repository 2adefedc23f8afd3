"""The Triton dequantize (bf16 out: the dequantize + cuBLAS route's first half) over launch tiles at the two shapes
of the M >= 1024 targets, each tile checked bit-exact against the shipped default; one-call CUDA graphs under do_bench
(L2 flushed), in us. Prints, per shape and format, the default and the four fastest tiles.
With `table`: the group-table kernel (table=True) over its tiles for every format, checked against the element-wise
kernel (table=False), which is also timed.
Usage (GPU machine): python3 bench/probes/dequant_tiles.py [table]"""
import itertools
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fourbit  # noqa: E402
from timing_floor import graph_of  # noqa: E402

TILES = [(r, k) for r, k in ((1, 4096), (2, 2048), (4, 1024), (2, 4096), (4, 2048), (8, 1024), (8, 2048), (16, 1024))]
WARPS = (1, 2, 4, 8)
TABLE_TILES = [(1, 2048), (1, 4096), (2, 2048), (2, 4096), (4, 1024), (4, 2048)]


def main(table=False):
    import fourbit.kernels  # noqa: F401, PLC0415
    d = sys.modules["fourbit.kernels.dequantize"]
    tiles, opts = (TABLE_TILES, {"table": True}) if table else (TILES, {})
    print(torch.cuda.get_device_name(), "triton", triton.__version__)
    for N, K in ((4096, 4096), (8192, 8192)):
        w = torch.randn(N, K, device="cuda") * 0.02
        for f in ("int4", "nf4", "nvfp4", "mxfp4"):
            args = fourbit.quantize(w, f).op_args()
            ref = d.dequantize(*args, torch.bfloat16, **({"table": False} if table else {}))
            t0 = triton.testing.do_bench(graph_of(lambda: d.dequantize(*args, torch.bfloat16)), return_mode="median")
            if table:
                t1 = triton.testing.do_bench(graph_of(lambda: d.dequantize(*args, torch.bfloat16, table=False)),
                                             return_mode="median")
                print(f"{N}x{K} {f}: element-wise kernel {t1 * 1e3:.1f} us", flush=True)
            res = []
            for (br, bk), nw in itertools.product(tiles, WARPS):
                fn = lambda: d.dequantize(*args, torch.bfloat16, block=(br, bk), num_warps=nw, **opts)  # noqa: E731
                try:
                    ok = torch.equal(fn(), ref)
                except Exception as e:  # noqa: BLE001 - a tile that does not compile is reported, not fatal
                    res.append((float("inf"), (br, bk, nw), f" {type(e).__name__}"))
                    continue
                if not ok:
                    res.append((float("inf"), (br, bk, nw), " MISMATCH"))
                    continue
                res.append((triton.testing.do_bench(graph_of(fn), return_mode="median"), (br, bk, nw), ""))
            res.sort()
            print(f"{N}x{K} {f}: default {t0 * 1e3:.1f} us; best " +
                  ", ".join(f"{c} {t * 1e3:.1f}{m}" for t, c, m in res[:4]), flush=True)


if __name__ == "__main__":
    main("table" in sys.argv[1:])
