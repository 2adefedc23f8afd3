"""M = 1 linear time of the importable fourbit build, for A/B runs of two builds in one device call (run it once per
build, alternating): per (shape, format), a CUDA graph of 3 calls over 3 weight copies, do_bench of the replay / 3
(bench/gpu_peers.py's graph column), and the largest |difference| against a float32 reference of the same call (x @
dequantized W^T), relative to that reference's largest |value|.
Usage (GPU machine): PYTHONPATH=<build> [MS=1,16,...] python3 bench/probes/m1_ab.py [fmt,fmt,...] [label]
(MS: the M values, default 1; SHAPES=NxK,...: the weight shapes, default the five below)"""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
from gpu_quick import graph_time, weight_copies  # noqa: E402

import fourbit  # noqa: E402
from fourbit.formats import PRESETS  # noqa: E402
from fourbit.ops import _native_cuda as nc  # noqa: E402

SHAPES = [(4096, 4096), (8192, 8192), (28672, 8192), (4096, 14336), (14336, 4096)]


def main():
    fmts = sys.argv[1].split(",") if len(sys.argv) > 1 else ["int4", "nf4"]
    label = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("PYTHONPATH", "")[-12:]
    ms = [int(v) for v in os.environ.get("MS", "1").split(",")]
    torch.manual_seed(0)
    shapes = [tuple(int(v) for v in sh.split("x")) for sh in os.environ["SHAPES"].split(",")] \
        if os.environ.get("SHAPES") else SHAPES
    for N, K in shapes:
        w = torch.randn(N, K, device="cuda")
        for name in fmts:
            qw = fourbit.quantize(w, PRESETS[name])
            args = qw.op_args()
            copies = weight_copies(args, 3)
            wd = qw.dequantize(torch.float32)
            for M in ms:
                x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
                out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
                us = graph_time([lambda a=a: nc.linear_out(x, *a, None, out) for a in copies]) * 1e3
                nc.linear_out(x, *args, None, out)
                ref = x.float() @ wd.T
                err = float((out.float() - ref).abs().max() / ref.abs().max())
                print(f"{label} {N}x{K} {name:7s} M={M:<3d} {us:7.2f} us  max rel err {err:.2e}", flush=True)


if __name__ == "__main__":
    main()
