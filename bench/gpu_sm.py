"""Timing of the small-M mma.sync GEMM (csrc/cuda/gemm_sm.cu, 8 < M <= 64) against the Hopper wgmma GEMM (tc) and
bf16 cuBLAS on the GPU machine:
  python3 bench/gpu_sm.py [--quick] [--no-tc] [--ms M,M,...] [--profile [N,K,M,format ...]]

Same method as bench/gpu_tc.py: each variant is a CUDA graph of R calls over R weight copies (more than L2 holds),
timed with triton.testing.do_bench (median, L2 flushed); per-call us. Random data, bf16 x. The sm output is also
compared with tc's (a smoke check; tests/test_cuda_gemv.py is the test)."""
import sys

import torch

from fourbit.ops import _native_cuda as nc
from gpu_quick import cuda_args, graph_time, weight_copies  # bench/ is on sys.path when this script runs

torch.manual_seed(0)
dev = "cuda"



if "--profile" in sys.argv:  # driver for ncu -k regex:gemm_sm: one call per case (default 8192,8192,64,int4)
    cases = [a.split(",") for a in sys.argv[sys.argv.index("--profile") + 1:]] or [("8192", "8192", "64", "int4")]
    for N, K, M, name in [(int(a), int(b), int(c), d) for a, b, c, d in cases]:
        args = cuda_args(name, torch.randn(N, K))
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        nc.linear_out(x, *args, None, torch.empty(M, N, device=dev, dtype=torch.bfloat16))
        torch.cuda.synchronize()
        print("profiled", N, K, M, name)
    sys.exit(0)
print(torch.cuda.get_device_name())
quick = "--quick" in sys.argv
shapes = [(4096, 4096, 12), (8192, 8192, 4), (28672, 8192, 2), (4096, 14336, 4)] + ([] if quick else [(14336, 4096, 4)])
Ms = (16, 17, 32, 64) if quick else (9, 16, 17, 32, 48, 64)
if "--ms" in sys.argv:
    Ms = tuple(int(m) for m in sys.argv[sys.argv.index("--ms") + 1].split(","))
fmts = ("int4", "nf4", "nvfp4", "mxfp4")
rows = []
for N, K, R in shapes:
    w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    ws = [torch.randn(N, K, device=dev, dtype=torch.bfloat16) for _ in range(R)]
    qargs = {name: cuda_args(name, w) for name in fmts}
    for M in Ms:
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        tb = graph_time([lambda wi=wi: x @ wi.T for wi in ws]) * 1e3
        line = [f"{N}x{K}", M, tb]
        for name in fmts:
            args = qargs[name]
            assert nc.sm_takes(x, args[0], args[1], args[2], args[4], args[5]), name
            copies = weight_copies(args, R)
            out = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            out2 = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
            nc.linear_out(x, *args, None, out)
            has_tc = "--no-tc" not in sys.argv and nc.tc_supported(x, args[0], args[1], args[2], args[4], args[5])
            if has_tc:
                nc.linear_out(x, *args, None, out2, tc=True)
            rel = ((out.float() - out2.float()).abs().max() / out2.float().abs().max().clamp(min=1e-30)).item() \
                if has_tc else 0.0
            t_sm = graph_time([lambda a=a: nc.linear_out(x, *a, None, out) for a in copies]) * 1e3
            t_tc = graph_time([lambda a=a: nc.linear_out(x, *a, None, out2, tc=True) for a in copies]) * 1e3 \
                if has_tc else float("nan")
            line += [t_sm, t_tc, rel]
        rows.append(line)
print(f"{'shape':>11} {'M':>3} {'bf16':>7}" + "".join(f" {n + ' sm':>9} {'tc':>6} {'x bf16':>6}" for n in fmts))
for r in rows:
    s = f"{r[0]:>11} {r[1]:>3} {r[2]:7.1f}"
    for i in range(len(fmts)):
        t_sm, t_tc, rel = r[3 + 3 * i: 6 + 3 * i]
        s += f" {t_sm:9.1f} {t_tc:6.1f} {r[2] / t_sm:6.2f}" + ("" if rel < 0.02 else f" MISMATCH {rel:.3g}")
    print(s)
