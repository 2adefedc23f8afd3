"""The decode GEMV (M = 1 and 8) of whichever fourbit build is on PYTHONPATH, for A/B runs of builds in turn on one
warm card: per case the one-call CUDA graph under do_bench (its L2 flush: the issue's method) and 3 calls back to back
from one graph over 3 weight copies without a flush, in us, plus a checksum of the output (builds that must agree
bit for bit print the same). Usage (GPU machine): PYTHONPATH=.pre/NAME python3 bench/probes/gemv_ab.py [TAG]"""
import hashlib
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fourbit  # noqa: E402
from route_floor import back_to_back, one_graph  # noqa: E402

SHAPES = [(4096, 4096), (8192, 8192), (28672, 8192), (4096, 14336), (14336, 4096)]
FMTS = ("int4", "nf4", "nvfp4", "mxfp4")


def main(tag):
    cells = []
    for N, K in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(0)
        w = torch.randn(N, K, device="cuda", generator=gen) * 0.02
        for f in FMTS:
            qs = [fourbit.quantize(w if i == 0 else torch.randn_like(w) * 0.02, f) for i in range(3)]
            for M in (1, 8):
                x = torch.randn(M, K, device="cuda", generator=gen).to(torch.bfloat16)
                out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
                fns = [lambda a_=q.op_args(): torch.ops.fourbit.linear_out(x, *a_, None, out) for q in qs]
                z = triton.testing.do_bench(one_graph(fns[0]), warmup=25, rep=100, return_mode="median") * 1e3
                bb = back_to_back(fns)
                fns[0]()
                h = hashlib.sha1(out.cpu().view(torch.int16).numpy().tobytes()).hexdigest()[:6]
                cells.append(f"{N}x{K} {f} M={M}: {z:.1f} / {bb:.1f} [{h}]")
    print(f"== {tag}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "?")
