"""Timing of the small-M mma.sync GEMM (csrc/cuda/gemm_sm.cu, 8 < M <= 64) against the Hopper wgmma GEMM (tc) and
bf16 cuBLAS on the GPU machine:
  python3 bench/gpu_sm.py [--quick] [--no-tc] [--ms M,M,...] [--shapes NxKxR,...] [--profile [N,K,M,format ...]]
(--shapes: weight shapes N x K, each with R weight copies a graph cycles through; FOURBIT_SM_WARPS=16 / 14 / 8
fixes the kernel's block size for an A/B)

Same method as bench/gpu_tc.py: each variant is a CUDA graph of R calls over R weight copies (more than L2 holds),
timed with triton.testing.do_bench (median, L2 flushed); per-call us. Random data, bf16 x. The sm output is also
compared with tc's (a smoke check; tests/test_cuda_gemv.py is the test)."""
import sys

import torch

from fourbit.ops import _native_cuda as nc
from gpu_quick import cli_list, compare, profile_cases  # bench/ is on sys.path when this script runs

torch.manual_seed(0)


def sm(x, a, out):  # the route's kernel at these M: the small-M GEMM (compare asserts sm_takes)
    nc.linear_out(x, *a, None, out)


def tc(x, args):  # the Hopper wgmma GEMM, where it takes the weight and --no-tc is not given
    if "--no-tc" in sys.argv or not nc.tc_supported(x, args[0], args[1], args[2], args[4], args[5]):
        return None
    return lambda x_, a, out: nc.linear_out(x_, *a, None, out, tc=True)


profile_cases([("8192", "8192", "64", "int4")], sm)  # driver for ncu -k regex:gemm_sm: one call per case
quick = "--quick" in sys.argv
shapes = [(4096, 4096, 12), (8192, 8192, 4), (28672, 8192, 2), (4096, 14336, 4)] + ([] if quick else
                                                                                   [(14336, 4096, 4)])
if "--shapes" in sys.argv:
    shapes = [tuple(int(v) for v in s.split("x")) for s in cli_list("--shapes", (), str)]
compare(shapes, cli_list("--ms", (16, 17, 32, 64) if quick else (9, 16, 17, 32, 48, 64), int),
        ("int4", "nf4", "nvfp4", "mxfp4"), "sm", sm, [("tc", tc)],
        takes=lambda x, args: nc.sm_takes(x, args[0], args[1], args[2], args[4], args[5]))
