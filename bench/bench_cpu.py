"""pytest-benchmark benches of the native CPU kernels (run: python -m pytest bench/bench_cpu.py -q).

quantize / dequantize GB/s at 4096x4096 per format; linear at M = 1, 16, 256 against torch fp32 x @ W.T on the same
shape (torch.set_num_threads(2)), printing the speed-up. Shapes: 4096x4096 and the SmolLM2-135M MLP/attention
shapes N=1536,K=576 and N=576,K=1536.
"""
import pytest
import torch

_native = pytest.importorskip("fourbit.ops._native")

torch.set_num_threads(2)
FORMATS = [("int4", "sym", 128), ("int4", "asym", 32), ("nf4", "", 64), ("bnb_fp4", "", 64), ("nvfp4", "", 16),
           ("mxfp4", "floor", 32), ("mxfp4", "rceil", 32), ("int8", "sym", None)]
SHAPES = [(4096, 4096), (1536, 576), (576, 1536)]


def _torch_median(N, K, M, runs=31):
    """Median time of torch fp32 x @ W.T measured right here (same process state as the kernel being compared)."""
    import time
    w, x = torch.randn(N, K), torch.randn(M, K)
    for _ in range(3):
        x @ w.T
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        x @ w.T
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[runs // 2]


def _lut(fmt, variant):
    return torch.empty(0) if fmt == "int8" else _native.format_lut(fmt, variant)


def _report(benchmark, nbytes, label):
    t = benchmark.stats.stats.median
    benchmark.extra_info["GB/s"] = nbytes / t / 1e9
    print(f"\n{label}: median {t * 1e3:.3f} ms, {nbytes / t / 1e9:.2f} GB/s")


@pytest.mark.parametrize("fmt,variant,G", FORMATS)
def test_quantize(benchmark, fmt, variant, G):
    w = torch.randn(4096, 4096)
    benchmark(_native.quantize, w, fmt, variant, G or 4096)
    _report(benchmark, w.numel() * 4, f"quantize {fmt}/{variant} (f32 input bytes)")


@pytest.mark.parametrize("fmt,variant,G", FORMATS)
def test_dequantize(benchmark, fmt, variant, G):
    G = G or 4096
    q, s, z, g = _native.quantize(torch.randn(4096, 4096), fmt, variant, G)
    lut = _lut(fmt, variant)
    out = torch.empty(4096, 4096)  # preallocated: a fresh 64 MB tensor costs ~25 ms of page faults per call
    benchmark(_native.dequantize_out, q, s, z, g, lut, G, out)
    _report(benchmark, q.numel() * q.element_size() + 4096 * 4096 * 4, f"dequantize {fmt}/{variant} (in+out bytes)")


@pytest.mark.parametrize("N,K", SHAPES)
@pytest.mark.parametrize("M", [1, 16, 256])
def test_linear_torch_fp32(benchmark, N, K, M):
    w, x = torch.randn(N, K), torch.randn(M, K)
    benchmark(lambda: x @ w.T)


@pytest.mark.parametrize("fmt,variant,G", [("int4", "sym", 128), ("nf4", "", 64), ("nvfp4", "", 16),
                                           ("mxfp4", "floor", 32), ("int8", "sym", None)])
@pytest.mark.parametrize("N,K", SHAPES)
@pytest.mark.parametrize("M", [1, 16, 256])
def test_linear(benchmark, fmt, variant, G, N, K, M):
    G = G or K
    if K % G:
        pytest.skip("group does not divide K")
    q, s, z, g = _native.quantize(torch.randn(N, K), fmt, variant, G)
    lut, x = _lut(fmt, variant), torch.randn(M, K)
    out = torch.empty(M, N)
    benchmark(_native.linear_out, x, q, s, z, g, lut, G, None, out)
    t = benchmark.stats.stats.median
    ref = _torch_median(N, K, M)
    benchmark.extra_info["speedup_vs_fp32"] = ref / t
    print(f"\nlinear {fmt}/{variant} M={M} N={N} K={K}: {t * 1e6:.0f} us, torch fp32 {ref * 1e6:.0f} us, "
          f"speed-up {ref / t:.2f}x")
