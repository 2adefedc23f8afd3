"""Per-kernel GPU times of one quantize call (torch.profiler, L2 flushed before each call; median of 20 calls), for
the Triton op and the CUDA one: where nvfp4's time goes between its amax pass and its block pass.
Usage (GPU machine, fourbit built): python3 bench/probes/quant_kernels.py [FMT] [N] [K]."""
import statistics
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from fourbit import kernels
from fourbit.ops import _native_cuda


def kernel_times(fn, reps=20):
    flush = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    fn()
    times = {}
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            flush.zero_()
            fn()
        torch.cuda.synchronize()
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA and "elementwise" not in e.name and "fill" not in e.name:
            times.setdefault(e.name[:60], []).append(e.device_time)
    return {k: (statistics.median(v), len(v)) for k, v in times.items()}


def main(fmt="nvfp4", N=8192, K=8192):
    variant = {"int4": "asym", "mxfp4": "floor"}.get(fmt, "")
    G = {"nvfp4": 16, "mxfp4": 32, "nf4": 64}.get(fmt, 128)
    w = (torch.randn(N, K, device="cuda") * 0.02).bfloat16()
    print(torch.cuda.get_device_name(), fmt, f"{N}x{K} bf16")
    for what, fn in (("Triton", lambda: kernels.quantize(w, fmt, variant, G)),
                     ("CUDA", lambda: _native_cuda.quantize(w, fmt, variant, G))):
        for name, (t, n) in kernel_times(fn).items():
            print(f"  {what}: {name} {t:.1f} us (x{n})")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0] if a else "nvfp4", *(int(v) for v in a[1:3]))
