"""W4A8: FP8 E4M3 activations x 4-bit weights on FP8 tensor cores (opt-in; fourbit.ops.w4a8 is the op).

quantize_act(x) -> (x8, s): per row m, s_m = amax_m / 448 (float32 division, RNE), x8 = e4m3(RNE(x / s_m)) saturated
to +-448, by a float32 DIVISION (tl.div_rn; the reference divides too, so ties land identically). Policies: s_m = 0
(an all-zero row, or amax < 448 * 2^-150 whose quotient underflows) becomes 1, so x8 = 0 there; a row holding NaN or
+-Inf gets s_m = NaN and x8 = 0, so its whole output row is NaN. Bit-exact with fourbit.ops.w4a8.quantize_act_ref.

linear(x8, s, qdata, scales, zeros, fmt, G, bias) -> y = (sum over K steps of scale * dot_step) * s_m (+ bias).
The weight operand is built from the packed codes in registers and is EXACT in E4M3:
  int4 asym: q - z (integers in [-15, 15]); int4 sym: q - 8 ([-8, 7]); both have at most 4 significant bits.
  mxfp4: the E2M1 value (0.5 .. 6, 2 significant bits). Its E8M0 scales either multiply one dot per 32-K group
  (MX_FOLD=0) or, when fold_ok(...) says every 128-K window of every row is exact that way (MX_FOLD=1), are folded
  into the operand as v * 2^(e_g - E_w), E_w = the window's largest exponent; exact because v * 2^d with
  d >= -8 is a multiple of 2^-9 below 448 (an E4M3 normal or subnormal); groups whose codes are all zero do not
  count. Then one 128-K dot per window and 2^E_w applied to the fp32 partial. From ROWWISE_MIN_M rows, where each
  row's exponents span at most ROW_SPAN, the whole row folds to one factor and cuBLAS's row-wise scaled FP8 GEMM
  multiplies (linear_rowwise); else, from BLOCKWISE_MIN_M, cuBLAS's block-scaled one (linear_blockwise).
Each dot spans one K step (BS = the group, at most 128, or 128 folded) from a zero accumulator and is added to the
float32 accumulator after scaling: this promotion bounds the tensor core's limited-precision FP8 accumulation to
one step (tests/test_w4a8.py derives the bound). Triton's fp32 -> fp8 conversion (cvt.rn.satfinite) is exact on
these values.
"""
import os
import weakref

import torch
import triton
import triton.language as tl

from ._launch import bucket_entries, host, interpreting, launch, scratch
from . import codecs as cd
from .dequantize import _codes_to_values, tile_rows

FMT_INT4_ASYM, FMT_INT4_SYM, FMT_MXFP4 = 0, 1, 2
ACT_BR, ACT_BK = 4, 256  # activation quantize: rows x K chunk per program (two passes over the row)


@triton.jit
def _act_stats(v, amax, bad):  # running row max of |v| over finite values, and "row holds NaN/Inf"
    fin = cd.is_finite(v)
    return tl.maximum(amax, tl.max(tl.where(fin, tl.abs(v), 0.0), axis=1)), \
        tl.maximum(bad, tl.max(tl.where(fin, 0, 1), axis=1))


@triton.jit
def _act_scale(amax, bad):  # s = amax / 448 (RNE division); 0 -> 1; NaN/Inf row -> NaN
    s = tl.div_rn(amax, tl.full(amax.shape, 448.0, tl.float32))
    s = tl.where(s == 0.0, 1.0, s)
    return tl.where(bad > 0, float("nan"), s)


PERM_INT4, PERM_MXFP4 = 1, 2  # quantize_act's perm: the CUDA W4A8 GEMM's K order for int4 / mxfp4 weights


@triton.jit
def _x8_cols(c, PERM: tl.constexpr):  # where real column c of x8 is stored: x8_perm's order (PERM 1 / 2) or c itself
    if PERM == 1:
        r = c & 127
        return (c - r) + 32 * ((r >> 3) & 3) + 16 * (r & 1) + 4 * (r >> 5) + ((r >> 1) & 3)
    if PERM == 2:
        r = c & 127
        return (c - r) + 32 * ((r >> 3) & 3) + 16 * ((r >> 2) & 1) + 4 * (r >> 5) + (r & 3)
    return c


def x8_perm(x8, perm=PERM_INT4):
    """x8 [M, K] (K % 128 == 0) in a K order of the CUDA W4A8 GEMM (csrc/cuda/gemm_w4a8.cu, "The K order"): inside
    each 128-K chunk, real column r goes to 32 ((r >> 3) & 3) + 16 (r & 1) + 4 (r >> 5) + ((r >> 1) & 3) (PERM_INT4:
    a code word's even and odd K in two registers) or 32 ((r >> 3) & 3) + 16 ((r >> 2) & 1) + 4 (r >> 5) + (r & 3)
    (PERM_MXFP4: four consecutive K a register). The plain PyTorch twin of quantize_act(perm=...)'s store order."""
    K = x8.shape[-1]
    r = torch.arange(K, device=x8.device)
    c = r & 127
    inner = 16 * (c & 1) + ((c >> 1) & 3) if perm == PERM_INT4 else 16 * ((c >> 2) & 1) + (c & 3)
    pos = (r - c) + 32 * ((c >> 3) & 3) + 4 * (c >> 5) + inner
    out = torch.empty_like(x8)
    out[..., pos] = x8
    return out


@triton.jit
def _act_encode(v, s, bad, q_ptrs, m):
    byte = cd.e4m3_encode(tl.div_rn(v, s[:, None] + tl.zeros(v.shape, tl.float32)))
    tl.store(q_ptrs, tl.where((bad > 0)[:, None], 0, byte).to(tl.uint8), mask=m)


@triton.jit
def _act_quant_kernel(x_ptr, q_ptr, s_ptr, M, K, BR: tl.constexpr, BK: tl.constexpr, ONE_PASS: tl.constexpr,
                      PERM: tl.constexpr):
    """x_ptr [M, K] float32/bf16/fp16 -> q_ptr uint8 [M, K] (E4M3 bytes; PERM: in x8_perm's K order), s_ptr float32
    [M]. ONE_PASS: BK >= K, the rows stay in registers between the max and the encode (else a second pass reads
    them)."""
    rows = tl.program_id(0) * BR + tl.arange(0, BR)
    rmask = rows < M
    r64 = rows.to(tl.int64)
    amax = tl.zeros([BR], tl.float32)
    bad = tl.zeros([BR], tl.int32)
    if ONE_PASS:
        cols = tl.arange(0, BK)
        m = rmask[:, None] & (cols < K)[None, :]
        v = cd.to_f32(tl.load(x_ptr + r64[:, None] * K + cols[None, :], mask=m, other=0))
        amax, bad = _act_stats(v, amax, bad)
        s = _act_scale(amax, bad)
        tl.store(s_ptr + rows, s, mask=rmask)
        _act_encode(v, s, bad, q_ptr + r64[:, None] * K + _x8_cols(cols, PERM)[None, :], m)
    else:
        for k0 in range(0, K, BK):
            cols = k0 + tl.arange(0, BK)
            m = rmask[:, None] & (cols < K)[None, :]
            v = cd.to_f32(tl.load(x_ptr + r64[:, None] * K + cols[None, :], mask=m, other=0))
            amax, bad = _act_stats(v, amax, bad)
        s = _act_scale(amax, bad)
        tl.store(s_ptr + rows, s, mask=rmask)
        for k0 in range(0, K, BK):
            cols = k0 + tl.arange(0, BK)
            m = rmask[:, None] & (cols < K)[None, :]
            v = cd.to_f32(tl.load(x_ptr + r64[:, None] * K + cols[None, :], mask=m, other=0))
            _act_encode(v, s, bad, q_ptr + r64[:, None] * K + _x8_cols(cols, PERM)[None, :], m)


def quantize_act(x, one_pass=None, perm=False, rows=1, num_warps=None):
    """x [M, K] contiguous float32/bf16/fp16 -> (x8 float8_e4m3fn [M, K], s float32 [M]) (the op uses its CUDA twin,
    csrc/cuda/act_e4m3.cu, where that is built: 2.2x faster at 256 x 8192); perm (K % 128 == 0; PERM_INT4 or True,
    PERM_MXFP4): x8 in x8_perm's K order, for the CUDA W4A8 GEMM. rows / num_warps: the one-pass launch (rows a
    program; default warps BK / 1024, 1..8), for bench/elementwise_tune.py's sweep; every choice gives the same bytes.
    one_pass (default: K <= 16384): one program per row holding the whole row (BK = next power of two of K); else
    ACT_BR rows per program in two passes of ACT_BK. Measured on an H100 (bf16 x, K = 8192): M = 256 37.7 us two-pass
    with 4-row programs (latency-bound: 64 programs) -> 10.8 us one-pass; M = 1024 42.1 -> 24.2; M = 4096 100 -> 76.5
    (1.3 TB/s of x read + x8 written)."""
    M, K = x.shape
    perm = int(perm)  # False / True: none / PERM_INT4
    q = scratch((M, K), torch.uint8, x.device)
    s = scratch((M,), torch.float32, x.device)
    one_pass = K <= 16384 if one_pass is None else one_pass
    if rows < 1 or rows & (rows - 1):
        raise ValueError(f"rows must be a power of two (rows a program), got {rows}")
    if one_pass:
        BK = triton.next_power_of_2(K)
        launch(_act_quant_kernel, (triton.cdiv(M, rows),), x, q, s, M, K, BR=rows, BK=BK, ONE_PASS=True, PERM=perm,
               num_warps=num_warps or max(1, min(8, BK // 1024)), enable_fp_fusion=False)
    else:
        launch(_act_quant_kernel, (triton.cdiv(M, ACT_BR),), x, q, s, M, K, BR=ACT_BR, BK=ACT_BK, ONE_PASS=False,
               PERM=perm, enable_fp_fusion=False)
    return q.view(torch.float8_e4m3fn), s


@triton.jit
def _weight_fp8(q_ptr, s_ptr, z_ptr, rn, k0, K, G, FMT: tl.constexpr, FOLD: tl.constexpr, BS: tl.constexpr):
    """(fp8 [BN, BS] exact operand of W[rn, k0:k0+BS], float32 [BN] factor of its partial dot)."""
    KG = K // G
    p = tl.load(q_ptr + rn[:, None] * (K // 2) + (k0 // 2 + tl.arange(0, BS // 2))[None, :])
    c = cd.unpack_tile(p.to(tl.int32))
    if FMT == 2:
        v = _codes_to_values(c, q_ptr, 3, 0)  # E2M1 value, exact float32
        if FOLD:
            NG: tl.constexpr = BS // 32
            gi = k0 // 32 + tl.arange(0, NG)
            e = tl.load(s_ptr + rn[:, None] * KG + gi[None, :]).to(tl.int32) - 127  # [BN, NG]
            ew = tl.max(e, axis=1)
            d = tl.maximum(e - ew[:, None], -127)
            v = tl.reshape(tl.reshape(v, (v.shape[0], NG, 32)) * cd.exp2i(d)[:, :, None], (v.shape[0], BS))
            f = cd.exp2i(ew)
        else:
            f = cd.e8m0_decode(tl.load(s_ptr + rn * KG + k0 // G))
    else:
        gi = k0 // G
        f = tl.load(s_ptr + rn * KG + gi)
        if FMT == 0:
            v = _codes_to_values(c, q_ptr, 1, 0) - (tl.load(z_ptr + rn * KG + gi).to(tl.float32) + 8388608.0)[:, None]
        else:
            v = _codes_to_values(c, q_ptr, 2, 0) - 8388616.0
    return v.to(tl.float8e4nv), f


@triton.jit(do_not_specialize=["M"])
def _w4a8_kernel(x_ptr, xs_ptr, q_ptr, s_ptr, z_ptr, b_ptr, y_ptr, M, N, K, G,
                 FMT: tl.constexpr, FOLD: tl.constexpr, BS: tl.constexpr, HAS_BIAS: tl.constexpr,
                 BM: tl.constexpr, BN: tl.constexpr, SWAP: tl.constexpr):
    """x_ptr fp8 [M, K]; xs_ptr float32 [M]; weight as in _weight_fp8; y_ptr [M, N] of the output dtype.
    K is a multiple of BS and BS of 32 (no K masks); rows past M / N are clamped and never stored.
    Speed limit of this structure: Triton waits for each wgmma right after issuing it when its result feeds non-dot
    math (PTX checked, Triton 3.9: `wgmma.wait_group 0` after every commit, also with the promotion deferred to the
    next step or two steps unrolled), so inside one CTA the weight conversion and the MMA never overlap; only other
    CTAs on the SM can fill the gap (hence the small-footprint configs below). Per K step the PTX (Triton 3.6,
    sm_90, int4, BM 256 / BN 128 / SWAP 1, divisibility-16 arguments as at run time) has ~585 instructions per
    thread for 64 weight elements: ~4.5 per element for unpack + integer-to-float + zero point + cvt.e4m3x2 and
    2 FMAs per output of the promotion, against one wgmma m64n256k32 per 32 K per warpgroup."""
    rows_m, rows_n, rm, rn = tile_rows(M, N, BM, BN)
    x_ptrs = x_ptr + rm[:, None] * K + tl.arange(0, BS)[None, :]
    if SWAP:
        acc = tl.zeros([BN, BM], tl.float32)
    else:
        acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, K, BS):
        x = tl.load(x_ptrs)
        w, f = _weight_fp8(q_ptr, s_ptr, z_ptr, rn, k0, K, G, FMT, FOLD, BS)
        if SWAP:  # y^T = W x^T: the weight tile is wgmma's A operand, straight from registers
            acc += tl.dot(w, tl.trans(x)) * f[:, None]
        else:
            acc += tl.dot(x, tl.trans(w)) * f[None, :]
        x_ptrs += BS
    if SWAP:
        acc = tl.trans(acc)
    acc = acc * tl.load(xs_ptr + rm)[:, None]
    nmask = rows_n < N
    DT: tl.constexpr = y_ptr.dtype.element_ty
    if HAS_BIAS:
        acc = acc + cd.to_f32(tl.load(b_ptr + rows_n, mask=nmask, other=0))[None, :]
    y_ptrs = y_ptr + rows_m.to(tl.int64)[:, None] * N + rows_n[None, :]
    tl.store(y_ptrs, cd.cast_rne(acc, DT), mask=(rows_m < M)[:, None] & nmask[None, :])


@triton.jit
def _weight_fp8_kernel(q_ptr, s_ptr, z_ptr, w8_ptr, f_ptr, N, K, G, FMT: tl.constexpr, FOLD: tl.constexpr,
                       BN: tl.constexpr):
    """The exact E4M3 operand of W (w8_ptr: [N, K] bytes) and its factor per 128-K window (f_ptr: float32
    [K / 128, N], window-major), as _weight_fp8 makes them inside the fused kernel; one program per (BN rows, window)."""
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    rn = (rows % N).to(tl.int64)
    k0 = tl.program_id(1) * 128
    w, f = _weight_fp8(q_ptr, s_ptr, z_ptr, rn, k0, K, G, FMT, FOLD, 128)
    m = rows < N
    tl.store(w8_ptr + rn[:, None] * K + (k0 + tl.arange(0, 128))[None, :], w.to(tl.int8, bitcast=True),
             mask=m[:, None])
    tl.store(f_ptr + tl.program_id(1) * N + rows, f, mask=m)


def weight_fp8(qdata, scales, zeros, fmt_id, G, fold):
    """(w8 float8_e4m3fn [N, K], f float32 [K / 128, N]): W = w8 * f per (row, 128-K window), exactly; needs
    step(fmt_id, G, fold) == 128 (int4 with G % 128 == 0, mxfp4 folded)."""
    N, K = qdata.shape[0], qdata.shape[1] * 2
    w8 = scratch((N, K), torch.int8, qdata.device)
    f = scratch((K // 128, N), torch.float32, qdata.device)
    s = scales.view(torch.uint8) if scales.dtype != torch.float32 else scales
    launch(_weight_fp8_kernel, (triton.cdiv(N, 64), K // 128), qdata, s, zeros if zeros.numel() else s, w8, f, N, K,
           int(G), FMT=fmt_id, FOLD=bool(fold), BN=64, num_warps=4, enable_fp_fusion=False)
    return w8.view(torch.float8_e4m3fn), f


@triton.jit
def _row_exp_kernel(s_ptr, e_ptr, f_ptr, N, K, BN: tl.constexpr):
    """E_n = the largest E8M0 byte of mxfp4 scale row n (e_ptr: int32 [N]) and its factor f[n] = 2^(E_n - 127 - 6)
    (f_ptr: float32 [N], a subnormal for E_n < 7, exact); one program per BN rows, 256 groups at a time."""
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    rn = (rows % N).to(tl.int64)
    KG = K // 32
    E = tl.zeros([BN], tl.int32)
    for g0 in range(0, KG, 256):
        gi = g0 + tl.arange(0, 256)
        e = tl.load(s_ptr + rn[:, None] * KG + gi[None, :], mask=(gi < KG)[None, :], other=0).to(tl.int32)
        E = tl.maximum(E, tl.max(e, axis=1))
    tl.store(e_ptr + rows, E, mask=rows < N)
    tl.store(f_ptr + rows, cd.exp2i(E - 127) * 0.015625, mask=rows < N)


@triton.jit
def _weight_fp8_rows_kernel(q_ptr, s_ptr, e_ptr, w8_ptr, N, K, BN: tl.constexpr, BS: tl.constexpr):
    """mxfp4's W as E4M3 with one factor a row: w8[n, k] = v * 2^(e[n, g] - E_n + 6) (w8_ptr: [N, K] bytes; E_n from
    _row_exp_kernel), exact where fold_ok(window=K, span=ROW_SPAN) holds. One program per (BN rows, BS columns)."""
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    rn = (rows % N).to(tl.int64)
    k0 = tl.program_id(1) * BS
    NG: tl.constexpr = BS // 32
    p = tl.load(q_ptr + rn[:, None] * (K // 2) + (k0 // 2 + tl.arange(0, BS // 2))[None, :])
    v = _codes_to_values(cd.unpack_tile(p.to(tl.int32)), q_ptr, 3, 0)  # E2M1 value, exact float32
    e = tl.load(s_ptr + rn[:, None] * (K // 32) + (k0 // 32 + tl.arange(0, NG))[None, :]).to(tl.int32)
    d = tl.maximum(e - tl.load(e_ptr + rn)[:, None] + 6, -127)  # <= 6: 6 * 2^6 = 384 stays below E4M3's 448
    v = tl.reshape(tl.reshape(v, (BN, NG, 32)) * cd.exp2i(d)[:, :, None], (BN, BS))
    tl.store(w8_ptr + rn[:, None] * K + (k0 + tl.arange(0, BS))[None, :],
             v.to(tl.float8e4nv).to(tl.int8, bitcast=True), mask=(rows < N)[:, None])


def weight_fp8_rows(qdata, scales):
    """(w8 float8_e4m3fn [N, K], f float32 [N]) of mxfp4 weights: W = w8 * f[n], exactly where fold_ok(qdata, scales,
    window=K, span=ROW_SPAN) holds (see _weight_fp8_rows_kernel). Tiles of 32 rows x 256 K (H100 80GB HBM3,
    2026-11-28, bench/probes/w8_rowwise.py, us at 8192^2 / 4096^2): 49.0 / 20.3 against 52.8 / 20.6 at 64 x 128 and
    53.1 / 20.9 at 128 x 128 with 8 warps; a per-element gather of codes and exponents (no reshape) took 3-6x longer."""
    N, K = qdata.shape[0], qdata.shape[1] * 2
    w8 = scratch((N, K), torch.int8, qdata.device)
    f = scratch((N,), torch.float32, qdata.device)
    e = scratch((N,), torch.int32, qdata.device)
    s = scales.view(torch.uint8)
    BN = 4 if interpreting() else 32
    launch(_row_exp_kernel, (triton.cdiv(N, BN),), s, e, f, N, K, BN=BN, num_warps=4)
    BS = next(b for b in (256, 128, 32) if K % b == 0)
    launch(_weight_fp8_rows_kernel, (triton.cdiv(N, BN), K // BS), qdata, s, e, w8, N, K, BN=BN, BS=BS, num_warps=4,
           enable_fp_fusion=False)
    return w8.view(torch.float8_e4m3fn), f


def linear_rowwise(x8, xs, qdata, scales, bias, y) -> bool:
    """mxfp4's product through cuBLAS's row-wise scaled FP8 GEMM (torch _scaled_mm, scale_a = x8's row scales [M, 1],
    scale_b = the weight's row factors [1, N], use_fast_accum off), W converted once per call by weight_fp8_rows, for
    arguments rowwise_ok accepts. False (counted in blockwise_fallbacks) when cuBLAS refused the call."""
    global blockwise_fallbacks, last_fallback_error
    w8, f = weight_fp8_rows(qdata, scales)
    try:
        host(_rowwise_gemm, x8, xs, w8, f, bias, y)  # a host step of a recorded call (whole tensors: see there)
        return True
    except RuntimeError as e:
        blockwise_fallbacks, last_fallback_error = blockwise_fallbacks + 1, str(e).splitlines()[0]
        return False


def linear_blockwise(x8, xs, qdata, scales, zeros, fmt_id, G, bias, y, fold):
    """The same product as linear() through cuBLAS's FP8 GEMM with 1x128 block scales on both operands (torch
    _scaled_mm, CUDA >= 12.9): W converted once per call to E4M3 + window factors (weight_fp8), x8's row scale
    repeated per window. Per 128-K window the FP8 MMA's partial is promoted to float32 and scaled, exactly the
    structure linear() has with BS = 128 (use_fast_accum off, which torch requires for block scales). cuBLAS
    rejects M % 16 != 0 here (CUBLAS_STATUS_NOT_SUPPORTED at M = 515, H100, torch 2.11 / CUDA 13.0): the first
    M - M % 16 rows go to cuBLAS, the rest (< 16) to the fused kernel with the same BS = 128."""
    global blockwise_fallbacks
    M, K = x8.shape
    M16 = M - M % 16
    w8, f = weight_fp8(qdata, scales, zeros, fmt_id, G, fold)
    try:
        host(_blockwise_gemm, x8, xs, w8, f, bias, y, M16)  # a host step of a recorded call (fourbit.ops.eager)
    except RuntimeError as e:  # a shape this cuBLAS has no block-scaled kernel for: the fused kernel, counted
        global last_fallback_error
        blockwise_fallbacks, last_fallback_error = blockwise_fallbacks + 1, str(e).splitlines()[0]
        M16 = 0
    if M16 < M:
        linear(x8[M16:], xs[M16:], qdata, scales, zeros, fmt_id, G, bias, y[M16:], config=pick(M - M16),
               fold=fold)
    return y


def _blockwise_gemm(x8, xs, w8, f, bias, y, M16):
    """y[:M16] = the block-scaled cuBLAS FP8 GEMM of linear_blockwise (torch ops only)."""
    K = x8.shape[1]
    sa = xs[:M16].repeat(K // 128).view(K // 128, M16).t()  # [M16, K/128], M-major as cuBLAS wants 1x128 scales
    _cublas_fp8(x8[:M16], w8, sa, f, bias, y[:M16])


def _rowwise_gemm(x8, xs, w8, f, bias, y):
    """y = the row-wise scaled cuBLAS FP8 GEMM of linear_rowwise (torch ops only; the scale views are made here, as a
    replay hands a host step whole tensors)."""
    _cublas_fp8(x8, w8, xs[:, None], f[None, :], bias, y)


def _cublas_fp8(x8, w8, sa, sb, bias, y):
    """y = torch._scaled_mm(x8, w8^T) with scales sa (of x8's rows) and sb (of w8's rows), + bias (torch ops only)."""
    # cuBLAS's FP8 GEMM takes no float32 bias for a float32 D (2 refusals in tests/test_w4a8.py); there the bias is
    # added after, which is the fused kernel's float32 sum too (fp32 acc + bias, rounded once)
    late = bias is not None and y.dtype == torch.float32
    if bias is not None and not late and bias.data_ptr() % 16:
        bias = bias.clone()  # cuBLAS refuses a bias that is not 16-byte aligned (a fresh copy is)
    torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=sb, bias=None if late else bias, out_dtype=y.dtype, out=y)
    if late:
        y.add_(bias)


blockwise_fallbacks = 0  # calls whose cuBLAS part (row-wise or block-scaled) raised and ran another path (tests: 0)
last_fallback_error = ""  # the first line of the last such error


# From this M on, linear() takes linear_blockwise where it can. H100 80GB HBM3, 2026-11-26, 8192^2, us
# (bench/w4a8_blockwise_probe.py; int4 g128 / mxfp4 folded alike): act quant + fused kernel vs act quant + weight_fp8
# + block-scaled cuBLAS, bf16 cuBLAS for scale: M=256 108 vs 101 (bf16 66); M=1024 356 vs 211 (192);
# M=4096 1349 vs 690 (760). The cuBLAS GEMM itself: 42 / 140 / 568 us (tensorwise FP8: 40 / 111 / 431).
BLOCKWISE_MIN_M = 512
_blockwise_ok = {}  # device index -> torch's _scaled_mm accepted 1x128 x 1x128 block scales (probed once)


def path(M, N, fmt_id, G, fold, device) -> str:
    """'blockwise' (linear_blockwise) or 'fused' (the Triton kernel) for an untuned-config call of linear()."""
    if interpreting() or M < BLOCKWISE_MIN_M or N % 16 or step(fmt_id, G, fold) != 128:
        return "fused"
    ok = _blockwise_ok.get(device.index)
    if ok is None:
        if torch.cuda.is_current_stream_capturing():
            return "fused"  # no probing inside a capture
        ok = _blockwise_ok[device.index] = _probe_blockwise(device)
    return "blockwise" if ok else "fused"


# mxfp4 from this M on: one factor a weight row (weight_fp8_rows) and cuBLAS's row-wise scaled FP8 GEMM, where every
# row's scale exponents span at most ROW_SPAN (groups with all-zero codes aside): v * 2^d, v in 0.5 .. 6, is exact in
# E4M3 for -8 <= d <= 6 (down to the subnormal 2^-9, as the windowed fold's span 8). The op takes the CUDA GEMM first
# up to ops.w4a8.NATIVE_MAX_M (1024), so on Hopper this path runs above it. Why (H100 80GB HBM3, 2026-11-28,
# bench/probes/w8_rowwise.py, us, row-wise vs block-scaled in the same call): the GEMM alone 8192^2 M = 4096 432.9 vs
# 575.8, M = 2048 232.1 vs 286.5, 4096^2 M = 4096 115.6 vs 146.6; the op from a CUDA graph (activation quantize +
# conversion + GEMM) 513.2 vs 650.3 (bf16 cuBLAS 711.9: 1.39x vs 1.09x), 295.9 vs 354.4 (bf16 379.4), 154.2 vs 176.8
# (bf16 192.7: 1.25x vs 1.09x); outputs within 2.9e-3 of each other relative to max |y| (both within tc_bound).
# At M = 1024 the CUDA GEMM's op (173.0) and the row-wise parts (16.7 + 53.8 + 119.4) are even.
ROWWISE_MIN_M = 512
ROW_SPAN = 14
_rowwise_probe = {}  # (device index, output dtype) -> torch's _scaled_mm ran [M, 1] x [1, N] float32 scales


def rowwise_ok(M, qdata, scales, y) -> bool:
    """Whether linear() takes linear_rowwise for these mxfp4 weights and M rows into y (FOURBIT_W4A8_ROWWISE=0 or
    FOURBIT_W4A8_FOLD=0 turn it off)."""
    if interpreting() or M < ROWWISE_MIN_M or qdata.shape[0] % 16 or not y.is_cuda:
        return False
    if os.environ.get("FOURBIT_W4A8_ROWWISE", "1") == "0" or os.environ.get("FOURBIT_W4A8_FOLD", "1") == "0":
        return False
    key = (y.device.index, y.dtype)
    if key not in _rowwise_probe:
        if torch.cuda.is_current_stream_capturing():
            return False  # no probing inside a capture
        _rowwise_probe[key] = _probe_scaled_mm(torch.ones(16, 1, device=y.device), torch.ones(1, 16, device=y.device),
                                               y.dtype)
    return _rowwise_probe[key] and fold_ok(qdata, scales, window=qdata.shape[1] * 2, span=ROW_SPAN)


def _probe_scaled_mm(sa, sb, dtype=torch.bfloat16) -> bool:
    """Whether this torch / CUDA build runs _scaled_mm of a 16 x 256 E4M3 operand times its transpose with scales sa
    and sb (on their device) into dtype. K = 256 holds two 128-K windows: at K = 128 block scales look row-wise."""
    try:
        a = torch.zeros(16, 256, device=sa.device).to(torch.float8_e4m3fn)
        torch._scaled_mm(a, a.t(), scale_a=sa, scale_b=sb, out_dtype=dtype)
        return True
    except (RuntimeError, TypeError):
        return False


def _probe_blockwise(device) -> bool:
    """Whether this torch / CUDA build runs _scaled_mm with 1x128 block scales on both operands (CUDA >= 12.9)."""
    return _probe_scaled_mm(torch.ones(2, 16, device=device).t(), torch.ones(2, 16, device=device))


# Tuning space (BM, BN, SWAP, num_warps, num_stages) per M bucket (next power of two of M, capped at 4096);
# a call runs pick(M), the bucket's first entry (no timing at run time: every process runs the same config).
# Rationale: the weight unpack + convert is CUDA-core work per weight element, amortised over BM rows of x, so large
# M wants BM = 256; small M wants SWAP (weights as the register A operand, M the MMA's N); 4-warp 128 x 64 tiles
# leave room for 2-3 CTAs per SM, whose MMA and conversion can overlap (see the kernel's docstring).
# Measured on an H100 80GB HBM3 (Triton 3.6, 2026-11-26; GEMM-only us at 8192^2, int4 g128 / mxfp4 folded):
#   run 1 (8-warp tiles only): M=256 BM256/BN64/S0 97 / 107 (BM128/BN128/S0 133, BM64/BN128/S1 128);
#          M=1024 BM256/BN128/S1 446 / 576, BM256/BN128/S0 681 / 486, BM128/BN256/S0 568 / 632.
#   run 3: the 4-warp 128 x 64 SWAP tile wins every case: M=256 97 / 97, M=1024 327 / 335 (BM256/BN128/S1 445 /
#          573, 128/64/S0 405 / 397, 128/128/S1 608 / 584), M=4096 1256 / 1330 (BM256/BN128/S1 1742 / 2269).
#   Per-group mxfp4 (BS = 32) also prefers it (M=1024: 449 vs 538-1801). Losers were dropped from the lists below;
#   every config listed here ran in tests/test_w4a8.py::test_gpu_every_tuned_config on that card.
#   bench/gemm_pick.py (same card, 2026-11-26, CUDA graph, 5 shapes, int4 g128 / mxfp4): M <= 128 the 64 x 64 tile,
#   e.g. 8192^2 M=64 int4 100.2 -> 56.2 us, mxfp4 121.7 -> 52.0 (geomean loss of 64 x 128: +60%; of 64 x 64: +0.8%);
#   M = 256 and 384 the 128 x 64 SWAP tile was best in every case.
_SPACE = {
    128: [(64, 64, 1, 4, 4), (64, 128, 1, 4, 4)],
    256: [(128, 64, 1, 4, 3), (256, 64, 0, 8, 3), (128, 64, 0, 4, 3)],
    4096: [(128, 64, 1, 4, 3), (128, 64, 0, 4, 3), (256, 128, 1, 8, 3)],
}
DEFAULT = (64, 64, 0, 4, 3)  # FOURBIT_TRITON_AUTOTUNE=0 and the interpreter (INTERP_BLOCKS)
INTERP_BLOCKS = (16, 16, 0, 1, 1)


def candidates(M):
    """The tuning-space entries of M's bucket (what bench/gemm_pick.py times)."""
    return bucket_entries(_SPACE, M)


def pick(M):
    """The config linear() runs for M rows: its bucket's first entry, the measured winner (above)."""
    return candidates(M)[0]


_fold_cache = {}  # (id(scales' base tensor), window, span) -> (weakref to it, version, qdata's base id, version, ok)


def fold_ok(qdata, scales, window=128, span=8):
    """True when folding mxfp4's E8M0 scales into the FP8 operand is exact for every window of `window` K of every
    row: no NaN scale (0xFF), and (window max exponent) - (exponent of any group with a nonzero code) <= span (8 for
    this file's kernels, whose operand is the E2M1 value; 5 for the CUDA GEMM's normal-only byte tables,
    ops.w4a8.MX_NATIVE_SPAN). Computed once per (scales, qdata) version and span on the device (one host sync), cached
    by their base tensors (a module hands the kernel a fresh reshape view of its buffers on every call); False during
    CUDA-graph capture."""
    sb = scales if scales._base is None else scales._base
    qb = qdata if qdata._base is None else qdata._base
    key = (id(sb), window, span)
    hit = _fold_cache.get(key)
    if hit is not None and hit[0]() is sb and hit[1:4] == (scales._version, id(qb), qdata._version):
        return hit[4]
    if scales.is_cuda and torch.cuda.is_current_stream_capturing():
        return False
    N, KG = scales.shape
    if (KG * 32) % window:
        return False
    e = scales.view(torch.uint8).to(torch.int32)
    nz = ((qdata.view(N, KG, 16) & 0x77) != 0).any(-1)  # both nibbles' magnitude bits
    ew = e.view(N, -1, window // 32)
    nzw = nz.view(N, -1, window // 32)
    hi = ew.amax(-1)  # the kernel's E_w counts every group; zero-code groups need no exactness
    lo = torch.where(nzw, ew, 1000).amin(-1)
    ok = bool(((e != 255).all() & ((hi - lo <= span) | ~nzw.any(-1)).all()).item())
    _fold_cache[key] = (weakref.ref(sb, lambda _r, k=key: _fold_cache.pop(k, None)), scales._version, id(qb),
                        qdata._version, ok)
    return ok


def step(fmt_id, G, fold):
    """The K step BS of one dot: 128 when mxfp4 folds, else the largest of 128/64/32 dividing G."""
    if fold:
        return 128
    return next(b for b in (128, 64, 32) if G % b == 0)


def linear(x8, xs, qdata, scales, zeros, fmt_id, G, bias, y, config=None, fold=None):
    """y [M, N] (preallocated, the output dtype) = W4A8 product. fold: None = automatic (mxfp4: fold_ok)."""
    M, K = x8.shape
    N = qdata.shape[0]
    if fold is None:
        fold = fmt_id == FMT_MXFP4 and os.environ.get("FOURBIT_W4A8_FOLD", "1") != "0" and fold_ok(qdata, scales)
    BS = step(fmt_id, G, fold)
    s = scales.view(torch.uint8) if scales.dtype != torch.float32 else scales
    z = zeros if zeros.numel() else s
    b = bias if bias is not None else y
    if config is None and fmt_id == FMT_MXFP4 and rowwise_ok(M, qdata, scales, y) and \
            linear_rowwise(x8, xs, qdata, scales, bias, y):
        return y
    if config is None and path(M, N, fmt_id, G, fold, x8.device) == "blockwise":
        return linear_blockwise(x8, xs, qdata, scales, zeros, fmt_id, G, bias, y, fold)
    common = dict(FMT=fmt_id, FOLD=bool(fold), BS=BS, HAS_BIAS=bias is not None)
    if config is None:  # FOURBIT_TRITON_AUTOTUNE=0: one config for every shape (tests)
        tuned = not interpreting() and os.environ.get("FOURBIT_TRITON_AUTOTUNE", "1") != "0"
        config = pick(M) if tuned else INTERP_BLOCKS if interpreting() else DEFAULT
    grid = (triton.cdiv(M, config[0]), triton.cdiv(N, config[1]))
    launch(_w4a8_kernel, grid, x8, xs, qdata, s, z, b, y, M, N, K, int(G), BM=config[0], BN=config[1],
           SWAP=config[2], num_warps=config[3], num_stages=config[4], enable_fp_fusion=False, **common)
    return y
