"""Timing of the Hopper wgmma GEMM (csrc/cuda/gemm_tc.cu) against the Triton fused kernel and bf16 cuBLAS at
16 < M <= 256 on the GPU machine: python3 bench/gpu_tc.py [--quick] [--ms M,M,...] [--dq]

Same method as bench/gpu_gemv.py: each variant is a CUDA graph of R calls over R weight copies (more than L2 holds),
timed with triton.testing.do_bench (median, L2 flushed); per-call us. Random data, bf16 x. Also checks that the tc
output matches the Triton fused kernel's within the bf16 operand bound (a smoke check; tests/test_cuda_gemm_tc.py is
the test)."""
import sys

import torch

from fourbit import kernels
from fourbit.ops import _native_cuda as nc
from gpu_quick import cli_list, compare, profile_cases  # bench/ is on sys.path when this script runs

torch.manual_seed(0)


def tc(x, a, out):  # the Hopper wgmma GEMM
    nc.linear_out(x, *a, None, out, tc=True)


# Driver for ncu: one tc call per case, e.g. ncu --set full -k regex:gemm_tc python3 bench/gpu_tc.py --profile
# [N,K,M,format ...] (default: 8192,8192,64,int4 8192,8192,128,nvfp4)
profile_cases([("8192", "8192", "64", "int4"), ("8192", "8192", "128", "nvfp4")], tc)
quick = "--quick" in sys.argv
others = [("triton", lambda x, args: lambda x_, a, out: kernels.linear(x_, *a, None, out=out))]
if "--dq" in sys.argv:  # also dequantize + cuBLAS (the M >= DEQUANT_MIN_M path), for the crossover with tc
    others.append(("dq+mm", lambda x, args: lambda x_, a, out: torch.mm(x_, kernels.dequantize(*a[:6], x_.dtype).t(),
                                                                         out=out)))
compare([(8192, 8192, 4), (4096, 4096, 12)] if quick else [(4096, 4096, 12), (8192, 8192, 4), (28672, 8192, 2),
                                                           (4096, 14336, 4), (14336, 4096, 4)],
        cli_list("--ms", (32, 64, 128, 256) if quick else (17, 32, 64, 128, 256), int),
        ("int4", "nf4", "nvfp4", "mxfp4"), "tc", tc, others)
