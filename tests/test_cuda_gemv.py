"""CUDA kernels (csrc/cuda) against fourbit.testing's references. All tests need a CUDA device (marker gpu).

Error bound of the tensor-core GEMV ("mma" path, bf16 / fp16 x). The kernel multiplies x by
  w_hat = h(h(h(lut[c]) - z) * h(s))        (h = round to x's dtype; the "- z" only with zeros)
and applies the global scale g to the fp32 sum. Against the fp32 reference w = ((lut[c] - z) * s) * g:
  |w_hat * g - w| <= ((1 + u_h)^4 - 1) |(lut[c] - z) s g| + 3 u_32 |w| + (fp16 only) 4 * 2^-25 |g|  (subnormals),
so we add (4.1 u_h + 3 u_32) sum_k |x_k w_k| + 2^-23 |g| sum_k |x_k| to testing.matmul_error_bound. The tensor
cores' fp32 accumulation is not specified as round-to-nearest, so the K-term accumulation allowance is doubled
(another 1.01 K u_32 sum |x w|). u_h = 2^-8 (bf16) or 2^-11 (fp16). For nvfp4 / mxfp4 in bf16, and for integer
codes with power-of-two scales, w_hat is exact and only the accumulation terms matter. With M = 1 the 4-bit kernel
applies the scale after the MMA instead: w_hat = h(h(lut[c]) - z) and y = sum over groups of s * (fp32 sum), one
fewer rounding of the weight and one more float32 rounding a group, inside the same bound. The generic path (fp32 x
or shapes the MMA path does not take) dequantizes exactly in fp32 and gets the plain bound (assert_linear_close).
"""
from __future__ import annotations

import pytest
import torch

import fourbit
from fourbit import testing
from fourbit.formats import PRESETS, make_format
from fourbit.formats._base import U32
from fourbit.layout import pack_nibbles_ref, to_blocked_scales
from fourbit.ops import _native_cuda as nc

pytestmark = pytest.mark.gpu

ACT = [torch.bfloat16, torch.float16, torch.float32]


@pytest.fixture(autouse=True)
def _need_kernels():
    if not nc.has_cuda():
        pytest.skip("fourbit._C was built without CUDA kernels (no nvcc at build time)")


_CACHE: dict = {}


def quantized(name, N, K, seed=0):
    """(dense fp32 reference weight on CPU, op args on CUDA) for preset `name` (or a format config), cached."""
    key = (name, N, K, seed)
    if key not in _CACHE:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(N, K, generator=g) * 0.5
        qw = fourbit.quantize(w, PRESETS[name] if isinstance(name, str) else name)
        dense = qw.dequantize(torch.float32)
        args = tuple(t.cuda() if isinstance(t, torch.Tensor) else t for t in qw.op_args())
        _CACHE[key] = (dense, args)
    return _CACHE[key]


def mma_extra(x, w, dtype, gscale):
    """The extra terms derived in the module docstring (float64, [M, N])."""
    uh = testing.UNIT_ROUNDOFF[dtype]
    K = x.shape[1]
    xa, wa = x.double().abs().cpu(), w.double().abs().cpu()
    absdot = xa @ wa.T
    g = 1.0 if gscale is None or gscale.numel() == 0 else float(gscale.abs().item())
    return (4.1 * uh + 3 * U32 + 1.01 * K * U32) * absdot + 2.0**-23 * g * xa.sum(1, keepdim=True)


def check_linear(y, x, dense, bias, path, dtype, gscale, name):
    if path == "mma":
        ref = testing.reference_linear(x, dense, bias)
        bound = testing.matmul_error_bound(x, dense, dtype, bias) + mma_extra(x, dense, dtype, gscale)
        testing.assert_within_bound(y, ref, bound, name)
    else:
        testing.assert_linear_close(y, x, dense, bias, name)


def shapes(fmt):
    G = fmt.group_size or 32
    kmin = G
    kodd = max(G, 32) * 3          # K % 128 != 0 for G < 128: a partial 128-column chunk
    return [  # (M, N, K, bias)
        (1, 37, kmin, False), (2, 1, kmin, True), (3, 4097, kodd, True), (16, 37, kodd, False),
        (1, 4097, 4096, False), (16, 4097, 4096, True), (3, 37, 4096, False), (2, 130, 1024, True),
        # 8 < M <= 64: the small-M GEMM (gemm_sm.cu) for nib4 weights (M = 16 above too): a partial 8-row x
        # block, a partial 128-column step (kodd), rows past N in a 256-row block, split-K (K = 4096), a single step
        # (kmin); M > 64 (72 = 4 x 16 + 8): the GEMV in 16-row slabs, its M16 kernel included
        (9, 37, kmin, True), (17, 300, kodd, True), (40, 37, kmin, False), (64, 1030, 4096, False),
        (33, 260, 1024, True), (72, 130, 1024, True),
        # gemm_sm.cu plan_sm's block sizes on 132 SMs: the shapes above take 8 warps (2 blocks an SM); 14 warps (224
        # rows) at 65 blocks x 2 splits and at 129 blocks with 8-row x blocks 6 of 8 used, both ending in a partial
        # block; 16 warps at 16 blocks x 8 splits; M <= 16 on 14 and 16 warps: the 64 KB table (nib4.cuh kT64Base)
        (24, 14373, 1024, True), (48, 28709, 512, False), (40, 4096, 4096, False),
        (12, 14373, 1024, True), (16, 4096, 4096, False),
    ]


@pytest.mark.parametrize("dtype", ACT, ids=str)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_linear_all_presets(name, dtype):
    fmt = PRESETS[name]
    gen = torch.Generator().manual_seed(1)
    for M, N, K, with_bias in shapes(fmt):
        dense, args = quantized(name, N, K)
        x = torch.randn(M, K, generator=gen).to(dtype)
        bias = (torch.randn(N, generator=gen) * 0.1).to(dtype) if with_bias else None
        xc, bc = x.cuda(), None if bias is None else bias.cuda()
        path = nc.linear_path(xc, args[0], args[4], args[5])
        y = nc.linear(xc, *args, bias=bc)
        torch.cuda.synchronize()
        check_linear(y.cpu(), x, dense, bias, path, dtype, args[3],
                     f"{name} {dtype} M={M} N={N} K={K} bias={with_bias} path={path}")


@pytest.mark.parametrize("name", ["nvfp4", "int4", "nf4", "int8_asym"])
def test_out_buffer_guards_graph_and_stream(name):
    """out= into a slice of a poisoned buffer (guards untouched, every element written), CUDA graph capture +
    replay, and a non-default stream: all bitwise equal to the eager default-stream result."""
    dtype = torch.bfloat16
    M, N, K = 3, 4097, 2048
    dense, args = quantized(name, N, K)
    x = torch.randn(M, K, device="cuda", dtype=dtype)
    bias = torch.randn(N, device="cuda", dtype=dtype)
    ref = nc.linear(x, *args, bias=bias)

    pad = 1000
    buf = torch.full((M * N + 2 * pad,), float("nan"), device="cuda", dtype=dtype)
    out = buf[pad:pad + M * N].view(M, N)
    nc.linear_out(x, *args, bias, out)
    torch.cuda.synchronize()
    b = buf.cpu()
    assert torch.isnan(b[:pad]).all() and torch.isnan(b[-pad:]).all(), "guard region written"
    assert not torch.isnan(out.cpu()).any(), "unwritten output elements"
    testing.assert_bit_exact(out.cpu(), ref.cpu(), "out= vs eager")

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        y_s = nc.linear(x, *args, bias=bias)
    torch.cuda.current_stream().wait_stream(s)
    testing.assert_bit_exact(y_s.cpu(), ref.cpu(), "non-default stream")

    static_x = x.clone()
    static_out = torch.empty(M, N, device="cuda", dtype=dtype)
    nc.linear_out(static_x, *args, bias, static_out)  # warm-up outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        nc.linear_out(static_x, *args, bias, static_out)
    x2 = torch.randn(M, K, device="cuda", dtype=dtype)
    static_x.copy_(x2)
    graph.replay()
    torch.cuda.synchronize()
    testing.assert_bit_exact(static_out.cpu(), nc.linear(x2, *args, bias=bias).cpu(), "graph replay")
    check_linear(static_out.cpu(), x2.cpu(), dense, bias.cpu(), nc.linear_path(x2, args[0], args[4], args[5]),
                 dtype, args[3], f"{name} graph replay")


def check_gemv(fmt, M, N, K, dtypes, gen, label):
    """A random [N, K] weight quantized with fmt (quantized()) and M random rows of x in each of dtypes through the
    native linear: asserts that the tensor-core GEMV takes it and that the result is within its derived bound."""
    dense, args = quantized(fmt, N, K)
    for dtype in dtypes:
        x = torch.randn(M, K, generator=gen).to(dtype)
        xc = x.cuda()
        path = nc.linear_path(xc, args[0], args[4], args[5])
        assert path == "mma", f"{label}: expected the tensor-core GEMV, got {path}"
        y = nc.linear(xc, *args)
        check_linear(y.cpu(), x, dense, None, path, dtype, args[3], f"{label} {dtype}")


@pytest.mark.parametrize("symmetric", [False, True])
def test_linear_per_channel_int4(symmetric):
    """Per-channel int4 (G = K) through the 4-bit tensor-core GEMV, including groups that are not a power of two
    (K = 4128, 96), against the FP32 reference within the GEMV's derived bound."""
    fmt = make_format("int4", group_size=None, symmetric=symmetric)
    gen = torch.Generator().manual_seed(2)
    for M, N, K in [(1, 4097, 4128), (5, 37, 96), (16, 130, 4128), (1, 300, 4096)]:
        check_gemv(fmt, M, N, K, [torch.bfloat16], gen, f"int4 per-channel sym={symmetric} M={M} N={N} K={K}")


@pytest.mark.parametrize("fmt_name", ["int4", "int4_sym", "nf4"])
@pytest.mark.parametrize("G", [32, 64, 128, 256])
def test_m1_float32_scale_group_sizes(fmt_name, G):
    """The M = 1 kernel (gemv.cu, GS) with float32 scales, with and without zero points, at every int4 group size:
    one to four groups a 128-column step, a partial last step (K = 3 G for G < 128: K % 128 != 0), rows past N in the
    last 32-row block, split K (N = 300, K = 8192: plan_nib4 takes 8 slices) and one slice (N = 4097)."""
    kw = {"block_size": G} if fmt_name == "nf4" else {"group_size": G, "symmetric": fmt_name == "int4_sym"}
    fmt = make_format(fmt_name.removesuffix("_sym"), **kw)
    gen = torch.Generator().manual_seed(G)
    for N, K in [(37, 3 * G), (300, 8192), (4097, 8192)]:
        check_gemv(fmt, 1, N, K, [torch.bfloat16, torch.float16], gen, f"{fmt_name} G={G} N={N} K={K}")


@pytest.mark.parametrize("M", [8, 16, 48, 72])
def test_deterministic_split_k(M):
    """The GEMV (M = 8; M = 72 in 16-row slabs) and the small-M GEMM (M = 16, 48) split K here; the fixed-order reduce
    gives equal runs."""
    dense, args = quantized("nf4", 37, 8192)
    x = torch.randn(M, 8192, device="cuda", dtype=torch.bfloat16)
    y1, y2 = nc.linear(x, *args), nc.linear(x, *args)
    testing.assert_bit_exact(y1.cpu(), y2.cpu(), "split-K run to run")


@pytest.mark.parametrize("col", [0, 16, 112])
@pytest.mark.parametrize("M", [1, 16, 64])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ["nvfp4", "mxfp4"])
def test_every_scale_byte_decodes_exactly(name, dtype, M, col):
    """Every E4M3 / E8M0 scale byte 0..255 (subnormals, zero, the largest, NaN) through the 4-bit GEMV (M = 1), the
    small-M GEMM (M = 16) and the register-A wgmma GEMM (M = 64, where the device takes it): row n has code 1.0
    (E2M1 code 2) everywhere and scale byte (n + g) % 256 in group g, x is one-hot on column col, so y[m, n] is one
    product 1.0 * s, s the scale of col's group, which the kernels round to x's dtype exactly as the reference rounds
    s (the global scale is 1). This pins the scale decodes (nib4.cuh scale_pair, the pairwise e4m3_pairs, and
    scale_f32x2 at M = 1) to the reference for every byte, and each group to its own scale. A row whose weights
    include a non-finite value (a NaN byte; with fp16 x an E8M0 byte >= 143, s >= 2^16, which overflows x's dtype)
    meets x's zeros there, and 0 * inf and 0 * NaN are NaN as in the float64 reference: such rows must come out NaN
    (inf where only col's weight is infinite: non-finite), never a finite wrong value. At M = 1 the scale stays in
    float32 (applied to the MMA's sum), so only NaN bytes make a weight non-finite there, and s >= 2^16 overflows
    only in the fp16 output (inf where it is col's scale)."""
    N, K = 256, 256
    _, args = quantized(name, N, K)
    qdata = torch.full((N, K // 2), 0x22, dtype=torch.uint8, device="cuda")
    ng = args[1].shape[1]
    idx = (torch.arange(N)[:, None] + torch.arange(ng)[None, :]) % 256
    scales = idx.to(torch.uint8).view(args[1].dtype).cuda()
    gs = torch.ones(1, device="cuda") if name == "nvfp4" else args[3]
    x = torch.zeros(M, K, device="cuda", dtype=dtype)
    x[:, col] = 1
    wargs = (qdata, scales, args[2], gs, args[4], args[5])
    if M == 64:
        if not nc.rs_takes(x, *wargs[:3], args[4], args[5]):
            pytest.skip("the register-A wgmma GEMM needs an sm_90 device")
        y = nc.linear_out(x, *wargs, None, torch.empty(M, N, device="cuda", dtype=dtype), rs=True).cpu()
    else:
        y = nc.linear(x, *wargs).cpu()
    s = idx.to(torch.uint8).view(args[1].dtype).float()  # [N, groups] float32 scales
    if M > 1:
        s = s.to(dtype)  # each weight, 1.0 * s, in x's dtype
    gc = col // args[5]
    others = torch.cat([s[:, :gc], s[:, gc + 1:]], 1)
    nan = (torch.isnan(s[:, gc]) | ~torch.isfinite(others).all(1))[None, :].expand(M, N)  # 0 * inf, 0 * NaN, NaN
    want = s[:, gc].to(dtype)[None, :].expand(M, N)  # M = 1: the float32 product, rounded once to x's dtype
    over = (torch.isinf(want) & ~nan).expand(M, N)
    assert torch.isnan(y[~over]).eq(nan[~over]).all(), f"{name} {dtype} M={M} col={col}: NaN pattern"
    assert not torch.isfinite(y[over]).any(), f"{name} {dtype} M={M} col={col}: a finite result for an infinite weight"
    bad = (y != want) & ~nan & ~over
    assert not bad.any(), f"{name} {dtype} M={M} col={col}: rows {bad[0].nonzero().flatten().tolist()[:8]} give " \
        f"{y[0][bad[0]][:8].tolist()}, want {want[0][bad[0]][:8].tolist()}"


@pytest.mark.parametrize("odd", [False, True])
def test_nvfp4_small_m_scale_alignment(odd):
    """The small-M GEMM reads nvfp4's two scales of a 32-code run as one 16-bit load (gemm_sm.cu SmScales), so
    sm_takes accepts 2-byte aligned scales only; scales viewed from an odd address take another kernel (the GEMV's
    M <= 16 kernel), and both stay within the derived bound of the FP32 reference. M = 12 on 4096^2: 16-warp blocks,
    the 64 KB table."""
    M, N, K, dtype = 12, 4096, 4096, torch.bfloat16
    dense, args = quantized("nvfp4", N, K)
    sc = args[1]
    if odd:
        buf = torch.zeros(sc.numel() + 1, dtype=torch.uint8, device="cuda")
        buf[1:] = sc.reshape(-1).view(torch.uint8)
        sc = buf[1:].view(sc.dtype).view(sc.shape)
        assert sc.data_ptr() % 2 == 1
    wargs = (args[0], sc) + tuple(args[2:])
    x = torch.randn(M, K, generator=torch.Generator().manual_seed(3)).to(dtype)
    xc = x.cuda()
    assert nc.sm_takes(xc, args[0], sc, args[2], args[4], args[5]) == (not odd)
    y = nc.linear(xc, *wargs)
    torch.cuda.synchronize()
    check_linear(y.cpu(), x, dense, None, nc.linear_path(xc, args[0], args[4], args[5]), dtype, args[3],
                 f"nvfp4 M={M} odd scales={odd}")


# --- W4A4 -----------------------------------------------------------------------------------------------------------

W4A4 = [("nvfp4", ""), ("mxfp4", "floor"), ("mxfp4", "rceil")]


def act_format(fmt, variant):
    return make_format("nvfp4") if fmt == "nvfp4" else make_format("mxfp4", scale_rule=variant)


@pytest.mark.parametrize("dtype", ACT, ids=str)
@pytest.mark.parametrize("fmt,variant", W4A4)
def test_act_quantize_bit_exact(fmt, variant, dtype):
    f = act_format(fmt, variant)
    gen = torch.Generator().manual_seed(3)
    for M, K in [(1, 64), (3, 256), (130, 512)]:
        x = (torch.randn(M, K, generator=gen) * torch.logspace(-3, 3, K).float()).to(dtype)
        if M > 2:
            x[1, 3] = float("inf")   # NaN policy: that block's scale is NaN, its codes 0
            x[2, 40] = float("nan")
            x[2, 64:96] = 0          # an all-zero block
        ref = f.quantize_ref(x.float())
        q, s, blocked, g = nc.act_quantize(x.cuda(), fmt, variant)
        torch.cuda.synchronize()
        testing.assert_bit_exact(q.cpu(), pack_nibbles_ref(ref.codes), f"{fmt} codes")
        testing.assert_bit_exact(s.cpu(), ref.scales, f"{fmt} scales")
        testing.assert_bit_exact(blocked.cpu(), to_blocked_scales(ref.scales), f"{fmt} blocked scales")
        if fmt == "nvfp4":
            testing.assert_bit_exact(g.cpu(), ref.global_scale, "nvfp4 global scale")


@pytest.mark.parametrize("dtype", ACT, ids=str)
@pytest.mark.parametrize("fmt,variant", W4A4)
def test_w4a4_linear_hopper_path(fmt, variant, dtype):
    """y vs the fp64 product of the reference-quantized x and W (dequantized by the references)."""
    f = act_format(fmt, variant)
    assert nc.w4a4_atom() in ("bf16-mma-fallback", "mxf4nvf4-block-scale")
    gen = torch.Generator().manual_seed(4)
    for M, N, K, with_bias in [(1, 37, 64, False), (5, 8, 128, True), (16, 130, 1024, True), (33, 4097, 512, False)]:
        w = torch.randn(N, K, generator=gen)
        x = torch.randn(M, K, generator=gen).to(dtype)
        bias = (torch.randn(N, generator=gen) * 0.1).to(dtype) if with_bias else None
        pw = f.quantize_ref(w)
        qw = pack_nibbles_ref(pw.codes).cuda()
        sw = to_blocked_scales(pw.scales).cuda()
        gw = None if pw.global_scale is None else pw.global_scale.cuda()
        y = nc.w4a4_linear(x.cuda(), fmt, qw, sw, gw, None if bias is None else bias.cuda(), variant)
        torch.cuda.synchronize()
        xd = f.dequantize_ref(f.quantize_ref(x.float()))
        wd = f.dequantize_ref(pw)
        ref = testing.reference_linear(xd, wd, bias)
        bound = testing.matmul_error_bound(xd, wd, dtype, bias) + \
            (4 * U32) * (xd.double().abs() @ wd.double().abs().T)
        testing.assert_within_bound(y.cpu(), ref, bound, f"w4a4 {fmt} {variant} {dtype} M={M} N={N} K={K}")
