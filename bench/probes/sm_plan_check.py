# Which gemm_sm instantiation runs for a few shapes (its last template argument is the block's warps); on the GPU
# machine: PYTHONPATH=<build> python3 bench/probes/sm_plan_check.py
import torch, fourbit
from fourbit.ops import _native_cuda as nc
from torch.profiler import profile, ProfilerActivity
for N, K, M in ((14373, 1024, 24), (28709, 512, 48), (28672, 8192, 16), (8192, 8192, 16), (4096, 4096, 40),
                (4097, 4096, 16), (1024, 4096, 16), (37, 96, 16)):
    a = fourbit.quantize(torch.randn(N, K, device="cuda"), "mxfp4").op_args()
    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        nc.linear(x, *a); torch.cuda.synchronize()
    names = {e.name for e in p.events() if "gemm_sm" in e.name}
    print(N, K, M, [n[n.index("gemm_sm"):][:90] for n in names])
