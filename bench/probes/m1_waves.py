"""M = 1 GEMV time against N at fixed K: does a partial last wave of row blocks cost a whole block time? (The GEMV
runs ceil(N / 32) blocks, two an SM; on 132 SMs a wave is 264 blocks = 8448 rows.) Per (K, N, format): graph us of
3 calls over 3 weight copies (bench/gpu_quick.py's graph_time), with N in waves.
Usage (GPU machine): PYTHONPATH=<build> python3 bench/probes/m1_waves.py [fmt,fmt]"""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
from gpu_quick import graph_time, weight_copies  # noqa: E402

import fourbit  # noqa: E402
from fourbit.formats import PRESETS  # noqa: E402
from fourbit.ops import _native_cuda as nc  # noqa: E402


def main():
    fmts = sys.argv[1].split(",") if len(sys.argv) > 1 else ["nf4", "int4"]
    wave = 2 * torch.cuda.get_device_properties(0).multi_processor_count * 32
    torch.manual_seed(0)
    for K, ns in ((8192, (1, 2, 3, 3.25, 3.39, 3.5, 3.75, 4)), (4096, (1, 1.25, 1.5, 1.7, 2, 2.5, 3))):
        for f in ns:
            N = int(round(f * wave / 32)) * 32
            for name in fmts:
                qw = fourbit.quantize(torch.randn(N, K, device="cuda"), PRESETS[name])
                copies = weight_copies(qw.op_args(), 3)
                x = torch.randn(1, K, device="cuda", dtype=torch.bfloat16)
                out = torch.empty(1, N, device="cuda", dtype=torch.bfloat16)
                us = graph_time([lambda a=a: nc.linear_out(x, *a, None, out) for a in copies]) * 1e3
                print(f"K={K} N={N:6d} ({N / wave:.2f} waves) {name:5s} {us:7.2f} us", flush=True)


if __name__ == "__main__":
    main()
