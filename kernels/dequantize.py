"""dequantize: v = ((lut[code] - z) * s) * g in float32, each step rounded (fourbit.formats._base.dequantize_generic),
then RNE to the output dtype. `dequant_tile` is also the weight path of the fused GEMM (gemm.py)."""
import torch
import triton
import triton.language as tl

from . import codecs as cd
from ._launch import EXACT, as_bytes, scale_kind

BLOCK_R, BLOCK_K = 16, 256  # tile of one dequantize program


@triton.jit
def dequant_tile(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, rows, rmask, k0, K, G, BITS: tl.constexpr,
                 SCALE: tl.constexpr, HAS_Z: tl.constexpr, HAS_G: tl.constexpr, BK: tl.constexpr):
    """float32 [R, BK]: dequantized W[rows, k0:k0+BK] (0 outside rmask and past K; k0 even).

    q_ptr: uint8 [N, K/2] packed, element 2i in the low nibble (BITS=4) or int8/uint8 [N, K] (BITS=8).
    s_ptr: [N, K/G] float32 (SCALE=0) or uint8 bytes of E4M3 (1) / E8M0 (2). z_ptr: uint8 [N, K/G] (HAS_Z).
    g_ptr: float32 [1] (HAS_G). lut_ptr: float32 [16] code values (BITS=4). rows: int64 [R]; rmask: bool [R].
    """
    cols = k0 + tl.arange(0, BK)
    mask = rmask[:, None] & (cols[None, :] < K)
    if BITS == 4:
        hcols = k0 // 2 + tl.arange(0, BK // 2)
        p = tl.load(q_ptr + rows[:, None] * (K // 2) + hcols[None, :],
                    mask=rmask[:, None] & (hcols[None, :] < K // 2), other=0)
        v = tl.load(lut_ptr + cd.unpack_tile(p).to(tl.int32))
    else:
        v = tl.load(q_ptr + rows[:, None] * K + cols[None, :], mask=mask, other=0).to(tl.float32)
    sidx = rows[:, None] * (K // G) + (cols // G)[None, :]
    if HAS_Z:
        v = v - tl.load(z_ptr + sidx, mask=mask, other=0).to(tl.float32)
    raw = tl.load(s_ptr + sidx, mask=mask, other=0)
    if SCALE == 1:
        s = cd.e4m3_decode(raw)
    elif SCALE == 2:
        s = cd.e8m0_decode(raw)
    else:
        s = raw
    v = v * s
    if HAS_G:
        v = v * tl.load(g_ptr)
    return tl.where(mask, v, 0.0)


@triton.jit
def _dequantize_kernel(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, out_ptr, N, K, G, BITS: tl.constexpr,
                       SCALE: tl.constexpr, HAS_Z: tl.constexpr, HAS_G: tl.constexpr, OUT: tl.constexpr,
                       BR: tl.constexpr, BK: tl.constexpr):
    """out_ptr: [N, K] row-major; float32 (OUT=0), float16 (OUT=1) or int16 bits of bfloat16 (OUT=2)."""
    rows = tl.program_id(0).to(tl.int64) * BR + tl.arange(0, BR)
    k0 = tl.program_id(1) * BK
    cols = k0 + tl.arange(0, BK)
    mask = (rows[:, None] < N) & (cols[None, :] < K)
    v = dequant_tile(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, rows, rows < N, k0, K, G, BITS, SCALE, HAS_Z, HAS_G, BK)
    ptrs = out_ptr + rows[:, None] * K + cols[None, :]
    if OUT == 2:
        tl.store(ptrs, cd.bf16_bits(v).to(tl.int16, bitcast=True), mask=mask)
    else:
        tl.store(ptrs, v.to(out_ptr.dtype.element_ty), mask=mask)


def weight_meta(qdata, scales, zeros, global_scale, lut):
    """(N, K, bits, scale kind, has zeros, has global scale) of a stored weight (the op contract's conventions)."""
    bits = 4 if lut is not None and lut.numel() == 16 else 8
    N, K = qdata.shape[0], qdata.shape[1] * (2 if bits == 4 else 1)
    return N, K, bits, scale_kind(scales), zeros is not None and zeros.numel() > 0, \
        global_scale is not None and global_scale.numel() > 0


def weight_args(qdata, scales, zeros, global_scale, lut):
    """Pointer arguments (q, s, z, g, lut) with absent pieces replaced by a dummy and fp8 scales seen as bytes."""
    dummy = scales.new_zeros(1, dtype=torch.float32) if scales.dtype != torch.float32 else scales
    pick = lambda t: t if t is not None and t.numel() else dummy  # noqa: E731
    return qdata, as_bytes(scales), pick(zeros), pick(global_scale), pick(lut)


def dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype=torch.float32) -> torch.Tensor:
    """Stored weight -> [N, K] of dtype (float32 / bfloat16 / float16), bit-exact with the reference.

    qdata: uint8 [N, K/2] packed (lut float32 [16]) or int8/uint8 [N, K] (lut empty). scales: [N, K/G] float32 /
    float8_e4m3fn / float8_e8m0fnu. zeros: uint8 [N, K/G] or empty. global_scale: float32 [1] or empty."""
    N, K, bits, sk, hz, hg = weight_meta(qdata, scales, zeros, global_scale, lut)
    out = torch.empty(N, K, dtype=dtype, device=qdata.device)
    kind = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}[dtype]
    grid = (triton.cdiv(N, BLOCK_R), triton.cdiv(K, BLOCK_K))
    _dequantize_kernel[grid](*weight_args(qdata, scales, zeros, global_scale, lut),
                             out.view(torch.int16) if kind == 2 else out, N, K, int(group_size), BITS=bits,
                             SCALE=sk, HAS_Z=hz, HAS_G=hg, OUT=kind, BR=BLOCK_R, BK=BLOCK_K, **EXACT)
    return out
