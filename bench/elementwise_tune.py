"""Sweep the elementwise Triton kernels' launch parameters on the GPU (pack, unpack, quantize, dequantize, W4A8's
activation quantizer), each variant checked bit-exact against the shipped default, on 8192x8192. Prints GB/s (bytes
read + written) and the percentage of the device-to-device copy per variant, best first per kernel. Run: python3
bench/elementwise_tune.py [--only WORD,...] [--default]: --only keeps the kernels whose name holds one of the words
(e.g. nvfp4,pack); --default times only the shipped launch parameters (an A/B of two trees: scripts/gpu_ab.sh).
"""
import itertools
import sys

import torch
import triton

import fourbit
import fourbit.kernels  # noqa: F401
# the submodules (fourbit.kernels re-exports functions of the same names)
dq, pk, qz = (sys.modules[f"fourbit.kernels.{m}"] for m in ("dequantize", "pack", "quantize"))

dev = "cuda"
FORMATS = ("int4", "nf4", "nvfp4", "mxfp4")


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e-3


def same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return all(torch.equal(x.view(torch.uint8) if x.element_size() == 1 else x, y.view(torch.uint8)
                           if y.element_size() == 1 else y) for x, y in zip(a, b))


ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
DEFAULT_ONLY = "--default" in sys.argv


def sweep(name, nbytes, make, variants, copy):
    if ONLY and not any(word in name for word in ONLY):
        return []
    if DEFAULT_ONLY:
        variants = [{}]
    ref = make()()
    res = []
    for v in variants:
        fn = make(**v)
        ok = same(fn(), ref)
        t = bench(fn)
        res.append((nbytes / t / 1e12, t * 1e6, v, ok))
    res.sort(key=lambda r: -r[0])
    for tbs, us, v, ok in res[:4]:
        print(f"{name:>18} {us:8.1f} us {tbs:5.2f} TB/s {100 * tbs / copy:4.0f}%  {v}{'' if ok else '  MISMATCH'}")
    return res


def main():
    n = 1 << 28
    a, b = torch.empty(n, dtype=torch.uint8, device=dev), torch.empty(n, dtype=torch.uint8, device=dev)
    copy = 2 * n / bench(lambda: b.copy_(a)) / 1e12
    del a, b
    N = Kd = 8192
    codes = torch.randint(0, 16, (N, Kd), device=dev, dtype=torch.uint8)
    packed = pk.pack_nibbles(codes)
    blocks = [dict(block=bl, num_warps=nw) for bl, nw in itertools.product((1024, 2048, 4096, 8192), (4, 8))]
    sweep("pack", N * Kd * 1.5, lambda **v: (lambda: pk.pack_nibbles(codes, **v)), blocks, copy)
    sweep("unpack", N * Kd * 1.5, lambda **v: (lambda: pk.unpack_nibbles(packed, **v)), blocks, copy)
    w = torch.randn(N, Kd, device=dev, dtype=torch.bfloat16) * 0.02
    for f in FORMATS:
        qw = fourbit.quantize(w, f)
        fmt = qw.format
        G = fmt.group(Kd)
        tiles = [dict(tile=t, num_warps=nw) for t, nw in itertools.product((1024, 2048, 4096, 8192), (2, 4, 8))]
        sweep(f"quantize {f}", N * Kd * 2 + qw.nbytes,
              lambda **v: (lambda: qz.quantize(w, fmt.name, fmt.variant, G, **v)), tiles, copy)
        args = qw.op_args()
        dqs = [dict(block=bk, num_warps=nw, lut_mode=lm) for bk, nw, lm in
               itertools.product(((16, 256), (32, 256), (16, 512), (64, 128), (8, 1024)), (4, 8), (0, 1))
               if lm == 0 or f == "nf4"]
        sweep(f"dequantize {f}", N * Kd * 2 + qw.nbytes,
              lambda **v: (lambda: dq.dequantize(*args, torch.bfloat16, **v)), dqs, copy)
    from fourbit.kernels import w4a8 as kw  # W4A8's activation quantizer, in the CUDA GEMM's K order
    for M in (256, 1024):
        x = torch.randn(M, Kd, device=dev, dtype=torch.bfloat16)
        acts = [dict(rows=r, num_warps=nw) for r, nw in itertools.product((1, 2, 4), (4, 8, 16))]
        sweep(f"act fp8 M={M}", M * Kd * 3 + M * 4,
              lambda **v: (lambda: kw.quantize_act(x, perm=True, **v)), acts, copy)
    print(f"copy {copy:.2f} TB/s, {torch.cuda.get_device_name()}, triton {triton.__version__}")


if __name__ == "__main__":
    main()
