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
from gpu_quick import cuda_args, graph_time, weight_copies  # bench/ is on sys.path when this script runs

torch.manual_seed(0)
dev = "cuda"
if "--profile" in sys.argv:
    # Driver for ncu: one tc call per case, e.g. ncu --set full -k regex:gemm_tc python3 bench/gpu_tc.py --profile
    # [N,K,M,format ...] (default: 8192,8192,64,int4 8192,8192,128,nvfp4)
    cases = [a.split(",") for a in sys.argv[sys.argv.index("--profile") + 1:]] or \
        [("8192", "8192", "64", "int4"), ("8192", "8192", "128", "nvfp4")]
    for N, K, M, name in [(int(a), int(b), int(c), d) for a, b, c, d in cases]:
        args = cuda_args(name, torch.randn(N, K))
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        nc.linear_out(x, *args, None, torch.empty(M, N, device=dev, dtype=torch.bfloat16), tc=True)
        torch.cuda.synchronize()
        print("profiled", N, K, M, name)
    sys.exit(0)
quick = "--quick" in sys.argv
print(torch.cuda.get_device_name())
shapes = [(8192, 8192, 4), (4096, 4096, 12)] if quick else [(4096, 4096, 12), (8192, 8192, 4), (28672, 8192, 2),
                                                             (4096, 14336, 4), (14336, 4096, 4)]
Ms = (32, 64, 128, 256) if quick else (17, 32, 64, 128, 256)
if "--ms" in sys.argv:  # e.g. --ms 128,256: only these M
    Ms = tuple(int(m) for m in sys.argv[sys.argv.index("--ms") + 1].split(","))
dq = "--dq" in sys.argv  # also time dequantize + cuBLAS (the M >= DEQUANT_MIN_M path) for the crossover with tc
fmts = ("int4", "nf4", "nvfp4", "mxfp4")
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
            out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            out2 = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            nc.linear_out(x, *args, None, out, tc=True)
            kernels.linear(x, *args, None, out=out2)
            err = (out.float() - out2.float()).abs().max().item()
            scale = out2.float().abs().max().item()
            t_tc = graph_time([lambda a=a: nc.linear_out(x, *a, None, out, tc=True) for a in copies]) * 1e3
            t_tr = graph_time([lambda a=a: kernels.linear(x, *a, None, out=out2) for a in copies]) * 1e3
            t_dq = graph_time([lambda a=a: torch.mm(x, kernels.dequantize(*a[:6], x.dtype).t(), out=out2)
                               for a in copies]) * 1e3 if dq else float("nan")
            line += [t_tc, t_tr, err / max(scale, 1e-30), t_dq]
        rows.append(line)
hdr = f"{'shape':>11} {'M':>4} {'bf16':>7}" + "".join(f" {n + ' tc':>9} {'triton':>7} {'x bf16':>6}" +
                                                   (f" {'dq+mm':>7}" if dq else "") for n in fmts)
print(hdr)
for r in rows:
    s = f"{r[0]:>11} {r[1]:>4} {r[2]:7.1f}"
    for i in range(len(fmts)):
        tc, tr, rel, tdq = r[3 + 4 * i: 7 + 4 * i]
        s += f" {tc:9.1f} {tr:7.1f} {r[2] / tc:6.2f}" + (f" {tdq:7.1f}" if dq else "") + \
            ("" if rel < 0.02 else f" MISMATCH {rel:.3g}")
    print(s)
