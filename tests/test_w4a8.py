"""W4A8 (fourbit/ops/w4a8.py, kernels/w4a8.py): FP8 E4M3 activations x int4 / mxfp4 weights.

Activation quantization: the Triton kernel (and on a GPU the CUDA one) is bit-exact with quantize_act_ref (every
bf16 and fp16 bit pattern, E4M3 rounding ties, values at 448, E4M3 subnormals, zero / NaN / Inf rows, hypothesis rows). The GEMM is checked
against the float64 oracle (reference-quantized x8 times the exact weight values) within tc_bound, derived below.
Without a GPU the kernels run under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1), whose fp8
tl.dot multiplies in float32 numpy; the gpu-marked tests run the real FP8 wgmma path.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, strategies as st

import fourbit
from fourbit import testing
from fourbit.formats import Int4, MXFP4
from fourbit.formats._base import U32
from fourbit.ops import w4a8
from strategies import weights

kw = pytest.importorskip("fourbit.kernels.w4a8")
ON_GPU = torch.cuda.is_available()
DEV = "cuda" if ON_GPU else "cpu"
OPS = torch.ops.fourbit
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

# --- the error bound of the FP8 GEMM ---------------------------------------------------------------------------------
# Oracle: Y = s_m * sum_k x8_k * W_k (+ bias) in float64 (x8 from quantize_act_ref, W the exact weight values; every
# product x8 * w8 has <= 8 significant bits and all sums here are exact in float64). The kernel's only other errors:
# (1) inside one dot (one K step of BS = 32..128 elements, from a zero accumulator): the tensor core multiplies
#     exactly but adds with limited precision. DeepSeek-V3 reports ~14 retained bits on Hopper FP8 (H800); we
#     model each 32-wide k-chunk (one wgmma K step) as: the chunk's 32 products and the incoming partial are
#     aligned to the largest magnitude Mx among them and the outgoing partial, and truncated to F fraction bits,
#     so the chunk errs by < 34 * 2^(floor(log2 Mx) - F) (33 truncated terms + the result's normalisation). We
#     take F = 12, one bit fewer than DeepSeek's 14 significant bits, for margin. If every term and the incoming
#     partial are multiples of that ulp, nothing is lost: the chunk is exact (this makes the structured test below
#     tight: any wrong weight code or scale shows). Errors add along the step's chunks (Mx grown by them).
# (2) promotion: acc += dot * factor (factor = the group scale, or 2^E_window when mxfp4 folds) rounds twice in
#     float32: over nsteps steps at most (1.01 nsteps + 1) u * sum_s |dot_s * factor_s| (Higham 3.1, u = 2^-24).
# (3) epilogue: * s_m (u, relative to |y - bias|), + bias (u), rounding to the output dtype (u_out), and the dtypes'
#     subnormal floors.
F_BITS = 12
# The CUDA GEMM (csrc/cuda/gemm_w4a8.cu) keeps fewer bits: its weight operand bytes are (q - z) * 2^-9, subnormal for
# |q - z| <= 7, and a subnormal's exponent field overstates its value by up to 3 bits, which the tensor core's
# alignment (on exponent fields, by this model) loses. Measured (H100, 2026-11-27, 18 random cases, worst
# |error| / bound): F = 12 6942x, 11 2752x, 10 0.025, 9 0.007. So F = 12 - 3 = 9 for it.
F_BITS_NATIVE = 9


def operand_parts(qdata, scales, zeros, fmt, G, BS):
    """(float64 operand values [N, K], float64 step factors [N, K/BS]) in the units the bound's model needs (exact
    products; mxfp4 carries its power-of-two scales in the operand, which shifts the truncation grid exactly)."""
    N, K = qdata.shape[0], 2 * qdata.shape[1]
    if fmt == "mxfp4":
        return w4a8.weight_values(qdata, scales, zeros, fmt, G), torch.ones(N, K // BS, dtype=torch.float64)
    c = torch.stack([qdata & 15, qdata >> 4], -1).reshape(N, K).double()
    wop = c - (zeros.double().repeat_interleave(G, 1) if zeros.numel() else 8.0)
    fac = scales.double()[:, (torch.arange(K // BS) * BS) // G]
    return wop, fac


def tc_bound(x, qdata, scales, zeros, fmt, G, bias, out_dtype, BS, F=None):
    """(float64 oracle y [M, N], elementwise bound on |kernel - oracle|), see the derivation above (F: the fraction
    bits of the accumulation model, F_BITS by default)."""
    F = F_BITS if F is None else F
    qdata, scales, zeros = qdata.cpu(), scales.cpu(), zeros.cpu()
    x8, s = w4a8.quantize_act_ref(x.cpu())
    x8, s = x8.double(), s.double()
    wop, fac = operand_parts(qdata, scales, zeros, fmt, G, BS)
    M, K = x8.shape
    N = wop.shape[0]
    T = (x8[:, None, :] * wop[None, :, :]).view(M, N, K // BS, BS // 32, 32)
    P = torch.zeros(M, N, K // BS, dtype=torch.float64)
    E = torch.zeros_like(P)
    for j in range(BS // 32):
        t = T[..., j, :]
        Pn = P + t.sum(-1)
        mx = torch.maximum(torch.maximum(P.abs(), t.abs().amax(-1)), Pn.abs()) + E
        q = torch.exp2(torch.floor(torch.log2(torch.where(mx > 0, mx, 1.0))) - F)
        exact = (torch.frac(t / q[..., None]) == 0).all(-1) & (torch.frac(P / q) == 0)
        E = E + torch.where(exact | (mx == 0), 0.0, 34 * q)
        P = Pn
    W = w4a8.weight_values(qdata, scales, zeros, fmt, G)
    y0 = (x8 @ W.T) * s[:, None]
    y = y0 + bias.cpu().double() if bias is not None else y0
    A = ((P.abs() + E) * fac.abs()).sum(-1)
    acc_err = (E * fac.abs()).sum(-1) + (1.01 * (K // BS) + 1) * U32 * A
    u_out = testing.UNIT_ROUNDOFF[out_dtype]
    b = (s.abs()[:, None] * acc_err * (1 + u_out) + U32 * y0.abs() + (U32 + u_out) * y.abs() + testing.TINY[out_dtype]
         + 2.0**-149)
    return y, torch.where(torch.isnan(b), math.inf, b)


def run_kernel(x, qdata, scales, zeros, fmt, G, bias=None, fold=None, config=None):
    """(y from kernels.w4a8 on DEV (the interpreter without a GPU), the K step BS it used)."""
    d = [t.to(DEV) for t in (x, qdata, scales, zeros)]
    fid = kw.FMT_MXFP4 if fmt == "mxfp4" else (kw.FMT_INT4_ASYM if zeros.numel() else kw.FMT_INT4_SYM)
    if fold is None:
        fold = fid == kw.FMT_MXFP4 and kw.fold_ok(d[1], d[2])
    assert not fold or kw.fold_ok(d[1], d[2]), "folding these scales would not be exact"
    x8, s = kw.quantize_act(d[0])
    y = torch.empty(x.shape[0], qdata.shape[0], dtype=x.dtype, device=DEV)
    kw.linear(x8, s, d[1], d[2], d[3], fid, G, None if bias is None else bias.to(DEV), y, config=config, fold=fold)
    return y.cpu(), kw.step(fid, G, fold)


def check_linear(x, qw, bias=None, fold=None, name="", config=None):
    """The CUDA / interpreted kernel (through kernels.w4a8.linear) and the op's CPU reference against the oracle."""
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(qw)
    y, BS = run_kernel(x, qdata, scales, zeros, fmt, G, bias, fold, config)
    ref, bound = tc_bound(x, qdata, scales, zeros, fmt, G, bias, x.dtype, BS)
    testing.assert_within_bound(y, ref, bound, f"w4a8 kernel {name} fold={fold} config={config}")
    y_cpu = OPS.w4a8_linear(x.cpu(), qdata.cpu(), scales.cpu(), zeros.cpu(), fmt, G,
                            None if bias is None else bias.cpu())
    testing.assert_within_bound(y_cpu, ref, testing.UNIT_ROUNDOFF[x.dtype] * ref.abs() + testing.TINY[x.dtype],
                                f"w4a8 cpu op {name}")
    return y


# --- activation quantization: bit-exact --------------------------------------------------------------------------------

def e4m3_grid():
    """Every finite non-negative E4M3 value, ascending (float32)."""
    v = torch.arange(127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    return v.sort().values


def tricky_rows():
    """float32 rows whose quotients x / s hit every E4M3 rounding tie, both neighbours of each tie, the grid itself,
    448, at s = 2^e for e from -140 (s subnormal) to 20, plus zero, NaN,
    Inf, a lone subnormal (s underflows to 0 -> 1) and rows with s not a power of two."""
    g = e4m3_grid()
    mids = (g[1:] + g[:-1]) / 2
    up, down = torch.nextafter(mids, torch.tensor(math.inf)), torch.nextafter(mids, torch.tensor(0.0))
    base = torch.cat([g, mids, up, down, torch.tensor([448.0, 447.99])])
    base = torch.cat([base, -base])
    rows = [base * 2.0**e for e in (-140, -130, -20, -9, -3, 0, 5, 20)]
    rows += [base * 1.37, base / 3.0, torch.zeros_like(base), base * (1 + 2.0**-23)]  # last: x / s rounds above 448
    special = torch.randn(5, base.numel(), generator=torch.Generator().manual_seed(0))
    special[0, 3], special[1, 9], special[2, 0] = math.nan, math.inf, -math.inf
    special[3] = 0.0
    special[3, 7] = 2.0**-149  # amax / 448 underflows to 0: s = 1, x8 = 0
    special[4] *= 2.0**-126
    return torch.cat([torch.stack(rows), special])


def check_act(x):
    """Both kernel variants (one pass per row, two passes over 4-row blocks) bit-exact with the reference; where
    K % 128 == 0 also the CUDA GEMM's K order (perm=True) against x8_perm of the reference."""
    qr, sr = w4a8.quantize_act_ref(x)
    cases = [(True, 0, 1), (False, 0, 1), (True, 0, 2)]  # 2: several rows a one-pass program
    if x.shape[1] % 128 == 0:
        cases += [(True, kw.PERM_INT4, 1), (False, kw.PERM_INT4, 1), (True, kw.PERM_MXFP4, 1)]
    for one_pass, perm, rows in cases:
        q, s = kw.quantize_act(x.to(DEV).contiguous(), one_pass=one_pass, perm=perm, rows=rows)
        want = kw.x8_perm(qr.view(torch.uint8), perm) if perm else qr.view(torch.uint8)
        what = f"one_pass={one_pass} perm={perm} rows={rows}"
        testing.assert_bit_exact(s.cpu(), sr, f"s {what}")
        testing.assert_bit_exact(q.cpu().view(torch.uint8), want, f"x8 bytes {what}")
    if ON_GPU:
        check_act_cuda(x)


def check_act_cuda(x):
    """The CUDA quantizer (csrc/cuda/act_e4m3.cu) bit-exact with the reference, in both K orders. Its 16-byte loads
    need K % 8 == 0: other rows are padded with zero columns to a multiple of 128 (a zero changes neither amax nor
    any other byte; the reference runs on the padded rows too)."""
    from fourbit.ops import _native_cuda as nc
    K = x.shape[1]
    if K % 8:
        x = torch.cat([x, x.new_zeros(x.shape[0], -K % 128)], 1)
    qr, sr = w4a8.quantize_act_ref(x)
    xd = x.to(DEV).contiguous()
    assert nc.w4a8_act_takes(xd)
    for perm in (0, kw.PERM_INT4, kw.PERM_MXFP4) if x.shape[1] % 128 == 0 else (0,):
        q = torch.empty(x.shape, dtype=torch.uint8, device=DEV)
        s = torch.empty(x.shape[0], dtype=torch.float32, device=DEV)
        nc.act_quantize_e4m3(xd, q, s, perm)
        want = kw.x8_perm(qr.view(torch.uint8), perm) if perm else qr.view(torch.uint8)
        testing.assert_bit_exact(s.cpu(), sr, f"cuda s perm={perm} {x.dtype}")
        testing.assert_bit_exact(q.cpu(), want, f"cuda x8 bytes perm={perm} {x.dtype}")


def test_x8_perm_is_the_gemm_k_order():
    """x8_perm moves real column r of each 128-K chunk to MMA position 32 s + 16 (r odd) + 4 q + i, where thread q's
    code word s of the CUDA GEMM (csrc/cuda/gemm_w4a8.cu) holds real K 32 q + 8 s + 2 i (even) / 2 i + 1 (odd): each
    position is filled once, and chunks do not mix."""
    K = 384
    r = torch.arange(K)
    p = kw.x8_perm(r[None, :])[0]  # p[pos] = the real column stored at pos
    assert sorted(p.tolist()) == list(range(K)) and ((p // 128) == (r // 128)).all()
    for pos in (0, 1, 3, 4, 16, 17, 20, 32, 127, 200):
        c, base = pos % 128, pos - pos % 128
        s, odd, q, i = c // 32, (c // 16) % 2, (c % 16) // 4, c % 4
        assert p[pos] == base + 32 * q + 8 * s + 2 * i + odd, pos
    # mxfp4 (PERM_MXFP4): word s of thread q holds real K 32 q + 8 s + j; its low half (j < 4) is the MMA register at
    # position 32 s + 4 q + j, its high half the one 16 after
    p = kw.x8_perm(r[None, :], kw.PERM_MXFP4)[0]
    assert sorted(p.tolist()) == list(range(K)) and ((p // 128) == (r // 128)).all()
    for pos in range(K):
        c, base = pos % 128, pos - pos % 128
        s, hi, q, i = c // 32, (c // 16) % 2, (c % 16) // 4, c % 4
        assert p[pos] == base + 32 * q + 8 * s + 4 * hi + i, pos


def test_act_quant_tricky_values():
    x = tricky_rows()
    check_act(x)
    _, s = w4a8.quantize_act_ref(x)
    assert s[0].item() == 2.0**-140 and s[5].item() == 1.0 and torch.isnan(s[-5:-2]).all() and s[-2] == 1.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_act_quant_every_16bit_pattern(dtype):
    """All 65536 bit patterns, each row holding a different mix (two arrangements, so values meet other maxima)."""
    x = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(dtype).reshape(256, 256)
    check_act(x)
    check_act(x.T.contiguous()[:, :200].contiguous())


@given(st.sampled_from([Int4(group_size=32), MXFP4()]).flatmap(lambda f: weights(f, max_rows=5, max_groups=3)))
def test_act_quant_property(x):
    """Rows with zero groups, outliers, ties, constants, tiny values, in all three dtypes (tests/strategies.py)."""
    check_act(x)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_gpu_act_cuda_long_rows(dtype):
    """Rows longer than the CUDA quantizer keeps in registers (K = 20480 > 16384: the tail is read twice), with a
    NaN / Inf / zero row and an outlier in the re-read tail, bit-exact in both K orders; K = 8 (one piece) too."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 20480, generator=gen)
    x[1, 20000] = math.nan
    x[2, 5] = -math.inf
    x[3] = 0.0
    x[4, 19999] = 3.0e4  # the row maximum lies in the re-read part
    check_act_cuda(x.to(dtype))
    check_act_cuda(torch.randn(3, 8, generator=gen).to(dtype))


def test_act_quant_reference_policy():
    """The documented rules, checked on the reference itself: s = amax / 448, saturation, zero / NaN rows."""
    x = torch.tensor([[448.0 * 3, -1.0, 0.0, 1000.0 * 3], [0.0, 0.0, 0.0, 0.0], [1.0, math.nan, 2.0, 3.0]])
    q, s = w4a8.quantize_act_ref(x)
    assert s[0].item() == torch.tensor(3000.0 / 448.0).item() and s[1].item() == 1.0 and math.isnan(s[2].item())
    assert q[0, 3].float().item() == 448.0 and q[1].float().abs().sum() == 0 and q[2].float().abs().sum() == 0


# --- the GEMM within the bound -----------------------------------------------------------------------------------------

FMTS = {"int4_g128": Int4(group_size=128), "int4_sym_g64": Int4(group_size=64, symmetric=True),
        "int4_g32": Int4(group_size=32), "int4_perchannel": Int4(group_size=None), "mxfp4": MXFP4(),
        "mxfp4_rceil": MXFP4(scale_rule="rceil")}


@pytest.mark.parametrize("name", sorted(FMTS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_linear_within_bound(name, dtype):
    gen = torch.Generator().manual_seed(len(name))
    K = 384 if name != "int4_perchannel" else 320
    w = torch.randn(24, K, generator=gen) * 0.05
    w[3, :64] = 0.0
    qw = fourbit.quantize(w, FMTS[name])
    x = torch.randn(19, K, generator=gen).to(dtype)
    x[4] = 0.0
    x[5, 7] = 40.0
    bias = torch.randn(24, generator=gen).to(dtype)
    for fold in ((False, True) if name.startswith("mxfp4") else (None,)):
        check_linear(x, qw, bias if fold is not True else None, fold, f"{name} {dtype}")
    if not ON_GPU:  # the interpreter's default is (16, 16, SWAP 0): also SWAP 1
        check_linear(x, qw, bias, None, f"{name} {dtype}", config=(16, 16, 1, 1, 1))


def structured(seed, N=16, K=256, M=12, sym=False, fmt=None, coarse=False):
    """x rows on {0, +-a, +-a/2, +-a/4} (x8 in {0, 112, 224, 448}) and int4 weights: every partial sum is a multiple
    of 16 below 2^12 * 16 in magnitude, so the tensor core's accumulation is exact and the bound is float32-tight.
    coarse: x on {0, +-a} only, 60% zeros (x8 in {0, 448}: multiples of 64), and codes within 3 of the zero point
    but for two columns a group: sums stay below 2^16, where F_BITS_NATIVE keeps multiples of 64 exact."""
    gen = torch.Generator().manual_seed(seed)
    levels = [0.0, 0, 0, 1, -1] if coarse else [0.0, 1, -1, .5, -.5, .25, -.25]
    x = torch.tensor(levels)[torch.randint(0, len(levels), (M, K), generator=gen)]
    x[:, 0] = 1.0  # amax = 1 in every row: s = 1/448
    x = x * torch.exp2(torch.randint(-4, 5, (M, 1), generator=gen).float())
    if fmt == "mxfp4":
        w = torch.randn(N, K, generator=gen) * 0.1
    else:
        w = torch.randint(-3 if coarse else -7, 4 if coarse else 8, (N, K), generator=gen).float() * 0.01
        w[:, ::32] = 0.07  # fixes each group's range so the codes stay the integers drawn
        w[:, 1::32] = -0.08
    qw = fourbit.quantize(w, fmt or Int4(group_size=64, symmetric=sym))
    return x, qw


def test_structured_exact_catches_one_wrong_code():
    x, qw = structured(1)
    check_linear(x, qw)  # passes with the tight bound
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(qw)
    ref, bound = tc_bound(x, qdata, scales, zeros, fmt, G, None, x.dtype, 64)
    assert (bound < 1e-5 * ref.abs().max()).all()  # float32-tight: no tensor-core accumulation term
    qd = qdata.clone()
    qd[5, 40] ^= 0x01  # one code off by one (element 80 of row 5)
    with pytest.raises(AssertionError, match="exceed the bound"):
        testing.assert_within_bound(run_kernel(x, qd, scales, zeros, fmt, G)[0], ref, bound, "mutated code")
    with pytest.raises(AssertionError, match="exceed the bound"):
        sc = scales.clone()
        sc[3, 1] *= 1.001
        testing.assert_within_bound(run_kernel(x, qdata, sc, zeros, fmt, G)[0], ref, bound, "mutated scale")


@given(st.integers(0, 2**31 - 1), st.sampled_from(["int4", "int4_sym", "mxfp4"]), st.integers(1, 20),
       st.integers(1, 24), st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))
def test_linear_property(seed, name, M, N, dtype):
    """Random shapes, formats, dtypes; weights and activations from tests/strategies.py's tricky generator."""
    gen = torch.Generator().manual_seed(seed)
    fmt = {"int4": Int4(group_size=[32, 64, 128][seed % 3]), "int4_sym": Int4(group_size=64, symmetric=True),
           "mxfp4": MXFP4()}[name]
    K = (fmt.group_size or 32) * (1 + seed % 3)
    w = torch.randn(N, K, generator=gen) * 2.0 ** (seed % 7 - 3)
    if seed % 5 == 0:
        w[0, : fmt.group_size or K] = 0.0
    x = (torch.randn(M, K, generator=gen) * 2.0 ** (seed % 11 - 5)).to(dtype)
    if seed % 4 == 0:
        x[0] = 0.0
    check_linear(x.contiguous(), fourbit.quantize(w, fmt), None, None, f"{name} seed={seed}")


def test_fold_decision():
    """mxfp4 folds only where exact: a row whose 128-K window spans more than 8 exponents (with nonzero codes) or
    holds a NaN scale takes the per-group path, and both paths give the oracle's answer."""
    w = torch.randn(8, 256, generator=torch.Generator().manual_seed(2))
    qw = fourbit.quantize(w, "mxfp4")
    assert kw.fold_ok(qw.qdata, qw.scales)
    w[2, 32:64] *= 2.0**-12
    qw = fourbit.quantize(w, "mxfp4")
    assert not kw.fold_ok(qw.qdata, qw.scales)
    check_linear(torch.randn(5, 256), qw, name="spread")
    w[2, 32:64] = 0.0  # an all-zero group (exponent -127) does not count
    assert kw.fold_ok(*fourbit.quantize(w, "mxfp4").op_args()[:2])
    lin = fourbit.QuantLinear.from_weight(w, None, "mxfp4", act="fp8_e4m3")
    args = w4a8.w4a8_args(lin.quantized_weight())
    assert kw.fold_ok(args[0], args[1])
    calls = []
    orig = torch.Tensor.item
    try:  # a second forward hands fresh views of the same buffers: the cached decision, no host sync
        torch.Tensor.item = lambda t: calls.append(1) or orig(t)
        args2 = w4a8.w4a8_args(lin.quantized_weight())
        assert args2[1] is not args[1] and kw.fold_ok(args2[0], args2[1]) and not calls
    finally:
        torch.Tensor.item = orig
    w[1, 3] = math.nan
    qn = fourbit.quantize(w, "mxfp4")
    assert not kw.fold_ok(qn.qdata, qn.scales)
    y = fourbit.linear(torch.randn(3, 256), qn, act="fp8_e4m3")
    assert torch.isnan(y[:, 1]).all() and not torch.isnan(y[:, [0, 2]]).any()


def span_rows(K, gen):
    """mxfp4 (qdata, scales) of 6 rows whose scale exponents span the row-wise fold's limits: rows 0-1 exactly ROW_SPAN
    between the largest group and a group with nonzero codes (row 1 at exponent bytes 0 .. 14); row 2 up to the
    largest byte 254; row 3 an all-zero-code group at byte 0, 100 below the rest (it does not count); row 4 byte 3 in
    every group (the factor 2^-130 is a float32 subnormal); row 5 all codes zero."""
    KG = K // 32
    qdata = torch.randint(0, 256, (6, K // 2), dtype=torch.uint8, generator=gen)
    qdata.view(6, KG, 16)[:, :, 0] |= 0x11  # every group has nonzero codes ...
    e = torch.randint(100, 100 + kw.ROW_SPAN + 1, (6, KG), generator=gen).to(torch.uint8)
    e[0, 1], e[0, 0] = 100, 100 + kw.ROW_SPAN
    e[1] = torch.randint(0, kw.ROW_SPAN + 1, (KG,), generator=gen).to(torch.uint8)
    e[1, KG - 1], e[1, KG // 2] = 0, kw.ROW_SPAN
    e[2] = torch.randint(254 - kw.ROW_SPAN, 255, (KG,), generator=gen).to(torch.uint8)
    e[2, 0] = 254
    qdata.view(6, KG, 16)[3, 1] = 0x88  # ... but this one (codes +-0)
    e[3, 1] = 0
    e[4] = 3
    qdata[5] = 0
    return qdata, e.view(torch.float8_e8m0fnu)


@pytest.mark.parametrize("K", [512, 288, 8256])  # BS 128; BS 32 (K % 128 != 0); 258 groups (two max passes)
def test_weight_fp8_rows_exact(K):
    """The row-wise fold (weight_fp8_rows: E4M3 operand times one factor a row) is exact for every row that fold_ok
    accepts with window = K and span ROW_SPAN, at the span's edge, the largest exponent and a subnormal factor; one
    more exponent of span is refused."""
    qdata, scales = span_rows(K, torch.Generator().manual_seed(K))
    assert kw.fold_ok(qdata, scales, window=K, span=kw.ROW_SPAN)
    w8, f = kw.weight_fp8_rows(qdata.to(DEV), scales.to(DEV))
    w = w8.cpu().double() * f.cpu().double()[:, None]  # float64: exact products
    testing.assert_bit_exact(w, w4a8.weight_values(qdata, scales, qdata.new_empty(0), "mxfp4", 32), "weight_fp8_rows")
    assert f[4].item() == 2.0**-130  # a float32 subnormal
    far = scales.view(torch.uint8).clone()
    far[0, 1] -= 1  # 15 exponents below the row's largest, with nonzero codes: 0.5 * 2^-9 is no E4M3 value
    assert not kw.fold_ok(qdata, far.view(torch.float8_e8m0fnu), window=K, span=kw.ROW_SPAN)


# --- the op: errors, opcheck -------------------------------------------------------------------------------------------

def _args(fmt="int4", N=8, K=128, M=3, dtype=torch.float32, device="cpu"):
    qw = fourbit.quantize(torch.randn(N, K), fmt)
    return (torch.randn(M, K, dtype=dtype).to(device), *[t.to(device) if isinstance(t, torch.Tensor) else t
                                                         for t in w4a8.w4a8_args(qw)])


@pytest.mark.parametrize("bad,rule", [("nvfp4", "6 significant bits"), ("nf4", "not representable in E4M3"),
                                      ("bnb_fp4", "not representable in E4M3"), ("int8", "7 significant bits")])
def test_rejected_formats(bad, rule):
    with pytest.raises(ValueError, match=rf"fmt='{bad}'.*{rule}"):
        OPS.w4a8_linear(*_args()[:4], bad, 128, None)
    with pytest.raises(ValueError, match=rf"format='{bad}'.*{rule}"):
        fourbit.linear(torch.randn(2, 128), fourbit.quantize(torch.randn(4, 128), bad), act="fp8_e4m3")
    with pytest.raises(ValueError, match=rf"format='{bad}'.*{rule}"):
        fourbit.QuantConfig(bad, act="fp8_e4m3")
    with pytest.raises(ValueError, match=rf"format='{bad}'"):
        fourbit.QuantConfig("int4", overrides={"*.q_proj": bad}, act="fp8_e4m3")


def test_argument_errors():
    x, q, s, z, fmt, G = _args()
    with pytest.raises(ValueError, match="group_size=16 must be a positive multiple of 32"):
        OPS.w4a8_linear(x, q, s[:, :1].repeat(1, 8).contiguous(), z.repeat(1, 8).contiguous(), fmt, 16, None)
    with pytest.raises(ValueError, match="fmt must be one of"):
        OPS.w4a8_linear(x, q, s, z, "int3", G, None)
    with pytest.raises(TypeError, match="x must have dtype"):
        OPS.w4a8_linear(x.to(torch.float64), q, s, z, fmt, G, None)
    with pytest.raises(ValueError, match=r"x must have shape \[..., K=128\]"):
        OPS.w4a8_linear(x[:, :64].contiguous(), q, s, z, fmt, G, None)
    with pytest.raises(ValueError, match="x must be contiguous"):
        OPS.w4a8_linear(torch.randn(128, 3).T, q, s, z, fmt, G, None)
    with pytest.raises(TypeError, match="scales must have dtype"):
        OPS.w4a8_linear(x, q, s.to(torch.float16), z, fmt, G, None)
    with pytest.raises(ValueError, match="scales must have shape"):
        OPS.w4a8_linear(x, q, s[:4].contiguous(), z, fmt, G, None)
    with pytest.raises(ValueError, match="zeros must be empty"):
        OPS.w4a8_linear(*_args("mxfp4")[:3], z, "mxfp4", 32, None)
    with pytest.raises(ValueError, match="group_size for mxfp4 is fixed at 32"):
        OPS.w4a8_linear(*_args("mxfp4")[:4], "mxfp4", 64, None)
    with pytest.raises(TypeError, match="qdata must have dtype"):
        OPS.w4a8_linear(x, q.view(torch.int8), s, z, fmt, G, None)
    with pytest.raises(ValueError, match="bias must have shape"):
        OPS.w4a8_linear(x, q, s, z, fmt, G, torch.zeros(3))
    with pytest.raises(ValueError, match="x must not be empty"):
        OPS.w4a8_linear(x[:0], q, s, z, fmt, G, None)
    with pytest.raises(ValueError, match="act must be one of"):
        fourbit.QuantConfig("int4", act="fp8")
    with pytest.raises(ValueError, match="group size gcd"):  # K = 48 with g32 groups: kernel groups of 16
        fourbit.QuantLinear.from_linear(torch.nn.Linear(48, 64), Int4(group_size=32), act="fp8_e4m3")


def _utils(fmt):
    # opcheck's test_schema perturbs inputs with arithmetic float8 (E8M0) tensors lack (as in tests/test_ops.py);
    # the schema is checked on the int4 samples, the other checks run on every format
    return ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic") if fmt == "mxfp4" else \
        ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def test_opcheck_cpu():
    for fmt in ("int4", "int4_sym", "mxfp4"):
        x, q, s, z, f, G = _args(fmt, dtype=torch.bfloat16)
        torch.library.opcheck(OPS.w4a8_linear, (x, q, s, z, f, G, torch.randn(8).bfloat16()), test_utils=_utils(f))
        torch.library.opcheck(OPS.w4a8_linear, (x.reshape(1, 3, 128), q, s, z, f, G, None), test_utils=_utils(f))


# --- opt-in: config, module, state_dict ---------------------------------------------------------------------------------

class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(256, 96)
        self.down = torch.nn.Linear(96, 64)  # K = 96: int4 g128 groups cross rows, kernel group gcd = 32

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


@pytest.mark.parametrize("fmt", ["int4", "mxfp4"])
def test_config_opt_in_and_state_dict(fmt):
    torch.manual_seed(0)
    base = _Tiny()
    fp8, plain = _Tiny(), _Tiny()
    fp8.load_state_dict(base.state_dict())
    plain.load_state_dict(base.state_dict())
    fourbit.quantize_(fp8, fourbit.QuantConfig(fmt, act="fp8_e4m3"))
    fourbit.quantize_(plain, fourbit.QuantConfig(fmt))
    assert fp8.up.act == "fp8_e4m3" and plain.up.act == "bf16" and "act=fp8_e4m3" in repr(fp8.up)
    x = torch.randn(7, 256)
    h = torch.relu(OPS.w4a8_linear(x, *w4a8.w4a8_args(fp8.up.quantized_weight()), fp8.up.bias))
    expect = OPS.w4a8_linear(h, *w4a8.w4a8_args(fp8.down.quantized_weight()), fp8.down.bias)
    testing.assert_bit_exact(fp8(x), expect, "W4A8 model")
    testing.assert_bit_exact(plain(x), plain.down(torch.relu(plain.up(x))), "W4A16 model")
    y16, y8, yf = plain(x), fp8(x), base(x)
    assert not torch.equal(y16, y8)
    assert (y8 - yf).norm() < 0.2 * yf.norm()
    # the state_dict is the documented W4A16 one (act is a module attribute, set by the config)
    sd = fp8.state_dict()
    assert set(sd) == set(plain.state_dict())
    again = _Tiny()
    fourbit.quantize_(again, fourbit.QuantConfig(fmt, act="fp8_e4m3"))
    again.load_state_dict(sd)
    testing.assert_bit_exact(again(x), y8, "reloaded")


def test_quant_linear_forward_matches_reference():
    lin = torch.nn.Linear(256, 40)
    q = fourbit.QuantLinear.from_linear(lin, "int4", act="fp8_e4m3")
    x = torch.randn(2, 3, 256).bfloat16()
    y = q(x)
    qd, sc, z, f, G = w4a8.w4a8_args(q.quantized_weight())
    testing.assert_bit_exact(y, w4a8.linear_ref(x, qd, sc, z, f, G, lin.bias.detach().bfloat16()), "QuantLinear")
    assert y.shape == (2, 3, 40) and y.dtype == torch.bfloat16


def test_native_route_glue(monkeypatch):
    """The op's route into the CUDA GEMM (ops.w4a8.linear_into), run here with a stand-in for the native call that
    undoes x8_perm and computes the reference math: x8 is quantized in the GEMM's K order, the row scales, codes,
    scales, zeros (None for symmetric int4), group and bias reach it, and the route stops at NATIVE_MAX_M, for mxfp4
    and with FOURBIT_W4A8_CUDA=0. after_act (the GEMM's early launch) is set only when the CUDA quantizer made x8,
    which it did not here."""
    from fourbit.ops import _native_cuda as nc
    calls = []

    def fake(x8, xs, qdata, scales, zeros, G, bias, out, after_act=False):
        K = x8.shape[1]
        mx = scales.dtype == torch.float8_e8m0fnu
        inv = kw.x8_perm(torch.arange(K)[None, :], kw.PERM_MXFP4 if mx else kw.PERM_INT4)[0]  # real column at pos
        x8r = torch.empty_like(x8.view(torch.uint8))
        x8r[:, inv] = x8.view(torch.uint8)
        z = torch.empty(0, dtype=torch.uint8) if zeros is None else zeros
        W = w4a8.weight_values(qdata, scales, z, "mxfp4" if mx else "int4", G)
        y = (x8r.view(torch.float8_e4m3fn).double() @ W.T) * xs.double()[:, None]
        out.copy_((y + bias.double() if bias is not None else y).to(out.dtype))
        calls.append(zeros is None)
        assert not after_act, "after_act without the CUDA quantizer before the GEMM"
    monkeypatch.setattr(nc, "available", lambda: True)
    monkeypatch.setattr(nc, "w4a8_takes", lambda qdata, scales, G: qdata.shape[1] * 2 % 128 == 0 and (
        G % 128 == 0 if scales.dtype == torch.float32 else G == 32))
    monkeypatch.setattr(nc, "w4a8_linear_out", fake)
    gen = torch.Generator().manual_seed(3)
    for fmt_ in (Int4(group_size=128), Int4(group_size=128, symmetric=True), MXFP4()):
        qdata, scales, zeros, fmt, G = w4a8.w4a8_args(fourbit.quantize(torch.randn(40, 256, generator=gen), fmt_))
        x = torch.randn(5, 256, generator=gen).bfloat16()
        bias = torch.randn(40, generator=gen).bfloat16()
        y = torch.empty(5, 40, dtype=torch.bfloat16)
        w4a8.linear_into(x, qdata, scales, zeros, fmt, G, bias, y)
        assert calls[-1] == (not zeros.numel()), "symmetric int4 and mxfp4 pass zeros=None, asymmetric its zeros"
        torch.testing.assert_close(y, w4a8.linear_ref(x, qdata, scales, zeros, fmt, G, bias), rtol=0, atol=0)
    assert len(calls) == 3
    assert w4a8.native_gemm(qdata, scales, "mxfp4", G, w4a8.NATIVE_MAX_M)
    far = scales.view(torch.uint8).clone()
    far[7, 1] = far[7, 0] + w4a8.MX_NATIVE_SPAN + 1  # a group 2^6 above another of its window: not exact in the tables
    assert kw.fold_ok(qdata, far.view(torch.float8_e8m0fnu)) and \
        not w4a8.native_gemm(qdata, far.view(torch.float8_e8m0fnu), "mxfp4", G, 5)
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(fourbit.quantize(torch.randn(40, 256, generator=gen), "int4"))
    assert w4a8.native_gemm(qdata, scales, "int4", G, w4a8.NATIVE_MAX_M)
    assert not w4a8.native_gemm(qdata, scales, "int4", G, w4a8.NATIVE_MAX_M + 1)
    monkeypatch.setenv("FOURBIT_W4A8_CUDA", "0")
    assert not w4a8.native_gemm(qdata, scales, "int4", G, 5)
    assert len(calls) == 3


def test_report_names():
    from fourbit.report import split_act
    assert split_act("int4+fp8") == ("int4", "fp8_e4m3") and split_act("mxfp4") == ("mxfp4", "bf16")


# --- GPU ---------------------------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_gpu_act_quant_exhaustive():
    for dtype in (torch.bfloat16, torch.float16):
        x = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(dtype).reshape(256, 256)
        check_act(x)
        check_act(x.reshape(64, 1024))
    check_act(tricky_rows())
    check_act(torch.randn(4099, 4096))


@pytest.mark.gpu
@pytest.mark.parametrize("M", [1, 17, 255, 600])
@pytest.mark.parametrize("name", sorted(FMTS))
def test_gpu_linear_within_bound(name, M, monkeypatch):
    """The default config (FOURBIT_TRITON_AUTOTUNE=0) on every format, dtype and M bucket."""
    monkeypatch.setenv("FOURBIT_TRITON_AUTOTUNE", "0")
    gen = torch.Generator().manual_seed(M)
    N, K = (264, 1024) if M < 256 else (136, 512)
    K = K if name != "int4_perchannel" else K * 5 // 8  # 640 / 320: per-channel groups of K, steps of 64
    qw = fourbit.quantize(torch.randn(N, K, generator=gen) * 0.05, FMTS[name])
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        x = torch.randn(M, K, generator=gen).to(dtype)
        bias = torch.randn(N, generator=gen).to(dtype)
        for fold in ((False, True) if name.startswith("mxfp4") else (None,)):
            check_linear(x, qw, bias, fold, f"{name} M={M} {dtype}")


@pytest.mark.gpu
@pytest.mark.parametrize("cfg", sorted({c for cs in kw._SPACE.values() for c in cs}))
def test_gpu_every_tuned_config(cfg):
    """Each config of the tuning space (pick() runs the first of each bucket), on the formats the benchmark times (int4 g128, mxfp4 both paths)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(300, 512, generator=gen).bfloat16()
    for name, fold in (("int4_g128", None), ("mxfp4", True), ("mxfp4", False)):
        qw = fourbit.quantize(torch.randn(264, 512, generator=gen) * 0.05, FMTS[name])
        check_linear(x, qw, None, fold, name, config=cfg)


@pytest.mark.gpu
@pytest.mark.parametrize("M", [16, 300])
def test_gpu_structured_exact(M):
    """The accumulation model's exact case on the real FP8 tensor cores (tight bound: float32 roundings only)."""
    for sym in (False, True):
        check_linear(*structured(M, N=200, K=1024, M=M, sym=sym), name=f"structured sym={sym}")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["int4_g128", "mxfp4"])
def test_gpu_blockwise_cublas_path(name):
    """From BLOCKWISE_MIN_M the op runs W as E4M3 + per-window factors through cuBLAS's block-scaled FP8 GEMM: within
    the same bound as the fused kernel at BS = 128 (its structure), every output dtype, with and without bias; the
    weight conversion alone is exact (w8 * f == the reference weight)."""
    gen = torch.Generator().manual_seed(9)
    N, K, M = 272, 1024, kw.BLOCKWISE_MIN_M + 3
    qw = fourbit.quantize(torch.randn(N, K, generator=gen) * 0.05, FMTS[name])
    qdata, scales, zeros, fmt, G = (a.to(DEV) if isinstance(a, torch.Tensor) else a for a in w4a8.w4a8_args(qw))
    fid = kw.FMT_MXFP4 if fmt == "mxfp4" else kw.FMT_INT4_ASYM
    fold = fid == kw.FMT_MXFP4
    assert not fold or kw.fold_ok(qdata, scales)  # random normal weights: every window folds exactly
    assert kw.path(M, N, fid, G, fold, qdata.device) == "blockwise"
    w8, f = kw.weight_fp8(qdata, scales, zeros, fid, G, fold)
    w = w8.cpu().double() * f.t().cpu().double().repeat_interleave(128, dim=1)  # float64: exact products
    testing.assert_bit_exact(w, w4a8.weight_values(*w4a8.w4a8_args(qw)), "weight_fp8")
    before = kw.blockwise_fallbacks
    for rows in (M, kw.BLOCKWISE_MIN_M):  # 3 tail rows through the fused kernel; a multiple of 16
        for dtype in (torch.bfloat16, torch.float16, torch.float32):
            x = torch.randn(rows, K, generator=gen).to(dtype)
            b = torch.randn(N + 1, generator=gen).to(dtype).to(DEV)
            for bias in (None, b[:N], b[1:]):  # b[1:]: not 16-byte aligned, which cuBLAS refuses (a copy goes)
                check_linear(x, qw, bias, None, f"{name} blockwise M={rows} {dtype}")
    assert kw.blockwise_fallbacks == before, "cuBLAS refused a block-scaled shape (the fused kernel ran instead)"


@pytest.mark.gpu
def test_gpu_rowwise_cublas_path():
    """From ROWWISE_MIN_M mxfp4 whose rows fold to one factor each runs cuBLAS's row-wise scaled FP8 GEMM: within the
    bound of the structure with one promotion per 128 K (the model of the block-scaled path), for rows M % 16 != 0,
    every output dtype, with and without bias; weights whose 128-K windows do not fold (a group 12 exponents down,
    operand bytes down to 2^-9) take it too. Output dtypes torch's row-wise _scaled_mm refuses go the block-scaled
    way (the probe; bf16 must be taken)."""
    gen = torch.Generator().manual_seed(21)
    N, K, M = 272, 1024, kw.ROWWISE_MIN_M
    w = torch.randn(N, K, generator=gen) * 0.05
    w[3, 32:64] *= 2.0**-12
    w[5, 64:96] = 0.0
    qw = fourbit.quantize(w, "mxfp4")
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(qw)
    qd, sc, zd = qdata.cuda(), scales.cuda(), zeros.cuda()
    assert not kw.fold_ok(qd, sc) and kw.fold_ok(qd, sc, window=K, span=kw.ROW_SPAN)
    before = kw.blockwise_fallbacks
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        y = torch.empty(M, N, dtype=dtype, device="cuda")
        taken = kw.rowwise_ok(M, qd, sc, y)
        assert taken or dtype != torch.bfloat16, "row-wise cuBLAS refused bf16"
        if not taken:
            continue
        for rows in (M + 3, M):
            x = torch.randn(rows, K, generator=gen).to(dtype)
            b = torch.randn(N + 1, generator=gen).to(dtype)
            for bias in (None, b[:N], b[1:]):
                x8, s = kw.quantize_act(x.cuda())
                y = torch.empty(rows, N, dtype=dtype, device="cuda")
                kw.linear(x8, s, qd, sc, zd, kw.FMT_MXFP4, G, None if bias is None else bias.cuda(), y)
                ref, bound = tc_bound(x, qdata, scales, zeros, fmt, G, bias, dtype, 128)
                testing.assert_within_bound(y.cpu(), ref, bound, f"row-wise M={rows} {dtype} bias={bias is not None}")
    assert kw.blockwise_fallbacks == before, "cuBLAS refused a row-wise call (the block-scaled path ran instead)"


@pytest.mark.gpu
def test_gpu_rowwise_refusal_falls_back(monkeypatch):
    """A call cuBLAS's row-wise GEMM refuses is counted (blockwise_fallbacks, last_fallback_error) and runs the
    block-scaled path instead, whose result is within that path's bound."""
    gen = torch.Generator().manual_seed(22)
    N, K, M = 256, 512, kw.ROWWISE_MIN_M
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(fourbit.quantize(torch.randn(N, K, generator=gen) * 0.05, "mxfp4"))
    qd, sc, zd = qdata.cuda(), scales.cuda(), zeros.cuda()

    def refuse(*args):
        raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED (planted by the test)")

    monkeypatch.setattr(kw, "_rowwise_gemm", refuse)
    x = torch.randn(M, K, generator=gen).bfloat16()
    x8, s = kw.quantize_act(x.cuda())
    y = torch.full((M, N), math.nan, dtype=torch.bfloat16, device="cuda")
    assert kw.rowwise_ok(M, qd, sc, y) and kw.path(M, N, kw.FMT_MXFP4, G, True, qd.device) == "blockwise"
    before = kw.blockwise_fallbacks
    kw.linear(x8, s, qd, sc, zd, kw.FMT_MXFP4, G, None, y)
    assert kw.blockwise_fallbacks == before + 1 and "planted" in kw.last_fallback_error
    ref, bound = tc_bound(x, qdata, scales, zeros, fmt, G, None, torch.bfloat16, 128)
    testing.assert_within_bound(y.cpu(), ref, bound, "row-wise refused: the block-scaled path")


def check_native(x, qw, bias=None, name=""):
    """torch.ops.fourbit.w4a8_linear on the GPU through the CUDA FP8 GEMM (csrc/cuda/gemm_w4a8.cu) against the
    oracle: its structure is the fused kernel's at BS = 128 (one promotion per 128 K), with the accumulation model
    at F_BITS_NATIVE (see there)."""
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(qw)
    d = [t.cuda() for t in (qdata, scales, zeros)]
    assert w4a8.native_gemm(d[0], d[1], fmt, G, x.shape[0]), f"{name}: the CUDA W4A8 GEMM does not take it"
    y = OPS.w4a8_linear(x.cuda(), *d[:3], fmt, G, None if bias is None else bias.cuda()).cpu()
    ref, bound = tc_bound(x, qdata, scales, zeros, fmt, G, bias, x.dtype, 128, F_BITS_NATIVE)
    testing.assert_within_bound(y, ref, bound, f"native w4a8 {name}")
    return y, ref, bound


@pytest.mark.gpu
@pytest.mark.parametrize("M", [1, 7, 64, 65, 130, 256])
def test_gpu_native_within_bound(M):
    """Every x-tile size (64 / 128 / 256 rows: M <= 64, <= 128, above), partial tiles in M and N, one and several
    groups a chunk, a single chunk, asymmetric and symmetric int4 and mxfp4 (with windows whose groups span the whole
    exact range, 2^5), split-K (N = 256, K = 4096: 2 splits), every output dtype, with and without bias."""
    gen = torch.Generator().manual_seed(M)
    for N, K, fmt in ((200, 512, Int4(group_size=128)), (128, 1024, Int4(group_size=256, symmetric=True)),
                      (256, 4096, Int4(group_size=128)), (136, 384, Int4(group_size=128, symmetric=True)),
                      (72, 128, Int4(group_size=128)),  # one chunk, one partial weight tile
                      (328, 512, Int4(group_size=128)), (328, 512, MXFP4()),  # 3 weight tiles, the last partial
                      (200, 512, MXFP4()), (256, 4096, MXFP4()), (72, 128, MXFP4())):
        w = torch.randn(N, K, generator=gen) * 0.05
        if isinstance(fmt, MXFP4):
            w[3, 32:64] *= 2.0**-4  # its exponent 3-5 below the window's largest: table bytes down to 0.5 * 2^-5
            w[4, 64:96] = 0.0  # exponent 0 (d = -122), all codes zero: only the table's byte 0 (0) is read
        qw = fourbit.quantize(w, fmt)
        for dtype in (torch.bfloat16, torch.float16, torch.float32):
            x = torch.randn(M, K, generator=gen).to(dtype)
            x[0, 5] = 30.0
            bias = torch.randn(N, generator=gen).to(dtype)
            check_native(x, qw, bias if dtype != torch.float16 else None, f"N={N} K={K} {fmt} {dtype}")


@pytest.mark.gpu
def test_gpu_native_256_row_tiles():
    """The other native tests with every x tile 256 rows (FOURBIT_W8_BN, which the library reads once per process:
    a child pytest), so those tiles also run partial in M, with clustered splits and through the workspace; by
    default only M > 128 takes them (test_gpu_native_within_bound's M = 130 / 256, unsplit)."""
    env = dict(os.environ, FOURBIT_W8_BN="256")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", __file__, "-k",
                        "native and not 256_row"], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


@pytest.mark.gpu
@pytest.mark.parametrize("M", [16, 300])
def test_gpu_native_structured_exact(M):
    """The exact case (tight bound) through the CUDA GEMM, and one wrong code or scale fails it: the operand bytes,
    their K order and the promotion factors are all checked to float32 precision."""
    for sym in (False, True):
        x, qw = structured(M, N=200, K=1024, M=M, fmt=Int4(group_size=128, symmetric=sym), coarse=True)
        y, ref, bound = check_native(x, qw, name=f"structured sym={sym}")
        assert (bound < 1e-5 * ref.abs().max()).all()
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(qw)
    for what in ("code", "scale"):
        qd, sc = qdata.clone(), scales.clone()
        if what == "code":
            qd[5, 40] ^= 0x01
        else:
            sc[3, 1] *= 1.001
        y = OPS.w4a8_linear(x.cuda(), qd.cuda(), sc.cuda(), zeros.cuda(), fmt, G, None).cpu()
        with pytest.raises(AssertionError, match="exceed the bound"):
            testing.assert_within_bound(y, ref, bound, f"mutated {what}")


@pytest.mark.gpu
def test_gpu_native_split_k_paths():
    """Split-K partials reduce inside the tile's thread-block cluster (no workspace) where S <= 8 and every cluster is
    resident at once, else through the float32 workspace and the reduce kernel (S = 16 below; 132 SMs): both paths
    within the bound, int4 and mxfp4, with a bias."""
    from fourbit.ops import _native_cuda as nc
    lib = nc._lib()
    assert lib.cuda_linear_w4a8_workspace(64, 256, 4096) == 0  # 2 tiles x 4 splits: clusters
    assert lib.cuda_linear_w4a8_workspace(300, 1024, 2048) == 0  # 24 tiles x 2 splits: clusters
    assert lib.cuda_linear_w4a8_workspace(7, 128, 16384) == 16 * 7 * 128  # 1 tile x 16 splits: the workspace
    gen = torch.Generator().manual_seed(16)
    for fmt in (Int4(group_size=128), MXFP4()):
        for M, N, K in ((7, 128, 16384), (300, 1024, 2048)):
            qw = fourbit.quantize(torch.randn(N, K, generator=gen) * 0.05, fmt)
            x = torch.randn(M, K, generator=gen).bfloat16()
            check_native(x, qw, torch.randn(N, generator=gen).bfloat16(), f"{fmt} M={M} N={N} K={K}")


@pytest.mark.gpu
@pytest.mark.parametrize("M,N,K", [(256, 1024, 4096), (7, 128, 16384)])  # one pass; 16 splits + the reduce kernel
def test_gpu_native_after_act_pdl(M, N, K):
    """after_act: the GEMM launched right after the CUDA quantizer with programmatic dependent launch loads weights
    before the quantizer ends, so a missing wait would read the previous x8. Fresh activations go through one reused
    x8 buffer; each result must equal the serialized launch's bit for bit, eagerly and replayed from a CUDA graph.
    (The split-K reduce kernel is always launched that way after its GEMM; the second shape covers it.)"""
    from fourbit.ops import _native_cuda as nc
    gen = torch.Generator(device="cuda").manual_seed(5)
    qd, sc, z, fmt, G = w4a8.w4a8_args(fourbit.quantize(torch.randn(N, K, generator=torch.Generator().manual_seed(5))
                                                        * 0.05, Int4(group_size=128)))
    qd, sc, z = qd.cuda(), sc.cuda(), z.cuda()
    x = torch.empty(M, K, device="cuda", dtype=torch.bfloat16)
    x8, s = torch.empty(M, K, dtype=torch.uint8, device="cuda"), torch.empty(M, device="cuda")
    y0, y1 = (torch.empty(M, N, device="cuda", dtype=torch.bfloat16) for _ in range(2))

    def pair(out, after):
        nc.act_quantize_e4m3(x, x8, s, kw.PERM_INT4)
        nc.w4a8_linear_out(x8.view(torch.float8_e4m3fn), s, qd, sc, z, G, None, out, after)

    pair(y1, True)  # warm-up: the graph must not capture first-call work
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        pair(y1, True)
    for i in range(12):
        x.copy_(torch.randn(M, K, device="cuda", generator=gen) * (1 + i))
        pair(y1, True) if i % 2 else graph.replay()
        pair(y0, False)
        assert torch.equal(y0, y1), f"after_act changed the result at step {i}"
    torch.cuda.synchronize()


@pytest.mark.gpu
def test_gpu_native_mxfp4_mutations():
    """mxfp4 through the CUDA GEMM: one E8M0 scale one step up, or the sign of one large code flipped, fails the bound
    the true weights meet (the table bytes, their signs and the promotion factor all reach the result)."""
    gen = torch.Generator().manual_seed(11)
    qw = fourbit.quantize(torch.randn(136, 512, generator=gen) * 0.05, MXFP4())
    x = torch.randn(64, 512, generator=gen).bfloat16()
    _, ref, bound = check_native(x, qw, name="mxfp4")
    qdata, scales, zeros, fmt, G = w4a8.w4a8_args(qw)
    big = int((qdata[9] & 7).argmax())  # a byte of row 9 whose low code has the largest magnitude
    for what in ("scale", "sign"):
        qd, sc = qdata.clone(), scales.view(torch.uint8).clone()
        if what == "scale":
            sc[5, 3] += 1
        else:
            qd[9, big] ^= 0x08
        d = [t.cuda() for t in (qd, sc.view(torch.float8_e8m0fnu), zeros)]
        assert w4a8.native_gemm(d[0], d[1], fmt, G, x.shape[0])
        y = OPS.w4a8_linear(x.cuda(), *d, fmt, G, None).cpu()
        with pytest.raises(AssertionError, match="exceed the bound"):
            testing.assert_within_bound(y, ref, bound, f"mutated mxfp4 {what}")


@pytest.mark.gpu
def test_gpu_opcheck_and_module():
    for fmt in ("int4", "int4_sym", "mxfp4"):
        x, q, s, z, f, G = _args(fmt, N=64, K=256, M=40, dtype=torch.bfloat16, device="cuda")
        torch.library.opcheck(OPS.w4a8_linear, (x, q, s, z, f, G, torch.randn(64, device="cuda").bfloat16()),
                              test_utils=_utils(f))
    lin = torch.nn.Linear(576, 1536)  # SmolLM2's K = 576: int4 g128 -> kernel groups of 64
    q = fourbit.QuantLinear.from_linear(lin, "int4", act="fp8_e4m3").cuda()
    x = torch.randn(300, 576, generator=torch.Generator().manual_seed(1)).bfloat16()
    y = q(x.cuda())
    qd, sc, z, f, G = w4a8.w4a8_args(q.quantized_weight())
    ref, bound = tc_bound(x, qd, sc, z, f, G, lin.bias.detach().bfloat16(), torch.bfloat16, kw.step(0, G, False))
    testing.assert_within_bound(y.cpu(), ref, bound, "module on GPU")


def test_gradient_is_straight_through():
    """W4A8's gradient treats the activation quantizer as the identity (STE): the same gradients as W4A16 with the
    same weight, for x and bias; no autograd-fallback warning."""
    import warnings
    lin = torch.nn.Linear(256, 48)
    q8 = fourbit.QuantLinear.from_linear(lin, "int4", act="fp8_e4m3")
    q16 = fourbit.QuantLinear.from_linear(lin, "int4")
    x = torch.randn(5, 256, generator=torch.Generator().manual_seed(3))
    g = torch.randn(5, 48, generator=torch.Generator().manual_seed(4))
    grads = []
    for mod in (q8, q16):
        xi = x.clone().requires_grad_()
        mod.bias.requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mod(xi).backward(g)
        grads.append((xi.grad, mod.bias.grad))
    testing.assert_bit_exact(grads[0][1], grads[1][1], "bias grad")
    w = q16.dequantize()
    torch.testing.assert_close(grads[0][0], g @ w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[1][0], g @ w, rtol=1e-5, atol=1e-6)
