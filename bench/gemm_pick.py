"""The data behind the static config picks of the fused GEMMs (kernels/gemm.py and, for W4A8 below M = 512,
kernels/w4a8.py: _SPACE and pick()): every candidate entry of every M bucket, timed on the model shapes and
formats of shared/ANCHORS.md, each as a CUDA graph of R calls over R weight copies (R * 4-bit bytes > 2x the 50 MB
L2; gpu_quick.graph_time, median of do_bench, L2 flushed).

Prints one row per (shape, format, M): each candidate's us, the current pick()'s us and its loss against the row's
best; then per bucket the geometric-mean loss of each candidate and of pick(). Writes $OUT/gemm_pick.json.
Usage: python3 bench/gemm_pick.py [M ...]   (default M = 32 64 128 256 384)
"""
import importlib
import json
import math
import os
import sys

import torch

import fourbit
from fourbit.ops import w4a8
from gpu_quick import graph_time  # bench/ is on sys.path when this script runs

gemm, kw = (importlib.import_module(f"fourbit.kernels.{m}") for m in ("gemm", "w4a8"))
dev = "cuda"
FORMATS = ("int4", "nf4", "nvfp4", "mxfp4")
SHAPES = [(4096, 4096), (8192, 8192), (28672, 8192), (4096, 14336), (14336, 4096)]
W4A8 = ("int4", "mxfp4")  # the W4A8 benchmark's formats (int4 g128; mxfp4 folds where exact)


def main():
    Ms = [int(a) for a in sys.argv[1:]] or [32, 64, 128, 256, 384]
    torch.manual_seed(0)
    rows = []
    for N, K in SHAPES:
        R = max(2, int(2 * 50e6 // (N * K // 2)) + 1)
        qws = {f: [] for f in FORMATS}
        for _ in range(R):
            w = torch.randn(N, K, device=dev, dtype=torch.bfloat16) * 0.02
            for f in FORMATS:
                qws[f].append(fourbit.quantize(w, f))
            del w
        for M in Ms:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            x8, xs = kw.quantize_act(x)
            for f in FORMATS + tuple("w4a8 " + f for f in W4A8 if M < kw.BLOCKWISE_MIN_M):
                if f.startswith("w4a8"):
                    cands, p = kw.candidates(M), kw.pick(M)
                    args = [w4a8.w4a8_args(q) for q in qws[f[5:]]]
                    fid = lambda fmt: kw.FMT_MXFP4 if fmt == "mxfp4" else kw.FMT_INT4_ASYM  # noqa: E731
                    run = lambda a, c: kw.linear(x8, xs, *a[:3], fid(a[3]), a[4], None, y, config=c)  # noqa: E731
                else:
                    args = [q.op_args() for q in qws[f]]
                    cands, p = gemm.candidates(M), gemm.pick(M, N, args[0][5])
                    run = lambda a, c: gemm.launch(x, *a, None, y, config=c)  # noqa: E731
                ts = []
                for c in cands:
                    ts.append(graph_time([lambda a=a, c=c: run(a, c) for a in args]) * 1e3)
                tp = ts[cands.index(p)]
                rows.append(dict(N=N, K=K, M=M, fmt=f, cands=[str(c) for c in cands], us=ts, pick=str(p),
                                 pick_us=tp, loss=tp / min(ts) - 1))
                print(f"{N}x{K} M={M} {f}: " + " ".join(f"{t:7.1f}" for t in ts) +
                      f" | pick #{cands.index(p)} {tp:7.1f} (+{100 * (tp / min(ts) - 1):.1f}%)", flush=True)
        del qws
        torch.cuda.empty_cache()
    out = os.environ.get("OUT", ".")
    with open(os.path.join(out, "gemm_pick.json"), "w") as fh:
        json.dump(dict(card=torch.cuda.get_device_name(), torch=torch.__version__, rows=rows), fh, indent=1)
    print("\nper M (W4A16, then W4A8): geomean loss against each row's best (candidates in _SPACE order; pick())")
    for M, w8 in [(M, w8) for M in Ms for w8 in (False, True)]:
        rs = [r for r in rows if r["M"] == M and r["fmt"].startswith("w4a8") == w8]
        if not rs:
            continue
        gl = [math.exp(sum(math.log(r["us"][i] / min(r["us"])) for r in rs) / len(rs)) - 1
              for i in range(len(rs[0]["us"]))]
        gp = math.exp(sum(math.log(1 + r["loss"]) for r in rs) / len(rs)) - 1
        print(f"M={M}{' w4a8' if w8 else ''}: " + " ".join(f"#{i} +{100 * v:.1f}%" for i, v in enumerate(gl)) +
              f" | pick +{100 * gp:.1f}% (worst +{100 * max(r['loss'] for r in rs):.1f}%)")


if __name__ == "__main__":
    main()
