"""The CUDA quantize (csrc/cuda/quant.cu) against the Triton one (kernels/quantize.py): one-call CUDA graphs under
do_bench (L2 flushed), us, and % of copy (weight read + codes, scales and zero points written, as BENCHMARKS.md
counts them, against a 256 MB copy timed the same way). Every CUDA output is checked bit-exact against Triton's.
Usage (GPU machine, fourbit built): python3 bench/probes/quant_cuda.py [--quick]; FOURBIT_QUANT_U=1|2|4 picks the
kernel's chunks a thread (read once a process)."""
import os
import sys

import torch
import triton

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fourbit.ops import _native_cuda  # noqa: E402
from timing_floor import graph_of  # noqa: E402

CASES = (("int4", "asym", 128), ("int4", "sym", 128), ("nf4", "", 64), ("nvfp4", "", 16), ("mxfp4", "floor", 32))


def us(fn):
    return triton.testing.do_bench(graph_of(fn), return_mode="median") * 1e3


def main(quick=False):
    from fourbit import kernels  # noqa: PLC0415
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__,
          "U", os.environ.get("FOURBIT_QUANT_U", "default"))
    a = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    copy = 2 * a.numel() / us(lambda: b.copy_(a)) / 1e6  # TB/s
    del a, b
    print(f"copy {copy:.2f} TB/s")
    shapes = ((8192, 8192),) if quick else ((4096, 4096), (8192, 8192), (28672, 8192))
    for N, K in shapes:
        for dt in (torch.bfloat16,) if quick else (torch.bfloat16, torch.float16):
            w = (torch.randn(N, K, device="cuda") * 0.02).to(dt)
            for f, v, G in CASES:
                ref = kernels.quantize(w, f, v, G)
                got = _native_cuda.quantize(w, f, v, G)
                if got is None:
                    print(f"{N}x{K} {f} {v} {dt}: not taken by the CUDA kernel")
                    continue
                ok = all(torch.equal(x.view(torch.uint8), y.view(torch.uint8)) for x, y in zip(got, ref))
                tt = us(lambda: kernels.quantize(w, f, v, G))
                tc = us(lambda: _native_cuda.quantize(w, f, v, G))
                by = w.numel() * w.element_size() + sum(t.numel() * t.element_size() for t in got)
                print(f"{N}x{K} {str(dt)[6:]} {f} {v}: Triton {tt:.1f} us ({100 * by / tt / 1e6 / copy:.0f}%) -> "
                      f"CUDA {tc:.1f} us ({100 * by / tc / 1e6 / copy:.0f}%) {'' if ok else 'MISMATCH'}", flush=True)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
