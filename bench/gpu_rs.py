"""Timing of the register-A wgmma GEMM (csrc/cuda/gemm_rs.cu) against the other kernels of the linear route and bf16
cuBLAS on the GPU machine: python3 bench/gpu_rs.py [--quick] [--ms M,M,...] [--fmts f,f]

Same method as bench/gpu_gemv.py: each variant is a CUDA graph of R calls over R weight copies (more than L2 holds),
timed with triton.testing.do_bench (median, L2 flushed); per-call us, bf16 x, random data. Per format: rs, then the
GEMV (M <= 8), the small-M GEMM (sm, M <= 64), the wgmma GEMM (tc, M <= 256) and dequantize + cuBLAS (dq, M >= 256) where they apply, and
rs's speed-up over bf16. --kernels N,K,M,fmt ...: each kernel's device time in one rs call. Also checks that rs matches the other kernel within the bf16 operand bound (a smoke check;
tests/test_cuda_gemm_rs.py is the test). --profile N,K,M,fmt ...: one rs call per case, for ncu."""
import sys

import torch

from fourbit import kernels
from fourbit.ops import _native_cuda as nc
from gpu_quick import cuda_args, graph_time, weight_copies  # bench/ is on sys.path when this script runs

torch.manual_seed(0)
dev = "cuda"
nan = float("nan")


def arg(flag, default):
    return sys.argv[sys.argv.index(flag) + 1].split(",") if flag in sys.argv else default


if "--profile" in sys.argv:
    for N, K, M, name in [c.split(",") for c in sys.argv[sys.argv.index("--profile") + 1:]]:
        args = cuda_args(name, torch.randn(int(N), int(K)))
        x = torch.randn(int(M), int(K), device=dev, dtype=torch.bfloat16)
        nc.linear_out(x, *args, None, torch.empty(int(M), int(N), device=dev, dtype=torch.bfloat16), rs=True)
        torch.cuda.synchronize()
        print("profiled", N, K, M, name)
    sys.exit(0)
if "--kernels" in sys.argv:  # --kernels N,K,M,fmt ...: device us of each kernel of one rs call (torch.profiler)
    for N, K, M, name in [c.split(",") for c in sys.argv[sys.argv.index("--kernels") + 1:]]:
        args = cuda_args(name, torch.randn(int(N), int(K)))
        x = torch.randn(int(M), int(K), device=dev, dtype=torch.bfloat16)
        out = torch.empty(int(M), int(N), device=dev, dtype=torch.bfloat16)
        for _ in range(3):
            nc.linear_out(x, *args, None, out, rs=True)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(20):
                nc.linear_out(x, *args, None, out, rs=True)
            torch.cuda.synchronize()
        ks = [(e.key[:40], e.device_time_total / e.count) for e in prof.key_averages() if e.device_time_total > 0]
        print(f"{N}x{K} M={M} {name}: " + ", ".join(f"{k} {t:.1f} us" for k, t in ks))
    sys.exit(0)
print(torch.cuda.get_device_name())
quick = "--quick" in sys.argv
shapes = [(8192, 8192, 4), (4096, 4096, 12)] if quick else [(4096, 4096, 12), (8192, 8192, 4), (28672, 8192, 2),
                                                             (4096, 14336, 4), (14336, 4096, 4)]
Ms = [int(m) for m in arg("--ms", ["16", "64", "128", "256", "1024"])]
fmts = arg("--fmts", ["int4", "nf4", "nvfp4", "mxfp4"])
rows = []
for N, K, R in shapes:
    w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) for _ in range(R)]
    qargs = {name: cuda_args(name, w) for name in fmts}  # quantized once per shape (CPU)
    for M in Ms:
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        tb = graph_time([lambda wi=wi: x @ wi.T for wi in ws]) * 1e3
        line = [f"{N}x{K}", M, tb]
        for name in fmts:
            args = qargs[name]
            copies = weight_copies(args, R)
            out, ref = (torch.empty(M, N, device=dev, dtype=torch.bfloat16) for _ in range(2))
            t_rs = graph_time([lambda a=a: nc.linear_out(x, *a, None, out, rs=True) for a in copies]) * 1e3
            if M <= 8 or nc.sm_takes(x, *args[:3], args[4], args[5]):  # the other kernel of this M: gemv, sm, tc or dq
                other = lambda a: nc.linear_out(x, *a, None, ref)  # noqa: E731
            elif M <= 256 and nc.tc_supported(x, *args[:3], args[4], args[5]):
                other = lambda a: nc.linear_out(x, *a, None, ref, tc=True)  # noqa: E731
            else:
                other = lambda a: torch.mm(x, kernels.dequantize(*a[:6], x.dtype).t(), out=ref)  # noqa: E731
            t_o = graph_time([lambda a=a: other(a) for a in copies]) * 1e3
            nc.linear_out(x, *args, None, out, rs=True)
            other(args)
            rel = (out.float() - ref.float()).abs().max().item() / max(ref.float().abs().max().item(), 1e-30)
            line += [t_rs, t_o, rel]
        rows.append(line)
print(f"{'shape':>11} {'M':>5} {'bf16':>7}" + "".join(f" {n + ' rs':>9} {'other':>7} {'x bf16':>6}" for n in fmts))
for r in rows:
    s = f"{r[0]:>11} {r[1]:>5} {r[2]:7.1f}"
    for i in range(len(fmts)):
        t_rs, t_o, rel = r[3 + 3 * i: 6 + 3 * i]
        s += f" {t_rs:9.1f} {t_o:7.1f} {r[2] / t_rs:6.2f}" + ("" if rel < 0.02 else f" MISMATCH {rel:.3g}")
    print(s)
