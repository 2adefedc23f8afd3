"""linear_scaled: nvfp4 / mxfp4 weights through tl.dot_scaled (block-scaled MMA on Blackwell).

act="bf16": weight-only; x enters the MMA as bf16 (fp16 / fp32 x is rounded to bf16 first, RNE).
act="fp4":  W4A4; each row of x is quantized on the fly, per block of 16 (nvfp4) / 32 (mxfp4) along K, with the
            weight format's own rule, bit-exact with fourbit.formats' quantize_ref applied to x: nvfp4 takes a
            per-tensor activation global scale amax(x) / 2688 from a first pass over x; mxfp4 uses `variant`
            ("floor" or "rceil"). Products of e2m1 * scale values are exact, so only the float32 accumulation and
            the epilogue's global-scale multiplies round.

Native tl.dot_scaled is used where the installed Triton supports it: Triton >= 3.9 emits the block-scaled MMA on
capabilities 100/103/120/121 (and a bf16 wgmma fallback on 90). Triton 3.6 fails NVFP4 dot_scaled on capability
9.0, so there nvfp4 takes the emulated path below (mxfp4 keeps dot_scaled). The emulated path dequantizes both
operands to bf16 (exact: e2m1 * E4M3 has 6 significant bits, e2m1 * 2^e 2 bits) and calls tl.dot, which is what
Triton's own Hopper fallback does. The interpreter runs dot_scaled only in Triton >= 3.9 and only with E8M0 scales
(mxfp4); everything else is emulated there.
"""
import os

import torch
import triton
import triton.language as tl

from . import codecs as cd
from ._launch import EXACT, interpreting, triton_version
from .quantize import _amax_kernel

# Configs (BM, BN, BK, num_warps, num_stages); dot_scaled wants BK >= 64 elements (>= 2 mxfp4 scale columns).
# pick(M) is static (deterministic; no timing at run time): 64-row tiles up to M = 64 (fewer padded rows of x),
# 128 x 128 beyond. Not measured: this path runs on Blackwell only, and none was available; the Hopper tests run both.
CONFIGS = [(128, 128, 128, 8, 3), (64, 128, 128, 4, 3)]
INTERP_BLOCKS = (16, 16, 64, 1, 1)


def pick(M):
    """The config linear_scaled runs for M rows of x."""
    return CONFIGS[1] if M <= 64 else CONFIGS[0]


@triton.jit
def quantize_act_tile(x, g, FMT: tl.constexpr, B: tl.constexpr, INTERP: tl.constexpr):
    """float32 [BM, BK] activations -> (uint8 [BM, BK/2] packed E2M1 codes, uint8 [BM, BK/B] scale bytes).
    FMT: codecs.NVFP4 (E4M3 scales, global scale g) or MX_FLOOR / MX_RCEIL (E8M0 scales; g unused)."""
    BM: tl.constexpr = x.shape[0]
    BK: tl.constexpr = x.shape[1]
    xg = tl.reshape(x, (BM, BK // B, B))
    fin = cd.is_finite(xg)
    bad = tl.max((~fin).to(tl.int32), axis=2) > 0
    wf = tl.where(fin, xg, 0.0)
    bmax = tl.max(tl.abs(wf), axis=2)
    if FMT == 3:
        byte, s = cd.nvfp4_block_scale(bmax, g)
        codes = cd.e2m1_encode_quotient(wf, (s * g)[:, :, None], INTERP)
        byte = tl.where(bad, 0x7F, byte).to(tl.uint8)
    else:
        e = cd.mx_exponent(bmax, FMT)
        codes = cd.e2m1_encode(wf * cd.exp2i(-e)[:, :, None])
        byte = tl.where(bad, 255, e + 127).to(tl.uint8)
    codes = tl.where(bad[:, :, None], 0, codes).to(tl.uint8)
    return cd.pack_tile(tl.reshape(codes, (BM, BK))), byte


@triton.jit
def decode_fp4_tile(packed, sbytes, FMT: tl.constexpr, B: tl.constexpr):
    """uint8 [R, BK/2] packed E2M1 + uint8 [R, BK/B] scale bytes -> float32 [R, BK] values e2m1 * scale (exact)."""
    v = cd.e2m1_decode(cd.unpack_tile(packed))
    R: tl.constexpr = v.shape[0]
    BK: tl.constexpr = v.shape[1]
    if FMT == 3:
        s = cd.e4m3_decode(sbytes)
    else:
        s = cd.e8m0_decode(sbytes)
    return tl.reshape(tl.reshape(v, (R, BK // B, B)) * s[:, :, None], (R, BK))


@triton.jit
def _dot_emulated(a, b, acc, INTERP: tl.constexpr):  # acc + a @ b for exact-in-bf16 float32 tiles a [M, K], b [K, N]
    if INTERP:
        return acc + tl.dot(a, b, input_precision="ieee")
    return acc + tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))


@triton.jit(do_not_specialize=["M"])
def _linear_scaled_kernel(x_ptr, q_ptr, s_ptr, g_ptr, xa_ptr, b_ptr, y_ptr, M, N, K,
                          FMT: tl.constexpr, B: tl.constexpr, ACT_FP4: tl.constexpr, HAS_BIAS: tl.constexpr,
                          NATIVE: tl.constexpr, INTERP: tl.constexpr,
                          BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """x_ptr: [M, K] row-major float32/bf16/fp16. q_ptr: uint8 [N, K/2] E2M1 codes, element 2i in the low nibble.
    s_ptr: uint8 [N, K/B] scale bytes (E4M3 for nvfp4, E8M0 for mxfp4). g_ptr: float32 [1] weight global scale
    (nvfp4). xa_ptr: float32 [1] finite amax of x (nvfp4, ACT_FP4). b_ptr: [N] of x's dtype. y_ptr: [M, N]."""
    rows_m = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    rows_n = tl.program_id(1).to(tl.int64) * BN + tl.arange(0, BN)
    mmask, nmask = rows_m < M, rows_n < N
    DT: tl.constexpr = x_ptr.dtype.element_ty
    gx = 1.0
    if ACT_FP4 and FMT == 3:
        gx = cd.nvfp4_global_scale(xa_ptr)
    acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, K, BK):
        cols = k0 + tl.arange(0, BK)
        hcols = k0 // 2 + tl.arange(0, BK // 2)
        scols = k0 // B + tl.arange(0, BK // B)
        x = tl.load(x_ptr + rows_m[:, None] * K + cols[None, :], mask=mmask[:, None] & (cols[None, :] < K), other=0)
        wq = tl.load(q_ptr + rows_n[:, None] * (K // 2) + hcols[None, :],
                     mask=nmask[:, None] & (hcols[None, :] < K // 2), other=0)
        ws = tl.load(s_ptr + rows_n[:, None] * (K // B) + scols[None, :],
                     mask=nmask[:, None] & (scols[None, :] < K // B), other=0)
        ws_op = ws  # dot_scaled reads E8M0 scales as uint8 and E4M3 scales as float8e4nv
        if FMT == 3:
            ws_op = ws.to(tl.float8e4nv, bitcast=True)
        if ACT_FP4:
            xq, xs = quantize_act_tile(cd.to_f32(x), gx, FMT, B, INTERP)
            if NATIVE:
                xs_op = xs
                if FMT == 3:
                    xs_op = xs.to(tl.float8e4nv, bitcast=True)
                acc = tl.dot_scaled(xq, xs_op, "e2m1", tl.trans(wq), ws_op, "e2m1", acc)
            else:
                acc = _dot_emulated(decode_fp4_tile(xq, xs, FMT, B), tl.trans(decode_fp4_tile(wq, ws, FMT, B)),
                                    acc, INTERP)
        else:
            if NATIVE:
                xb = x if DT == tl.bfloat16 else cd.cast_rne(cd.to_f32(x), tl.bfloat16)
                acc = tl.dot_scaled(xb, None, "bf16", tl.trans(wq), ws_op, "e2m1", acc)
            else:
                xb = cd.round_to(cd.to_f32(x), tl.bfloat16)
                acc = _dot_emulated(xb, tl.trans(decode_fp4_tile(wq, ws, FMT, B)), acc, INTERP)
    if FMT == 3:
        acc = acc * tl.load(g_ptr)
        if ACT_FP4:
            acc = acc * gx
    if HAS_BIAS:
        acc = acc + cd.to_f32(tl.load(b_ptr + rows_n, mask=nmask, other=0))[None, :]
    tl.store(y_ptr + rows_m[:, None] * N + rows_n[None, :], cd.cast_rne(acc, DT), mask=mmask[:, None] & nmask[None, :])




def native_dot_scaled(fmt: str, device: torch.device) -> bool:
    """Whether tl.dot_scaled itself runs for fmt here (else the exact bf16 emulation does)."""
    if interpreting():
        return fmt == "mxfp4" and triton_version() >= (3, 9)  # the 3.9 interpreter: E8M0 scales only
    if fmt == "nvfp4" and triton_version() < (3, 9):
        return torch.cuda.get_device_capability(device) >= (10, 0)  # Triton 3.6 fails NVFP4 on 9.0
    return True


def linear_scaled(x, qdata, scales, global_scale, fmt, bias=None, act="bf16", variant="floor", out=None):
    """y [M, N] = x [M, K] @ W^T (+ bias) in x's dtype, W an nvfp4 / mxfp4 weight.

    x: contiguous [M, K] bfloat16 (act="bf16"; fp16/fp32 are rounded to bf16) or float32/bf16/fp16 (act="fp4").
    qdata: uint8 [N, K/2] E2M1 codes (element 2i in the low nibble). scales: float8_e4m3fn [N, K/16] (nvfp4) or
    float8_e8m0fnu [N, K/32] (mxfp4). global_scale: float32 [1] (nvfp4) or empty. bias: [N] of x's dtype or None.
    act: "bf16" or "fp4" (W4A4). variant: mxfp4 activation scale rule under act="fp4", "floor" or "rceil"."""
    M, K = x.shape
    N = qdata.shape[0]
    B = 16 if fmt == "nvfp4" else 32
    fid = cd.NVFP4 if fmt == "nvfp4" else (cd.MX_FLOOR if variant == "floor" else cd.MX_RCEIL)
    y = out if out is not None else torch.empty(M, N, dtype=x.dtype, device=x.device)
    dummy = torch.zeros(1, dtype=torch.float32, device=x.device)
    xa = dummy
    if act == "fp4" and fmt == "nvfp4":
        xa = torch.zeros(1, dtype=torch.float32, device=x.device)
        _amax_kernel[(triton.cdiv(x.numel(), 4096),)](x, x.numel(), xa, BLOCK=4096)
    g = global_scale if global_scale is not None and global_scale.numel() else dummy
    meta = dict(FMT=fid, B=B, ACT_FP4=act == "fp4", HAS_BIAS=bias is not None,
                NATIVE=native_dot_scaled(fmt, x.device), INTERP=interpreting())
    if interpreting():
        cfg = INTERP_BLOCKS
    else:  # FOURBIT_TRITON_AUTOTUNE=0: one config for every shape (tests)
        cfg = pick(M) if os.environ.get("FOURBIT_TRITON_AUTOTUNE", "1") != "0" else CONFIGS[0]
    BM, BN, BK, warps, stages = cfg
    _linear_scaled_kernel[(triton.cdiv(M, BM), triton.cdiv(N, BN))](
        x, qdata, scales.view(torch.uint8), g, xa, bias if bias is not None else y, y, M, N, K, **meta,
        BM=BM, BN=BN, BK=BK, num_warps=warps, num_stages=stages, **EXACT)
    return y
