"""A fixed workload for Nsight Compute: `ncu --kernel-name regex:NAME --launch-skip 3 --launch-count 1 ...
python3 bench/ncu_target.py linear|quantize FORMAT N K [M]` runs the op 5 times on random data."""
import sys

import torch

import fourbit


def main(what, fmt, N, K, M=1):
    w = torch.randn(int(N), int(K), device="cuda", dtype=torch.bfloat16) * 0.02
    if what == "quantize":
        for _ in range(5):
            fourbit.quantize(w, fmt)
    else:
        qw = fourbit.quantize(w, fmt)
        x = torch.randn(int(M), int(K), device="cuda", dtype=torch.bfloat16)
        for _ in range(5):
            fourbit.linear(x, qw)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main(*sys.argv[1:])
