"""The CUDA quantize (csrc/cuda/quant.cu: bf16 / fp16 weights; int4, int4_sym, nf4, nvfp4, mxfp4 floor / rceil) on a
GPU: bit-exact with the FP32 reference (testing.reference_quantize) in every output (codes, scales, zero points, the
global scale) over every finite 16-bit value, the integer grids' round-half-to-even ties, NaN / Inf / zero / subnormal
groups, every group size it takes, and partial last blocks. What it does not take falls back to Triton with the same
bits. Its rules are also checked on the host, where CI builds the kernels without a GPU."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

import fourbit
from fourbit import testing
from fourbit.formats import PRESETS
from fourbit.ops import _native_cuda
from strategies import special_weights, weights

DEV = "cuda"
DTYPES = (torch.bfloat16, torch.float16)
TAKEN = ("int4", "int4_sym", "nf4", "nvfp4", "mxfp4", "mxfp4_rceil")  # the presets the kernel takes (G fixed or chosen)
# the group sizes of each format that the kernel takes (a power of two in [16, 512]; int4 allows 32-256)
GROUPS = {"int4": (32, 64, 128, 256), "int4_sym": (32, 64, 128, 256), "nf4": (16, 32, 64, 128, 256, 512),
          "nvfp4": (16,), "mxfp4": (32,), "mxfp4_rceil": (32,)}


def _fmt(name, G=None):
    fmt = PRESETS[name]
    if G is None or fmt.name in ("nvfp4", "mxfp4"):
        return fmt
    return fmt.replace(block_size=G) if fmt.name == "nf4" else fmt.replace(group_size=G)


def check(w, name, G=None, what=""):
    """The CUDA kernel's outputs for w (a CPU tensor, bf16 / fp16) against the reference's, bit for bit."""
    fmt = _fmt(name, G)
    G = fmt.group(w.shape[1])
    got = _native_cuda.quantize(w.to(DEV), fmt.name, fmt.variant, G)
    assert got is not None, f"the CUDA quantize did not take {name} G={G} {w.dtype}"
    ref = testing.reference_quantize(w, fmt).op_args()[:4]
    for key, a, b in zip(("qdata", "scales", "zeros", "global_scale"), got, ref):
        testing.assert_bit_exact(a.cpu(), b, f"{what} {name} G={G} {w.dtype} {key}")


def every_finite(dtype, seed):
    """All finite values of a 16-bit dtype (each bit pattern once), [N, 512]: shuffled (seed not None: groups mixing
    every magnitude) or in bit-pattern order (groups of neighbouring values: every exponent as a group's scale, the
    subnormal groups included)."""
    bits = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(dtype)
    v = bits[torch.isfinite(bits.float())]
    if seed is not None:
        v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(seed))]
    v = v[: v.numel() // 512 * 512]
    return v.reshape(-1, 512)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TAKEN)
def test_cuda_quantize_every_finite_value(name, dtype):
    for seed in (None, 1):
        check(every_finite(dtype, seed), name, what=f"every finite value, seed {seed}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", TAKEN)
def test_cuda_quantize_special_values(name, dtype):
    """NaN / Inf groups (NaN scale, the code of 0), all-zero and subnormal groups, a 3e38 outlier, E2M1 ties."""
    check(special_weights().to(dtype), name)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_quantize_integer_ties(dtype):
    """Quotients exactly halfway between two integers round to the even one, in the codes and in the zero point.
    Columns 0-31, int4 (asym): min -7.5 and max 7.5 give s = 15 / 15 = 1 and z = RNE(7.5) = 8 (the tie goes to the
    even 8); each x = k + 0.5 then rounds to its even neighbour before z is added (0.5 -> 0, 1.5 -> 2, -2.5 -> -2).
    Columns 32-63, int4_sym: amax 7 gives s = 7 / 7 = 1, and x = k + 0.5 is the tie itself (0.5 -> 0, 2.5 -> 2,
    -0.5 -> -0: code 8, 6.5 -> 6). Row 1 holds the same groups reversed and negated. The rest is random."""
    asym = torch.tensor([-7.5, 7.5, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 4.5, 5.5, 6.5, -3.5, -4.5, -6.5, 7.0])
    sym = torch.tensor([7.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 4.5, 5.5, 6.5, -3.5, -4.5, -5.5, -6.5, -7.0])
    w = torch.randn(4, 256, generator=torch.Generator().manual_seed(2))
    w[:, :64] = torch.cat([asym, asym, sym, sym])
    w[1, :32], w[1, 32:64] = -asym.repeat(2).flip(0), -sym.repeat(2).flip(0)
    for name in ("int4", "int4_sym"):
        check(w.to(dtype), name, G=32, what="ties")


@pytest.mark.gpu
@pytest.mark.parametrize("name, G", [(n, G) for n in ("int4", "int4_sym", "nf4") for G in GROUPS[n]])
def test_cuda_quantize_group_sizes(name, G):
    """T = G / 16 lanes a group reduce by shuffles; shapes whose chunk count leaves the last block partial (37 rows:
    blocks hold 512 chunks) and a NaN group among finite ones in one warp."""
    for N, K in ((37, 3 * G), (5, 2048)):
        w = torch.randn(N, K, generator=torch.Generator().manual_seed(G)) * 0.1
        w[1, 5] = float("nan")
        check(w.bfloat16(), name, G, what=f"{N}x{K}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_quantize_nvfp4_amax_pass(dtype):
    """nvfp4's first pass (quant.cu amax16_kernel: max |w| over the finite elements, one atomic a block) gives the
    reference's global scale, and so its scales and codes, wherever the maximum sits: the first element and the last
    of a 19 MB weight (its first 3 MB loaded evict_first, the last 16 MB evict_last), beside NaN / +-Inf (which do
    not count), at the largest finite value; weights with no finite nonzero element (amax 0: global scale 1); sizes
    that leave the last round of loads partial."""
    big = torch.randn(2048, 4608, generator=torch.Generator().manual_seed(3)) * 0.01
    top = torch.finfo(dtype).max
    for what, idx, val in (("first", 0, 7.0), ("last", -1, -7.0), ("largest finite", 1234567, -top)):
        w = big.clone().view(-1)
        w[idx] = val
        w[5], w[-5], w[8_000_000] = float("nan"), float("inf"), -float("inf")
        check(w.view_as(big).to(dtype), "nvfp4", what=f"amax at the {what} element")
    for what, v in (("all NaN", float("nan")), ("all Inf", float("inf")), ("all zero", 0.0), ("all -0", -0.0)):
        check(torch.full((3, 48), v).to(dtype), "nvfp4", what=what)
    for N, K in ((1, 16), (37, 208), (129, 1040)):
        check(torch.randn(N, K, generator=torch.Generator().manual_seed(N)).to(dtype), "nvfp4", what=f"{N}x{K}")


@pytest.mark.gpu
@settings(max_examples=40, deadline=None)
@given(data=st.data(), name=st.sampled_from(TAKEN))
def test_cuda_quantize_property(data, name):
    """Random shapes and values with the cases that break kernels (tests/strategies.py); float32 draws become bf16
    (float32's exponent range, so no group overflows)."""
    fmt = _fmt(name, data.draw(st.sampled_from(GROUPS[name])))
    w = data.draw(weights(fmt))
    check(w.bfloat16() if w.dtype == torch.float32 else w, name, fmt.group(w.shape[1]))


@pytest.mark.gpu
def test_cuda_quantize_route_and_fallback():
    """The op (fourbit.quantize) takes the CUDA kernel for a bf16 weight; what the kernel does not take (float32,
    int8, bnb_fp4, a per-channel G = 384, a view 4 bytes past a 16-byte boundary) returns None there and the op
    gives the reference's bits through Triton."""
    w = torch.randn(16, 384, generator=torch.Generator().manual_seed(6)).bfloat16()
    qw = fourbit.quantize(w.to(DEV), "int4")
    testing.assert_bit_exact(qw.qdata.cpu(), testing.reference_quantize(w, "int4").qdata, "op route")
    buf = torch.empty(w.numel() + 8, dtype=torch.bfloat16, device=DEV)
    w2 = buf[2:2 + w.numel()].view(w.shape)  # contiguous, 4-byte but not 16-byte aligned
    w2.copy_(w)
    cases = {"float32": (w.float(), PRESETS["int4"]), "int8": (w, PRESETS["int8"]),
             "bnb_fp4": (w, PRESETS["bnb_fp4"]), "G = K = 384": (w, PRESETS["int4"].replace(group_size=None))}
    for what, (x, fmt) in cases.items():
        assert _native_cuda.quantize(x.to(DEV), fmt.name, fmt.variant, fmt.group(x.shape[1])) is None, what
        got = fourbit.quantize(x.to(DEV), fmt)
        testing.assert_bit_exact(got.qdata.cpu(), testing.reference_quantize(x, fmt).qdata, what)
    assert _native_cuda.quantize(w2, "int4", "asym", 128) is None
    got = torch.ops.fourbit.quantize(w2, "int4", "asym", 128)
    ref = testing.reference_quantize(w, "int4").op_args()[:3]
    for key, a, b in zip(("qdata", "scales", "zeros"), got, ref):
        testing.assert_bit_exact(a.cpu(), b, f"misaligned view {key}")


def test_cuda_quantize_rules_on_the_host():
    """The kernel's own rules (csrc/cuda/quant.cu quantize_takes), checked without a device: pointers are only tested
    for alignment and presence, never dereferenced. A launch the rules refuse raises a ValueError naming them before
    anything reaches the GPU."""
    if not _native_cuda.has_cuda():
        pytest.skip("fourbit._C was built without CUDA kernels (no nvcc at build time)")
    lib = _native_cuda._lib()

    def takes(w=16, dt="bfloat16", N=4, K=256, G=128, fmt=1, q=16, s=16, z=16, table=0, nb=0, amax=0, gs=0):
        return lib.cuda_quantize(w, dt, N, K, G, fmt, q, s, z, table, nb, 0, amax, gs, 0, check_only=True)
    assert takes() and takes(dt="float16") and takes(fmt=0, z=0) and takes(G=16) and takes(G=512, K=1024)
    assert takes(fmt=2, z=0, table=64, nb=32) and takes(fmt=4, G=32, s=5, z=0) and takes(fmt=5, G=32, s=7, z=0)
    assert takes(fmt=3, G=16, s=3, z=0, amax=8, gs=4)
    refused = {"float32 weight": dict(dt="float32"), "G not a power of two": dict(K=384, G=48), "G < 16": dict(G=8),
               "G > 512": dict(G=1024, K=1024), "G does not divide K": dict(G=512), "w 8 bytes past 16": dict(w=24),
               "codes 8 bytes past 16": dict(q=24), "float32 scales misaligned": dict(s=18),
               "asym without zeros": dict(z=0), "codebook without a table": dict(fmt=2, z=0),
               "more than 128 buckets": dict(fmt=2, z=0, table=64, nb=256),
               "nvfp4 without amax": dict(fmt=3, G=16, z=0, gs=4), "nvfp4 without a global scale": dict(fmt=3, G=16,
               z=0, amax=8), "nvfp4 G = 32": dict(fmt=3, G=32, z=0, amax=8, gs=4),
               "int8 / unknown format": dict(fmt=7), "no rows": dict(N=0)}
    for what, kw in refused.items():
        assert not takes(**kw), what
    with pytest.raises(ValueError, match="power-of-two group size"):
        lib.cuda_quantize(16, "bfloat16", 4, 384, 48, 1, 16, 16, 16, 0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="unsupported dtype"):
        takes(dt="int8")
