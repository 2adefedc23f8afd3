"""The CUDA dequantize (csrc/cuda/dequant.cu, bf16 / fp16 out) on a GPU: bit-exact with the FP32 reference
(fourbit.formats._base.dequantize_generic, then RNE to the dtype) for every 4-bit preset, every scale byte with every
code, partial last blocks and multi-block shapes; the cases it does not take fall back to Triton with the same bits.
Its rules (what it takes) are also checked on the host, where CI builds the kernels without a GPU. Any NaN matches any
NaN (testing.assert_bit_exact), as for the other dequantize kernels."""
from __future__ import annotations

import pytest
import torch

import fourbit
from fourbit import testing
from fourbit.formats import PRESETS
from fourbit.formats._base import QuantParts, dequantize_generic
from fourbit.ops import _native_cuda
from fourbit.ops.cuda import dequantize_weight

DEV = "cuda"
DTYPES = (torch.bfloat16, torch.float16)  # the CUDA kernel's outputs (float32 stays on Triton)
FOUR_BIT = sorted(n for n, f in PRESETS.items() if f.bits == 4)


def _ref(q, s, z, g, lut, G, dtype):  # the reference on the CPU: 4-bit codes unpacked (element 2i low nibble)
    q, lut = q.cpu(), lut.cpu()
    codes = torch.stack([q & 15, q >> 4], -1).reshape(q.shape[0], -1) if lut.numel() == 16 else q
    opt = lambda t: None if t is None or t.numel() == 0 else t.cpu()  # noqa: E731
    return dequantize_generic(QuantParts(codes, s.cpu(), opt(z), opt(g)), lut, G).to(dtype)


def _cuda(args, dtype):  # the CUDA kernel itself (asserting that it takes the weight)
    got = _native_cuda.dequantize(*args, dtype)
    assert got is not None, "the CUDA dequantize did not take these arguments"
    return got


@pytest.mark.gpu
@pytest.mark.parametrize("name", FOUR_BIT)
def test_cuda_dequantize_presets(name):
    """Every 4-bit preset: NaN / Inf / zero / subnormal groups and an outlier, at a size whose word count leaves the
    last block partial (130 x 640: 10400 words, blocks of 1024) and at a multi-block one (512 x 4096)."""
    fmt = PRESETS[name]
    for N, K, seed in ((130, 640, 3), (512, 4096, 4)):
        w = torch.randn(N, K, generator=torch.Generator().manual_seed(seed)) * 0.05
        w[0, :64], w[1, 3], w[2, 100], w[3, :128] = 0.0, float("nan"), float("inf"), w[3, :128] * 2.0**-135
        w[-1, 5] = 40.0
        qw = fourbit.quantize(w.to(DEV), fmt)
        ref = fmt.dequantize_ref(fmt.quantize_ref(w))
        for dtype in DTYPES:
            testing.assert_bit_exact(_cuda(qw.op_args()[:6], dtype).cpu(), ref.to(dtype), f"{name} {N}x{K} {dtype}")


@pytest.mark.gpu
@pytest.mark.parametrize("sd", [torch.float32, torch.float8_e4m3fn, torch.float8_e8m0fnu])
def test_cuda_dequantize_every_scale_and_code(sd):
    """Every scale byte (E4M3 / E8M0: NaN encodings, subnormals, 0; float32: signed zeros, subnormals, Inf, NaN and
    random values) with all 16 codes of a random LUT, with and without zero points and global scale, G = 16 and 64."""
    gen = torch.Generator().manual_seed(5)
    lut = torch.randn(16, generator=gen) * 3
    lut[3] = -0.0
    for G in (16, 64):
        N, K = 256, 4 * G
        codes = torch.stack([torch.randperm(16, generator=gen) for _ in range(N * K // 16)]).reshape(N, K)
        q = (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8)
        if sd == torch.float32:
            s = torch.randn(N, K // G, generator=gen) * 10
            s.view(-1)[:6] = torch.tensor([0.0, -0.0, 1e-40, float("inf"), float("nan"), -3e38])
        else:
            s = torch.arange(N * (K // G)).remainder(256).to(torch.uint8).reshape(N, K // G).view(sd)
        for z in (None, torch.randint(0, 256, (N, K // G), dtype=torch.uint8, generator=gen)):
            for g in (None, torch.tensor([0.37]), torch.tensor([3e-39])):
                args = tuple(t.to(DEV) if t is not None else None for t in (q, s, z, g, lut)) + (G,)
                for dtype in DTYPES:
                    testing.assert_bit_exact(_cuda(args, dtype).cpu(), _ref(q, s, z, g, lut, G, dtype),
                                             f"{sd} G={G} zeros={z is not None} g={g} {dtype}")


@pytest.mark.gpu
def test_cuda_dequantize_rules_and_fallback():
    """What the CUDA kernel does not take (a group size that is not a power of two, 8-bit codes, codes 4 bytes past a
    16-byte boundary, a float32 output) returns None there, and dequantize_weight (the op's route) then gives the
    reference's bits through Triton."""
    w = torch.randn(16, 384, generator=torch.Generator().manual_seed(6))
    per_channel = fourbit.quantize(w.to(DEV), PRESETS["int4"].replace(group_size=None))  # G = K = 384
    int8 = fourbit.quantize(w.to(DEV), "int8")
    q, *rest = fourbit.quantize(w.to(DEV), "nf4").op_args()[:6]
    buf = torch.empty(q.numel() + 16, dtype=torch.uint8, device=DEV)
    q4 = buf[4:4 + q.numel()].view(q.shape)  # contiguous, 4-byte but not 16-byte aligned
    q4.copy_(q)
    cases = {"G = 384": (per_channel.op_args()[:6], torch.bfloat16), "int8": (int8.op_args()[:6], torch.bfloat16),
             "misaligned codes": ((q4, *rest), torch.bfloat16), "float32 out": ((q, *rest), torch.float32)}
    for what, (args, dtype) in cases.items():
        assert _native_cuda.dequantize(*args, dtype) is None, what
        testing.assert_bit_exact(dequantize_weight(*args, dtype).cpu(), _ref(*args, dtype), what)


def test_cuda_dequantize_rules_on_the_host():
    """The kernel's own rules (csrc/cuda/dequant.cu dequantize_takes), checked without a device: pointers are only
    tested for alignment and presence, never dereferenced. A launch the rules refuse raises a ValueError naming them
    before anything reaches the GPU."""
    if not _native_cuda.has_cuda():
        pytest.skip("fourbit._C was built without CUDA kernels (no nvcc at build time)")
    lib = _native_cuda._lib()

    def takes(q=16, N=4, K=256, G=64, s=16, sd="float32", z=0, g=0, lut=16, out=16, od="bfloat16"):
        return lib.cuda_dequantize(q, N, K, G, s, sd, z, g, lut, out, od, 0, check_only=True)
    assert takes() and takes(od="float16") and takes(G=16, sd="float8_e4m3fn", s=17) and takes(G=256, z=3, g=8)
    assert takes(G=32, sd="float8_e8m0fnu", s=5)
    refused = {"float32 out": dict(od="float32"), "G not a power of two": dict(K=384, G=48),
               "G < 8": dict(G=4), "G does not divide K": dict(G=512), "codes 4 bytes past 16": dict(q=20),
               "out 8 bytes past 16": dict(out=24), "float32 scales misaligned": dict(s=18), "no LUT": dict(lut=0),
               "no rows": dict(N=0)}
    for what, kw in refused.items():
        assert not takes(**kw), what
    with pytest.raises(ValueError, match="power-of-two group size"):
        lib.cuda_dequantize(16, 4, 384, 48, 16, "float32", 0, 0, 16, 16, "bfloat16", 0)
    with pytest.raises(ValueError, match="unsupported dtype"):
        takes(od="int8")
