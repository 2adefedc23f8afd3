"""Small GEMV for compute-sanitizer (GPU.md recipe). `plant` writes into a one-element-short output on purpose,
to prove the recipe catches an overrun:
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --padding 512 python3 scripts/memcheck_gemv.py [plant]"""
import sys

import torch

import fourbit
from fourbit.ops import _native_cuda as nc

plant = len(sys.argv) > 1 and sys.argv[1] == "plant"
M, N, K = 3, 37, 256
for name in ("nvfp4", "int4", "int8_asym"):
    qw = fourbit.quantize(torch.randn(N, K), name)
    args = tuple(t.cuda() if isinstance(t, torch.Tensor) else t for t in qw.op_args())
    for dt in (torch.bfloat16, torch.float32):
        x = torch.randn(M, K, device="cuda", dtype=dt)
        y = nc.linear(x, *args, bias=torch.randn(N, device="cuda", dtype=dt))
if plant:
    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    short = torch.empty(M * N - 1, device="cuda", dtype=torch.bfloat16)
    nc._lib().cuda_linear(x.data_ptr(), "bfloat16", M, args[0].data_ptr(), "uint8", N, K, K, args[1].data_ptr(),
                          "float32", args[2].data_ptr(), 0, 0, 0, short.data_ptr(), 0, 0,
                          torch.cuda.current_stream().cuda_stream)
torch.cuda.synchronize()
print("memcheck script done", "(planted overrun)" if plant else "")
