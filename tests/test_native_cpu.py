"""Native CPU kernels (fourbit._C via ops/_native.py) against the project's float32 references.

quantize / dequantize / pack must be bit-exact; linear is checked against a float64 reference with an error bound.
Every test runs on each ISA this CPU supports (AVX-512, AVX2, scalar) through _C.set_isa.
"""
import pytest
import torch
from hypothesis import given, settings, strategies as st

_native = pytest.importorskip("fourbit.ops._native")
try:
    _C = _native._lib()
except ImportError:  # pragma: no cover
    pytest.skip("fourbit._C not built", allow_module_level=True)

def _supported_isas():
    out = []
    for name in ("avx512", "avx2", "scalar"):
        try:
            _C.set_isa(name)
            out.append(name)
        except RuntimeError:
            pass
    _C.set_isa("auto")
    return out


ISAS = _supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa("auto")


# ----------------------------------------------------------------------------------------------- references
# The project's FP32 references (python/fourbit/formats), reached by the kernels' (fmt, variant, G) triple.
from fourbit.formats import FORMATS as FORMAT_CLASSES, fp4_e2m1  # noqa: E402
from fourbit.formats._base import QuantParts, dequantize_generic  # noqa: E402
from fourbit.layout import pack_nibbles_ref as ref_pack, unpack_nibbles_ref as ref_unpack  # noqa: E402
from strategies import nvfp4_underflow_weight  # noqa: E402

NAN = float("nan")
ref_e2m1 = fp4_e2m1.encode


def format_of(fmt, variant, G, K=None):
    """The Format config behind a kernel's (fmt, variant, group size) arguments."""
    cls = FORMAT_CLASSES[fmt]
    if fmt in ("int4", "int8"):
        return cls(group_size=None if G == K else G, symmetric=variant == "sym")
    if fmt in ("nf4", "bnb_fp4"):
        return cls(block_size=G)
    return cls(scale_rule=variant) if fmt == "mxfp4" else cls()


LUTS = {(f, v): format_of(f, v, 32).lut() for f, v in [("int4", "sym"), ("int4", "asym"), ("nf4", ""),
                                                        ("bnb_fp4", ""), ("nvfp4", ""), ("mxfp4", "floor"),
                                                        ("mxfp4", "rceil")]}


def ref_quantize(w, fmt, variant, G):
    """The format's reference -> (codes [N,K] uint8/int8, scales, zeros or empty, global scale or empty)."""
    p = format_of(fmt, variant, G, w.shape[1]).quantize_ref(w)
    zeros = p.zeros if p.zeros is not None else torch.empty(0, dtype=torch.uint8)
    g = p.global_scale if p.global_scale is not None else torch.empty(0)
    return p.codes, p.scales, zeros, g


def ref_dequant(qdata, scales, zeros, g, lut, G):
    """((lut[code] - z) * s) * g in float32 (fourbit.formats._base.dequantize_generic)."""
    codes = ref_unpack(qdata) if (qdata.dtype == torch.uint8 and lut.numel() == 16) else qdata
    parts = QuantParts(codes, scales, zeros if zeros.numel() else None, g if g.numel() else None)
    return dequantize_generic(parts, lut, G)


def bits(t):
    """Bit pattern view for exact comparisons (NaN-safe)."""
    return t.contiguous().view(torch.uint8)


def assert_quant_equal(w, fmt, variant, G):
    q, s, z, g = _native.quantize(w, fmt, variant, G)
    rc, rs, rz, rg = ref_quantize(w, fmt, variant, G)
    rq = rc if fmt == "int8" else ref_pack(rc)
    assert s.dtype == rs.dtype and q.dtype == rq.dtype
    if not torch.equal(bits(q), bits(rq)):
        bad = (bits(q) != bits(rq)).nonzero()[:5]
        raise AssertionError(f"{fmt}/{variant} G={G} qdata mismatch at {bad.tolist()}")
    assert torch.equal(bits(s), bits(rs)), f"{fmt}/{variant} scales mismatch"
    assert torch.equal(z, rz) and torch.equal(bits(g), bits(rg))
    return q, s, z, g


FORMATS = [("int4", "sym"), ("int4", "asym"), ("nf4", ""), ("bnb_fp4", ""), ("nvfp4", ""), ("mxfp4", "floor"),
           ("mxfp4", "rceil"), ("int8", "sym"), ("int8", "asym")]
FIXED_G = {"nvfp4": 16, "mxfp4": 32}


def groups_for(fmt, K):
    if fmt in FIXED_G:
        return [FIXED_G[fmt]]
    if fmt == "int8":
        return [K, 128] if K % 128 == 0 else [K]
    if fmt in ("nf4", "bnb_fp4"):
        return [64, 32]
    return [32, 64, 128, 256, K]


# ---------------------------------------------------------------------------------------------------- pack
@given(st.integers(1, 5), st.integers(1, 40), st.integers(0, 2**31))
@settings(max_examples=200, deadline=None)
def test_pack_roundtrip(rows, n, seed):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 16, (rows, 2 * n), dtype=torch.uint8, generator=gen)
    packed = _native.pack_nibbles(codes)
    assert torch.equal(packed, ref_pack(codes))
    assert torch.equal(_native.unpack_nibbles(packed), codes)


def test_pack_large_threaded():
    codes = torch.randint(0, 16, (3, 300000), dtype=torch.uint8)
    assert torch.equal(_native.unpack_nibbles(_native.pack_nibbles(codes)), codes)


# ------------------------------------------------------------------------------------------------ quantize
@pytest.mark.parametrize("fmt,variant", FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_quantize_exact(isa, fmt, variant, dtype):
    K = 512
    w = (torch.randn(7, K) * torch.logspace(-3, 2, 7).reshape(7, 1)).to(dtype)
    for G in groups_for(fmt, K):
        assert_quant_equal(w, fmt, variant, G)


@pytest.mark.parametrize("fmt,variant", FORMATS)
def test_quantize_edge_cases(isa, fmt, variant):
    G = FIXED_G.get(fmt, 32)
    K = 8 * G
    w = torch.randn(6, K)
    w[0, :G] = 0.0                                    # all-zero group
    w[1, :G] = 1e-3; w[1, 3] = 1e4                    # one huge outlier
    w[2, :G] = torch.linspace(-1, 1, G) * 1e-40       # subnormals
    w[2, G:2 * G] = torch.linspace(-1, 1, G) * 3e38   # huge block max
    w[3, :G] = NAN                                    # NaN group
    w[3, 2 * G + 1] = float("inf")                    # Inf in another group
    w[4, G + 5] = -float("inf")
    w[5, :G] = -0.0                                   # negative zeros
    w[5, G:2 * G] = 2.0 ** -149                       # smallest subnormal
    assert_quant_equal(w, fmt, variant, G)


def test_quantize_nan_policy_values(isa):
    w = torch.randn(2, 64)
    w[0, 3] = NAN
    for fmt, variant in FORMATS:
        G = FIXED_G.get(fmt, 32)
        q, s, z, g = _native.quantize(w, fmt, variant, G)
        lut = _native.format_lut(fmt, variant) if fmt != "int8" else torch.empty(0)
        v = _native.dequantize(q, s, z, g, lut, G)
        assert torch.isnan(v[0, :G]).all() and torch.isfinite(v[0, G:]).all() and torch.isfinite(v[1]).all()


@pytest.mark.parametrize("fmt,variant", [("int4", "sym"), ("int4", "asym"), ("int8", "sym"), ("int8", "asym")])
def test_quantize_integer_ties(isa, fmt, variant):
    # groups whose x / s land exactly on .5: amax = 7 (s = 1) for int4 sym, etc.
    hi = {"int4": 7.0, "int8": 127.0}[fmt]
    half = torch.arange(-2 * hi, 2 * hi + 1) / 2  # every half-integer tie in range
    G = 32 if fmt == "int4" else 256
    n = half.numel()
    w = torch.zeros(1, G * ((n + G - 2) // (G - 1)))
    for j, i in enumerate(range(0, n, G - 1)):
        chunk = half[i:i + G - 1]
        w[0, j * G:j * G + chunk.numel()] = chunk
        w[0, j * G + G - 1] = hi if variant == "sym" else 0.0
    assert_quant_equal(w, fmt, variant, G)


def test_quantize_e2m1_ties_exhaustive(isa):
    # nvfp4 blocks whose scale * g is exactly 1 (bmax 6, global amax 2688*... chosen so g = 1) and mxfp4 blocks with
    # scale 1: every value of a fine grid, including all midpoints, lands on v exactly.
    grid = torch.arange(-6 * 16 - 16, 6 * 16 + 17) / 16.0  # step 1/16 covers 0.25, 0.75, ..., 5, 5.5, 6.x
    grid = grid[grid.abs() <= 6]
    G = 16
    blocks = grid.split(G - 1)
    w = torch.zeros(len(blocks) + 1, G)
    for i, b in enumerate(blocks):
        w[i, :b.numel()] = b
        w[i, G - 1] = 6.0
    w[-1, 0] = 2688.0  # global amax -> g = 1
    w = w.reshape(-1, 4 * G)[:, :] if w.numel() % (4 * G) == 0 else torch.cat([w, torch.zeros(4 - w.shape[0] % 4, G)]).reshape(-1, 4 * G)
    assert_quant_equal(w, "nvfp4", "", 16)
    m = torch.cat([w.reshape(-1, 16), torch.full((w.numel() // 16, 16), 6.0)], 1).reshape(-1, 64)
    m[m.abs() > 6] = 6.0
    for v in ("floor", "rceil"):
        assert_quant_equal(m, "mxfp4", v, 32)


def test_nvfp4_e4m3_scale_boundaries(isa):
    # blocks whose scale sf = bmax / 6 (g = 1) sweeps the e4m3 grid, its midpoints, subnormals and saturation
    e4 = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    mids = (e4[:-1] + e4[1:]) / 2
    sfs = torch.cat([e4, mids, torch.tensor([2.0 ** -10, 2.0 ** -11, 3 * 2.0 ** -11, 450.0, 464.0, 470.0])])
    sfs = sfs[sfs <= 448.0 * 1.0]  # keep g = 1: global amax fixed by the last block
    w = torch.zeros(sfs.numel() + 1, 16)
    w[:-1, 0] = sfs * 6.0
    w[:-1, 1] = sfs * 6.0 * 0.37
    w[-1, 0] = 2688.0
    pad = (-w.shape[0]) % 4
    w = torch.cat([w, torch.zeros(pad, 16)]).reshape(-1, 64)
    assert_quant_equal(w, "nvfp4", "", 16)


def test_nvfp4_underflowed_block_scale(isa):
    """s * g = 0: the reference codes +-0 as +-0 and other x as +-6 (formats/nvfp4.py); the native kernel agrees."""
    assert_quant_equal(nvfp4_underflow_weight().reshape(1, -1), "nvfp4", "", 16)


def test_mxfp4_e8m0_extremes(isa):
    mags = torch.tensor([2.0 ** -149, 2.0 ** -140, 2.0 ** -126, 1e-30, 0.75, 1.0, 6.0, 6.5, 7.99, 8.0, 2.0 ** 100,
                         3e38, 3.4028235e38, 0.0])
    w = torch.zeros(mags.numel(), 32)
    w[:, 0] = mags
    w[:, 1] = -mags / 3
    w[:, 2] = mags * 0.51
    w = torch.cat([w, torch.zeros(2, 32)]).reshape(-1, 64)
    for v in ("floor", "rceil"):
        assert_quant_equal(w, "mxfp4", v, 32)


@pytest.mark.parametrize("fmt", ["nf4", "bnb_fp4"])
def test_bnb_codebook_ties(isa, fmt):
    cb = FORMAT_CLASSES[fmt].codebook
    v = torch.sort(cb).values
    mids = (v[:-1] + v[1:]) / 2
    vals = torch.cat([v, mids, torch.nextafter(mids, torch.full_like(mids, 2.0)),
                      torch.nextafter(mids, torch.full_like(mids, -2.0))])
    w = torch.zeros(vals.numel() // 63 + 1, 64)
    flat = torch.cat([vals, torch.zeros(w.numel() - vals.numel())])
    w = flat.reshape(-1, 64)
    w[:, 63] = 1.0  # absmax 1 -> t = x exactly
    assert_quant_equal(w, fmt, "", 64)


@pytest.mark.parametrize("fmt", ["nf4", "bnb_fp4"])
def test_bitsandbytes_oracle(fmt):
    bnbf = pytest.importorskip("bitsandbytes.functional")
    w = torch.randn(16, 256)
    w[0, :64] *= 1e-3
    w[1, :8] = torch.tensor([1e-4, -1e-4, 0.0, -0.0, 0.2083333, -0.2083333, 1 / 24, -1 / 24])
    q, s, _, _ = _native.quantize(w, fmt, "", 64)
    packed, state = bnbf.quantize_4bit(w, blocksize=64, quant_type="fp4" if fmt == "bnb_fp4" else "nf4")
    hi_first = packed.flatten()
    bnb_codes = torch.stack([hi_first >> 4, hi_first & 15], -1).reshape(16, 256)
    ours = ref_unpack(q)
    # codes are identical, including bnb_fp4's +-0 choice (tiny positive -> code 8 = -0, tiny negative -> code 0),
    # which the sorted-codebook / bucketize rule reproduces
    assert torch.equal(ours, bnb_codes)
    assert torch.equal(s.flatten(), state.absmax.float())


# ---------------------------------------------------------------------------------------------- dequantize
@pytest.mark.parametrize("fmt,variant", FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dequantize_exact(isa, fmt, variant, dtype):
    K = 256
    w = torch.randn(5, K) * 3
    w[1, 7] = NAN
    for G in groups_for(fmt, K):
        q, s, z, g = _native.quantize(w, fmt, variant, G)
        lut = LUTS[(fmt, variant)] if fmt != "int8" else torch.empty(0)
        out = _native.dequantize(q, s, z, g, lut, G, dtype)
        ref = ref_dequant(q, s, z, g, lut, G).to(dtype)
        assert torch.equal(out, ref) or torch.allclose(out.float(), ref.float(), rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("sd", [torch.float32, torch.float8_e4m3fn, torch.float8_e8m0fnu])
@pytest.mark.parametrize("kind", ["nib4", "int8", "uint8"])
def test_dequantize_all_scale_bytes(isa, sd, kind):
    # every scale byte (NaN encodings and subnormals included), random codes, random zeros / global scale
    N, G = 256, 16
    K = 4 * G
    gen = torch.Generator().manual_seed(1)
    if sd == torch.float32:
        scales = torch.randn(N, K // G, generator=gen) * 10
    else:
        scales = torch.arange(N * (K // G)).remainder(256).to(torch.uint8).reshape(N, K // G).view(sd)
    if kind == "nib4":
        q = torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, generator=gen)
        lut = torch.randn(16, generator=gen)
    else:
        q = torch.randint(-128 if kind == "int8" else 0, 128 if kind == "int8" else 256, (N, K), generator=gen)
        q = q.to(torch.int8 if kind == "int8" else torch.uint8)
        lut = torch.empty(0)
    for zeros in (torch.empty(0, dtype=torch.uint8), torch.randint(0, 16, (N, K // G), dtype=torch.uint8, generator=gen)):
        for g in (torch.empty(0), torch.tensor([0.37])):
            for dtype in (torch.float32, torch.bfloat16, torch.float16):
                out = _native.dequantize(q, scales, zeros, g, lut, G, dtype)
                ref = ref_dequant(q, scales, zeros, g, lut, G).to(dtype)
                assert torch.allclose(out.float(), ref.float(), rtol=0, atol=0, equal_nan=True)
                assert torch.equal(torch.isnan(out), torch.isnan(ref))
                fin = ~torch.isnan(ref)
                assert torch.equal(bits(out[fin]), bits(ref[fin]))


# ------------------------------------------------------------------------------------------------- linear
def check_linear(x, q, s, z, g, lut, G, bias):
    y = _native.linear(x, q, s, z, g, lut, G, bias)
    assert y.dtype == x.dtype and y.shape == (x.shape[0], q.shape[0])
    v = ref_dequant(q, s, z, g, lut, G).double()
    xd = x.double()
    ref = xd @ v.T
    mag = xd.abs() @ v.abs().T
    if bias is not None:
        ref = ref + bias.double()
        mag = mag + bias.double().abs()
    K = x.shape[1]
    # f32 accumulation of K products in any order (FMA or not) plus the bias add: each partial sum and product
    # rounds with relative error <= 2^-24, so |y - ref| <= (K + 2) * 2^-24 * sum|x||v| (standard dot-product bound,
    # first order; the (K+2)u << 1 here so the second-order term is covered by the +2). The bf16 / fp16 output
    # rounding adds at most 2^-8 / 2^-11 of |y|. 1e-30 absorbs f32 subnormal flush-free underflow in tiny products.
    out_rel = {torch.float32: 0.0, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}[x.dtype]
    bound = (K + 2) * 2.0 ** -24 * mag * (1 + out_rel) + out_rel * ref.abs() + 1e-30
    if x.dtype == torch.float16:
        bound = bound + 2.0 ** -24  # fp16 subnormal output spacing
    err = (y.double() - ref).abs()
    assert (err <= bound).all(), f"max err {err.max()} vs bound {bound[err > bound].min()}"


@pytest.mark.parametrize("fmt,variant", FORMATS)
@pytest.mark.parametrize("M", [1, 2, 3, 5, 16, 17, 64, 100])
def test_linear(isa, fmt, variant, M):
    G = FIXED_G.get(fmt, 32 if fmt != "int8" else 64)
    K, N = 3 * G if fmt != "int8" else 2 * G, 37
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        w = torch.randn(N, K)
        q, s, z, g = _native.quantize(w, fmt, variant, G)
        lut = LUTS[(fmt, variant)] if fmt != "int8" else torch.empty(0)
        x = torch.randn(M, K).to(dtype)
        bias = torch.randn(N).to(dtype) if M % 2 else None
        check_linear(x, q, s, z, g, lut, G, bias)


@given(st.integers(1, 20), st.integers(1, 24), st.sampled_from(FORMATS), st.integers(1, 3),
       st.sampled_from([torch.float32, torch.bfloat16, torch.float16]), st.booleans(), st.integers(0, 2**31))
@settings(max_examples=200, deadline=None)
def test_linear_property(M, N, fv, ngroups, dtype, with_bias, seed):
    fmt, variant = fv
    gen = torch.Generator().manual_seed(seed)
    G = FIXED_G.get(fmt, 32)  # the smallest group every format config allows
    K = G * ngroups
    w = torch.randn(N, K, generator=gen) * 2
    q, s, z, g = _native.quantize(w, fmt, variant, G)
    assert_quant_equal(w.to(dtype), fmt, variant, G)
    lut = LUTS[(fmt, variant)] if fmt != "int8" else torch.empty(0)
    x = torch.randn(M, K, generator=gen).to(dtype)
    bias = torch.randn(N, generator=gen).to(dtype) if with_bias else None
    check_linear(x, q, s, z, g, lut, G, bias)


def test_linear_odd_group_tail(isa):
    # per-channel group whose length is not a multiple of the vector width exercises the scalar tails
    K, N = 50, 9
    w = torch.randn(N, K)
    for fmt, variant in [("int4", "asym"), ("int8", "sym")]:
        q, s, z, g = _native.quantize(w, fmt, variant, K)
        lut = LUTS[(fmt, variant)] if fmt != "int8" else torch.empty(0)
        for M in (1, 7, 30):
            check_linear(torch.randn(M, K), q, s, z, g, lut, K, None)
        out = _native.dequantize(q, s, z, g, lut, K)
        assert torch.equal(out, ref_dequant(q, s, z, g, lut, K))
