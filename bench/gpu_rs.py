"""Timing of the register-A wgmma GEMM (csrc/cuda/gemm_rs.cu) against the other kernels of the linear route and bf16
cuBLAS on the GPU machine: python3 bench/gpu_rs.py [--quick] [--ms M,M,...] [--fmts f,f]

Same method as bench/gpu_gemv.py (gpu_quick.compare): each variant is a CUDA graph of R calls over R weight copies
(more than L2 holds), timed with triton.testing.do_bench (median, L2 flushed); per-call us, bf16 x, random data. Per
format: rs, then the kernel the route takes at that M otherwise (the GEMV at M <= 8, the small-M GEMM at M <= 64, the
wgmma GEMM at M <= 256, else dequantize + cuBLAS), and rs's speed-up over bf16; MISMATCH flags an rs output off the
other's (a smoke check; tests/test_cuda_gemm_rs.py is the test). --kernels N,K,M,fmt ...: each kernel's device time
in one rs call. --profile N,K,M,fmt ...: one rs call per case, for ncu."""
import sys

import torch

from fourbit import kernels
from fourbit.ops import _native_cuda as nc
from gpu_quick import cli_list, compare, cuda_args, profile_cases  # bench/ is on sys.path when this script runs

torch.manual_seed(0)
dev = "cuda"


def rs(x, a, out):  # the register-A GEMM, whatever M (the route takes it at 32 < M <= 1024)
    nc.linear_out(x, *a, None, out, rs=True)


def other(x, args):  # the kernel the route takes at this M otherwise: gemv / sm, tc, or dequantize + cuBLAS
    M = x.shape[0]
    if M <= 8 or nc.sm_takes(x, *args[:3], args[4], args[5]):
        return lambda x_, a, out: nc.linear_out(x_, *a, None, out)
    if M <= 256 and nc.tc_supported(x, *args[:3], args[4], args[5]):
        return lambda x_, a, out: nc.linear_out(x_, *a, None, out, tc=True)
    return lambda x_, a, out: torch.mm(x_, kernels.dequantize(*a[:6], x_.dtype).t(), out=out)


profile_cases([], rs)
if "--kernels" in sys.argv:  # --kernels N,K,M,fmt ...: device us of each kernel of one rs call (torch.profiler)
    for N, K, M, name in [c.split(",") for c in sys.argv[sys.argv.index("--kernels") + 1:]]:
        args = cuda_args(name, torch.randn(int(N), int(K)))
        x = torch.randn(int(M), int(K), device=dev, dtype=torch.bfloat16)
        out = torch.empty(int(M), int(N), device=dev, dtype=torch.bfloat16)
        for _ in range(3):
            rs(x, args, out)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(20):
                rs(x, args, out)
            torch.cuda.synchronize()
        ks = [(e.key[:40], e.device_time_total / e.count) for e in prof.key_averages() if e.device_time_total > 0]
        print(f"{N}x{K} M={M} {name}: " + ", ".join(f"{k} {t:.1f} us" for k, t in ks))
    sys.exit(0)
quick = "--quick" in sys.argv
compare([(8192, 8192, 4), (4096, 4096, 12)] if quick else [(4096, 4096, 12), (8192, 8192, 4), (28672, 8192, 2),
                                                           (4096, 14336, 4), (14336, 4096, 4)],
        cli_list("--ms", [16, 64, 128, 256, 1024], int), cli_list("--fmts", ["int4", "nf4", "nvfp4", "mxfp4"]),
        "rs", rs, [("other", other)])
