"""fourbit's decode kernels against torch's int4 tinygemm (the best M = 1 peer on the H200) and bf16 cuBLAS, in one
call: CUDA-graph time of 3 calls over 3 weight copies a replay, the L2 flushed before each replay (bench/gpu_peers.py's
graph column, the same helpers), for the five decode shapes at M = 1 and 16. A quick side-by-side when a full
bench/gpu_peers.py run does not fit the device time left.
Usage (GPU machine): PYTHONPATH=<build> [MS=1,16] python3 bench/probes/m1_peer.py [fmt,fmt,...]"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gpu_peers import peer_tinygemm  # noqa: E402
from gpu_quick import graph_time  # noqa: E402

import fourbit  # noqa: E402

SHAPES = [(4096, 4096), (8192, 8192), (28672, 8192), (4096, 14336), (14336, 4096)]


def main():
    fmts = sys.argv[1].split(",") if len(sys.argv) > 1 else ["int4", "nf4", "nvfp4", "mxfp4"]
    ms = [int(v) for v in os.environ.get("MS", "1,16").split(",")]
    torch.manual_seed(0)
    print(f"{torch.cuda.get_device_name()}; graph us (3 calls over 3 weight copies)")
    print("shape        M   bf16  tinygemm  " + "  ".join(f"{f:>6s}" for f in fmts))
    for N, K in SHAPES:
        wcs = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(3)]
        tiny = [peer_tinygemm(w)[0] for w in wcs]
        qargs = {f: [fourbit.quantize(w, f).op_args() for w in wcs] for f in fmts}
        for M in ms:
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
            t_bf16 = graph_time([lambda w=w: torch.mm(x, w.t(), out=out) for w in wcs]) * 1e3
            t_tiny = graph_time([lambda f=f: f(x) for f in tiny]) * 1e3
            t_fb = [graph_time([lambda a=a: torch.ops.fourbit.linear_out(x, *a, None, out) for a in qargs[f]]) * 1e3
                    for f in fmts]
            print(f"{N}x{K:<6d} {M:3d} {t_bf16:6.1f} {t_tiny:9.1f}  " + "  ".join(f"{t:6.1f}" for t in t_fb),
                  flush=True)


if __name__ == "__main__":
    main()
