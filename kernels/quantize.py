"""quantize: every fourbit format in one parameterized kernel (fmt id and grid constants are constexpr), bit-exact
with the FP32 references in fourbit/formats (same operation order, true IEEE division, RNE, same NaN policy).

nvfp4 takes two passes: `_amax_kernel` (max |w| over finite elements, atomic max) then the block pass.
"""
from functools import lru_cache

import torch
import triton
import triton.language as tl

from . import codecs as cd
from ._launch import EXACT
from fourbit.formats import FORMATS
from fourbit.formats._codebook import midpoints

TINY_BITS = tl.constexpr(0x006CE3EE)  # float32(1e-38), bitsandbytes' absmax clamp; a literal 1e-38 would become a float64 constant
# elements per quantize program (groups per program = TILE // padded group), warps. H100 8192^2 bf16 (bench/
# elementwise_tune.py, 2026-11-26): 2 warps beat 4 by 2-6%; TILE 1024-8192 within 5%. What bounds it is the
# per-element IEEE division the references specify (int4 / nvfp4) and the 15 midpoint compares (nf4).
TILE, WARPS = 2048, 2


@triton.jit
def _amax_kernel(w_ptr, numel, amax_ptr, BLOCK: tl.constexpr):
    """w_ptr: [numel] float32/bf16/fp16 flat; amax_ptr: float32 [1] (zeroed), receives max |w| over finite w."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = cd.to_f32(tl.load(w_ptr + offs, mask=offs < numel, other=0))
    x = tl.where(cd.is_finite(x), tl.abs(x), 0.0)
    tl.atomic_max(amax_ptr, tl.max(x, axis=0))


@triton.jit(do_not_specialize=["n_groups"])
def _quantize_kernel(w_ptr, q_ptr, s_ptr, z_ptr, g_ptr, amax_ptr, mid_ptr, order_ptr, K, n_groups, G,
                     FMT: tl.constexpr, BITS: tl.constexpr, QMIN: tl.constexpr, QMAX: tl.constexpr,
                     OFFSET: tl.constexpr, ZERO_CODE: tl.constexpr, GPB: tl.constexpr, BG: tl.constexpr,
                     SORTED: tl.constexpr):
    """One program: GPB consecutive groups of one row.

    w_ptr: [N, K] row-major float32/bf16/fp16. q_ptr: uint8 [N, K/2] packed (BITS=4) or int8/uint8 [N, K].
    s_ptr: [N, K/G] float32 (int, codebook) or uint8 bytes (nvfp4 E4M3, mxfp4 E8M0). z_ptr: uint8 [N, K/G] (INT_ASYM).
    g_ptr: float32 [1] global scale out (NVFP4); amax_ptr: float32 [1] finite amax in (NVFP4).
    mid_ptr: float32 [15] sorted codebook midpoints; order_ptr: uint8 [16] code of each sorted entry (CODEBOOK).
    G: group size (any even value; BG = next power of two >= G).
    """
    row = tl.program_id(0).to(tl.int64)
    gi = tl.program_id(1) * GPB + tl.arange(0, GPB)
    j = tl.arange(0, BG)
    gmask = gi < n_groups
    mask = gmask[:, None] & (j[None, :] < G)
    x = cd.to_f32(tl.load(w_ptr + row * K + gi[:, None] * G + j[None, :], mask=mask, other=0))
    fin = cd.is_finite(x)
    bad = tl.max((~fin).to(tl.int32), axis=1) > 0
    wf = tl.where(fin, x, 0.0)  # padding is 0 too: neutral for amax and for the 0-clamped min / max
    if FMT == 0:  # INT_SYM: s = amax / qmax, q = RNE(x / s) clamped
        s = tl.div_rn(tl.max(tl.abs(wf), axis=1), float(QMAX))
        s = tl.where(s == 0, 1.0, s)
        q = tl.minimum(tl.maximum(cd.rint(tl.div_rn(wf, s[:, None])), float(QMIN)), float(QMAX))
        codes = tl.where(bad[:, None], 0.0, q) + OFFSET
        scale = tl.where(bad, float("nan"), s)
    elif FMT == 1:  # INT_ASYM: range widened to hold 0, s = (mx - mn) / levels, z = RNE(-mn / s)
        mn = tl.minimum(tl.min(wf, axis=1), 0.0)
        mx = tl.maximum(tl.max(wf, axis=1), 0.0)
        s = tl.div_rn(mx - mn, float(QMAX))
        s = tl.where(s == 0, 1.0, s)
        z = tl.minimum(tl.maximum(cd.rint(tl.div_rn(-mn, s)), 0.0), float(QMAX))
        q = tl.minimum(tl.maximum(cd.rint(tl.div_rn(wf, s[:, None])) + z[:, None], 0.0), float(QMAX))
        codes = tl.where(bad[:, None], 0.0, q)
        z = tl.where(bad, 0.0, z)
        tl.store(z_ptr + row * n_groups + gi, z.to(tl.uint8), mask=gmask)
        scale = tl.where(bad, float("nan"), s)
    elif FMT == 2:  # CODEBOOK: t = clamp(x * (1 / max(a, 1e-38)), -1, 1), index = #midpoints strictly below t
        a = tl.max(tl.abs(wf), axis=1)
        tiny = tl.full([GPB], TINY_BITS, tl.uint32).to(tl.float32, bitcast=True)
        inv = tl.div_rn(tl.full([GPB], 1.0, tl.float32), tl.maximum(a, tiny))
        t = tl.minimum(tl.maximum(wf * inv[:, None], -1.0), 1.0)
        idx = tl.zeros([GPB, BG], tl.int32)
        for m in tl.static_range(15):
            idx += (t > tl.load(mid_ptr + m)).to(tl.int32)
        if SORTED:  # nf4: codes are already in value order, no per-element gather
            codes = tl.where(bad[:, None], ZERO_CODE, idx)
        else:
            codes = tl.where(bad[:, None], ZERO_CODE, tl.load(order_ptr + idx))
        scale = tl.where(bad, float("nan"), a)
    elif FMT == 3:  # NVFP4: g = amax / 2688, s = E4M3(bmax / (6 g)), code = E2M1(x / (s * g))
        g = tl.div_rn(tl.load(amax_ptr), 2688.0)
        g = tl.where(g == 0, 1.0, g)
        byte, s = cd.nvfp4_block_scale(tl.max(tl.abs(wf), axis=1), g)
        codes = tl.where(bad[:, None], 0, cd.e2m1_encode(tl.div_rn(wf, (s * g)[:, None])))
        scale = tl.where(bad, 0x7F, byte).to(tl.uint8)
        if (tl.program_id(0) == 0) & (tl.program_id(1) == 0):
            tl.store(g_ptr, g)
    else:  # MX_FLOOR / MX_RCEIL: E8M0 exponent e, code = E2M1(x * 2^-e) (an exact scaling)
        e = cd.mx_exponent(tl.max(tl.abs(wf), axis=1), FMT)
        codes = tl.where(bad[:, None], 0, cd.e2m1_encode(wf * cd.exp2i(-e)[:, None]))
        scale = tl.where(bad, 255, e + 127).to(tl.uint8)
    tl.store(s_ptr + row * n_groups + gi, scale, mask=gmask)
    if BITS == 4:
        jj = tl.arange(0, BG // 2)
        packed = cd.pack_tile(codes.to(tl.uint8))
        tl.store(q_ptr + row * (K // 2) + gi[:, None] * (G // 2) + jj[None, :], packed,
                 mask=gmask[:, None] & (jj[None, :] < G // 2))
    else:
        tl.store(q_ptr + row * K + gi[:, None] * G + j[None, :], codes.to(tl.int32).to(q_ptr.dtype.element_ty),
                 mask=mask)


@lru_cache(maxsize=None)
def _codebook_tables(fmt: str, device: str):
    """(float32 [15] midpoints of the sorted codebook, uint8 [16] code of each sorted entry, code of 0.0, whether
    the codes are already in value order)."""
    cb = FORMATS[fmt].codebook
    order = torch.sort(cb, stable=True).indices
    zero = int(torch.nonzero(cb == 0)[0])
    return (midpoints(cb[order]).to(device), order.to(torch.uint8).to(device), zero,
            bool(torch.equal(order, torch.arange(16))))


def _params(fmt: str, variant: str):
    """(fmt id, bits, qmin, qmax, code offset) of a format/variant."""
    if fmt in ("int4", "int8"):
        bits = 4 if fmt == "int4" else 8
        if variant == "sym":
            return (cd.INT_SYM, 4, -8, 7, 8) if bits == 4 else (cd.INT_SYM, 8, -127, 127, 0)
        return cd.INT_ASYM, bits, 0, 2**bits - 1, 0
    if fmt in ("nf4", "bnb_fp4"):
        return cd.CODEBOOK, 4, 0, 0, 0
    if fmt == "nvfp4":
        return cd.NVFP4, 4, 0, 0, 0
    return (cd.MX_FLOOR if variant == "floor" else cd.MX_RCEIL), 4, 0, 0, 0


def quantize(w: torch.Tensor, fmt: str, variant: str, group_size: int, tile: int = TILE, num_warps: int = WARPS):
    """w: [N, K] contiguous float32/bfloat16/float16 -> (qdata, scales, zeros, global_scale), as fourbit.ops:
    qdata uint8 [N, K/2] (4-bit, element 2i in the low nibble) or int8 (int8 sym) / uint8 (int8 asym) [N, K];
    scales [N, K/G] float32 / float8_e4m3fn (nvfp4) / float8_e8m0fnu (mxfp4); zeros uint8 [N, K/G] (asym) or
    empty; global_scale float32 [1] (nvfp4) or empty."""
    from fourbit.ops.library import quantize_out_meta
    N, K = w.shape
    G = int(group_size)
    qdata, scales, zeros, gscale = quantize_out_meta(w, fmt, variant, G)
    fid, bits, qmin, qmax, offset = _params(fmt, variant)
    dev = w.device
    dummy_f = torch.zeros(1, dtype=torch.float32, device=dev)
    mid, order, zero_code, srt = dummy_f, torch.zeros(1, dtype=torch.uint8, device=dev), 0, False
    if fid == cd.CODEBOOK:
        mid, order, zero_code, srt = _codebook_tables(fmt, str(dev))
    amax = dummy_f
    if fid == cd.NVFP4:
        amax = torch.zeros(1, dtype=torch.float32, device=dev)
        _amax_kernel[(triton.cdiv(w.numel(), 4096),)](w, w.numel(), amax, BLOCK=4096)
    BG = max(2, triton.next_power_of_2(G))
    n_groups = K // G
    GPB = max(1, min(tile // BG, triton.next_power_of_2(n_groups)))
    s_out = scales.view(torch.uint8) if scales.element_size() == 1 else scales
    grid = (N, triton.cdiv(n_groups, GPB))
    _quantize_kernel[grid](w, qdata, s_out, zeros if zeros.numel() else dummy_f, gscale if gscale.numel() else dummy_f,
                           amax, mid, order, K, n_groups, G, FMT=fid, BITS=bits, QMIN=qmin, QMAX=qmax,
                           OFFSET=offset, ZERO_CODE=zero_code, GPB=GPB, BG=BG, SORTED=srt, num_warps=num_warps,
                           **EXACT)
    return qdata, scales, zeros, gscale
