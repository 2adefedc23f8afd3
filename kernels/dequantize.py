"""dequantize: v = ((lut[code] - z) * s) * g in float32, each step rounded (fourbit.formats._base.dequantize_generic),
then RNE to the output dtype. `dequant_tile` is also the weight path of the fused GEMM (gemm.py)."""
import weakref

import torch
import triton
import triton.language as tl

from . import codecs as cd
from ._launch import EXACT, as_bytes, interpreting, launch, scale_kind, scratch

# tile of one dequantize program and warps; codebook formats (nf4, bnb_fp4) gather from the LUT (LUT_MODE 1).
# H100 8192^2 to bf16 (bench/elementwise_tune.py, 2026-11-26): (8, 1024) x 4 warps: int4 73.9 -> 72.0 us (80% of copy),
# nvfp4 74.6 -> 70.7 (83%), mxfp4 80.4 -> 75.8 (76%); nf4 with the gather 108 -> 95 us (61%; the select tree: 57%).
BLOCK_R, BLOCK_K, WARPS = 8, 1024, 4
# codebook formats (the prmt lookup, LUT_MODE 2): 27 (block, warps) pairs on the same card, CUDA graph, 2026-11-27:
# (4, 2048) x 2 warps 80.8 us (72% of copy; (8, 1024) x 4 is not among the best 8, >= 85.3). int4 there: 71.0 against
# 72.5 for its default, within noise, so the other kinds keep theirs.
LUT_BLOCK, LUT_WARPS = (4, 2048), 2
# int4 asym (CODES_UINT) and the E2M1 formats (CODES_E2M1) take 1 x 4096 tiles instead: 8 tiles x 4 warp counts at
# both shapes of the dequantize + cuBLAS route, each bit-exact against the default (bench/probes/dequant_tiles.py, H100
# 80GB HBM3, 2026-11-27, one-call CUDA graphs, us, (8, 1024) x 4 -> the pick): int4 4096^2 22.2 -> 20.7, 8192^2
# 72.4 -> 67.9 (1 warp); mxfp4 23.3 -> 20.5, 74.2 -> 67.1 (1 warp); nvfp4 22.2 -> 21.3, 69.3 -> 67.9 (4 warps; its
# 16-element groups carry twice the scale work). Rows shorter than 4096 take (4096 / K', K') tiles, K' = K rounded up
# to a power of two (the (2, 2048) and (4, 1024) tiles, timed at K = 4096 / 8192, were within 0-6% of the best; short
# rows themselves were not timed). int4_sym and the 8-bit codes were not timed and keep the default.
TILE4_ELEMS, TILE4_WARPS = 4096, {0: 1, 1: 4, 2: 1}  # elements a program; warps by scale kind: float32, E4M3, E8M0
# the group-table kernel (bf16 / fp16 out; below): elements a program, warps. 6 tiles x 4 warp counts per format, each
# bit-exact against the element-wise kernel (bench/probes/dequant_tiles.py table, H100 80GB HBM3, 2026-11-27, one-call
# CUDA graphs, us, element-wise -> this default): nf4 4096^2 26.7 -> 20.1, 8192^2 80.7 -> 66.4, the best tile at both.
# int4 and mxfp4 gain 1-3% at their best tiles (int4 4096^2 20.7 -> 19.5 at (4, 1024) x 1), nvfp4 (16-element groups)
# loses 2-4%, so only the codebook formats take it by default.
TABLE_ELEMS, TABLE_WARPS = 4096, 2

# code kinds (constexpr CODES): how a 4-bit code becomes its float32 LUT value. The launchers pick one from the LUT's
# contents (code_kind); every kind gives exactly lut[code].
CODES_LUT = 0  # any 16-value LUT: 16 scalars held in registers, picked per element (LUT_MODE)
CODES_UINT = 1  # lut[c] = c (int4 asymmetric): 2^23 + c by bits, the 2^23 folded into the zero point
CODES_SINT = 2  # lut[c] = c - 8 (int4 symmetric): likewise, 2^23 + 8 subtracted per group
CODES_E2M1 = 3  # the E2M1 table (nvfp4, mxfp4): bit decode

_TABLES = {CODES_UINT: [float(i) for i in range(16)], CODES_SINT: [float(i - 8) for i in range(16)],
           CODES_E2M1: [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]}
_TABLE_BITS = {k: torch.tensor(v, dtype=torch.float32).view(torch.int32) for k, v in _TABLES.items()}
_kind_cache = {}  # id(lut) -> (weakref to lut, lut._version, kind)


def code_kind(lut) -> int:
    """CODES_* for a LUT tensor (float32 [16]; anything else -> CODES_LUT). Compared bit for bit (so -0.0 counts) on
    the CPU once per LUT tensor and version, then cached; during CUDA-graph capture an unseen LUT (a copy to the host
    is not allowed there) takes the general CODES_LUT path, which gives the same values."""
    if lut is None or lut.numel() != 16 or lut.dtype != torch.float32:
        return CODES_LUT
    hit = _kind_cache.get(id(lut))
    if hit is not None and hit[0]() is lut and hit[1] == lut._version:
        return hit[2]
    if lut.is_cuda and torch.cuda.is_current_stream_capturing():
        return CODES_LUT
    bits = lut.detach().reshape(16).cpu().view(torch.int32)
    kind = next((k for k, t in _TABLE_BITS.items() if torch.equal(bits, t)), CODES_LUT)
    key = id(lut)
    _kind_cache[key] = (weakref.ref(lut, lambda _r, k=key: _kind_cache.pop(k, None)), lut._version, kind)
    return kind


def group_constexpr(G: int) -> int:
    """The group size as the kernels' constexpr GC: G itself, except that a multiple of 256 (per-channel scales,
    G = K) becomes 256, so that every such K shares one compiled kernel (any BK <= 256 then divides G)."""
    G = int(G)
    return 256 if G % 256 == 0 else G


@triton.jit
def _lut_pick(c, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11, l12, l13, l14, l15):
    """int32 codes 0..15 -> lut[c] from 16 scalars: a select tree on the code's bits (15 selects per element)."""
    b0 = (c & 1) != 0
    a0 = tl.where(b0, l1, l0)
    a1 = tl.where(b0, l3, l2)
    a2 = tl.where(b0, l5, l4)
    a3 = tl.where(b0, l7, l6)
    a4 = tl.where(b0, l9, l8)
    a5 = tl.where(b0, l11, l10)
    a6 = tl.where(b0, l13, l12)
    a7 = tl.where(b0, l15, l14)
    b1 = (c & 2) != 0
    a0 = tl.where(b1, a1, a0)
    a2 = tl.where(b1, a3, a2)
    a4 = tl.where(b1, a5, a4)
    a6 = tl.where(b1, a7, a6)
    b2 = (c & 4) != 0
    a0 = tl.where(b2, a2, a0)
    a4 = tl.where(b2, a6, a4)
    return tl.where((c & 8) != 0, a4, a0)


@triton.jit
def _plane(a, b, c, d, J: tl.constexpr):  # byte J of four uint32 words, gathered into one word (a's byte lowest)
    return (((a >> (8 * J)) & 0xFF) | (((b >> (8 * J)) & 0xFF) << 8) | (((c >> (8 * J)) & 0xFF) << 16)
            | (((d >> (8 * J)) & 0xFF) << 24))


# 8 codes (the nibbles of one 32-bit word, element 2i in byte i's low nibble) -> their 8 float32 LUT words, by byte
# permutes: $0..$3 the low-nibble elements, $4..$7 the high ones; $8 the packed word; $9 + 4 * (4 * j + q) the byte
# plane word q of byte j (byte j of lut[4q .. 4q+3]); prmt's 8-byte index takes the code's low 3 bits, a third
# prmt picks the codes 0-7 or 8-15 result by bit 3, and four prmt pairs turn the 4 byte planes into 4 words.
def _prmt_asm():
    t = lambda j, q: f"${9 + 4 * (4 * j + q)}"  # noqa: E731
    lines = ["{", ".reg .b32 s, u, g, p0, p1, p2, p3, a, b, c, d;"]
    outs = {0: ("$0", "$4", "$1", "$5"), 1: ("$2", "$6", "$3", "$7")}
    for half in (0, 1):
        lines.append("shr.b32 g, $8, 16;" if half else "mov.b32 g, $8;")
        lines += ["and.b32 s, g, 0x7777;", "shr.b32 u, g, 1;", "and.b32 u, u, 0x4444;", "or.b32 u, u, 0x3210;"]
        for j in range(4):
            lines += [f"prmt.b32 a, {t(j, 0)}, {t(j, 1)}, s;", f"prmt.b32 b, {t(j, 2)}, {t(j, 3)}, s;",
                      f"prmt.b32 p{j}, a, b, u;"]
        o = outs[half]  # nibble k of this half is element 4 * half + k: k = 0, 2 low nibbles, k = 1, 3 high
        lines += ["prmt.b32 a, p0, p1, 0x5140;", "prmt.b32 b, p2, p3, 0x5140;",
                  "prmt.b32 c, p0, p1, 0x7362;", "prmt.b32 d, p2, p3, 0x7362;",
                  f"prmt.b32 {o[0]}, a, b, 0x5410;", f"prmt.b32 {o[1]}, a, b, 0x7632;",
                  f"prmt.b32 {o[2]}, c, d, 0x5410;", f"prmt.b32 {o[3]}, c, d, 0x7632;"]
    return "\n".join(lines + ["}"])


PRMT_ASM = tl.constexpr(_prmt_asm())
PRMT_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 8 + ["r"] * (1 + 64)))


@triton.jit
def _lut_prmt(p, lut_ptr):
    """uint8 [R, C] packed codes -> float32 [R, 2C] of lut[code], bit copies of the LUT words (GPU only)."""
    w0 = tl.load(lut_ptr).to(tl.uint32, bitcast=True)
    w1 = tl.load(lut_ptr + 1).to(tl.uint32, bitcast=True)
    w2 = tl.load(lut_ptr + 2).to(tl.uint32, bitcast=True)
    w3 = tl.load(lut_ptr + 3).to(tl.uint32, bitcast=True)
    w4 = tl.load(lut_ptr + 4).to(tl.uint32, bitcast=True)
    w5 = tl.load(lut_ptr + 5).to(tl.uint32, bitcast=True)
    w6 = tl.load(lut_ptr + 6).to(tl.uint32, bitcast=True)
    w7 = tl.load(lut_ptr + 7).to(tl.uint32, bitcast=True)
    w8 = tl.load(lut_ptr + 8).to(tl.uint32, bitcast=True)
    w9 = tl.load(lut_ptr + 9).to(tl.uint32, bitcast=True)
    w10 = tl.load(lut_ptr + 10).to(tl.uint32, bitcast=True)
    w11 = tl.load(lut_ptr + 11).to(tl.uint32, bitcast=True)
    w12 = tl.load(lut_ptr + 12).to(tl.uint32, bitcast=True)
    w13 = tl.load(lut_ptr + 13).to(tl.uint32, bitcast=True)
    w14 = tl.load(lut_ptr + 14).to(tl.uint32, bitcast=True)
    w15 = tl.load(lut_ptr + 15).to(tl.uint32, bitcast=True)
    lo, hi = tl.inline_asm_elementwise(
        PRMT_ASM, PRMT_CONSTRAINTS,
        [p, _plane(w0, w1, w2, w3, 0), _plane(w4, w5, w6, w7, 0), _plane(w8, w9, w10, w11, 0),
         _plane(w12, w13, w14, w15, 0),
         _plane(w0, w1, w2, w3, 1), _plane(w4, w5, w6, w7, 1), _plane(w8, w9, w10, w11, 1),
         _plane(w12, w13, w14, w15, 1),
         _plane(w0, w1, w2, w3, 2), _plane(w4, w5, w6, w7, 2), _plane(w8, w9, w10, w11, 2),
         _plane(w12, w13, w14, w15, 2),
         _plane(w0, w1, w2, w3, 3), _plane(w4, w5, w6, w7, 3), _plane(w8, w9, w10, w11, 3),
         _plane(w12, w13, w14, w15, 3)],
        dtype=(tl.float32, tl.float32), is_pure=True, pack=4)
    return tl.reshape(tl.join(lo, hi), (p.shape[0], 2 * p.shape[1]))


@triton.jit
def _codes_to_values(c, lut_ptr, CODES: tl.constexpr, LUT_MODE: tl.constexpr):
    """int32 codes 0..15 (any tile shape) -> float32 "raw" values: lut[c] + code_bias(CODES), exactly."""
    if CODES == 1 or CODES == 2:  # 2^23 + c by bits (no int -> float conversion)
        return (c | 0x4B000000).to(tl.float32, bitcast=True)
    elif CODES == 3:  # E2M1 bits placed in a float32: sign, exponent field e (2 bits), 1 mantissa bit; that float
        # is e2m1 * 2^-126 (e = 0 lands on the float32 subnormal 2^-127 = 0.5 * 2^-126), exact times 2^126
        bits = ((c & 8) << 28) | ((c & 7) << 22)
        return bits.to(tl.float32, bitcast=True) * 8.507059173023462e+37
    elif LUT_MODE == 1:  # gather from the global LUT (L1 resident)
        return tl.load(lut_ptr + c)
    else:
        return _lut_pick(c, tl.load(lut_ptr), tl.load(lut_ptr + 1), tl.load(lut_ptr + 2), tl.load(lut_ptr + 3),
                         tl.load(lut_ptr + 4), tl.load(lut_ptr + 5), tl.load(lut_ptr + 6), tl.load(lut_ptr + 7),
                         tl.load(lut_ptr + 8), tl.load(lut_ptr + 9), tl.load(lut_ptr + 10), tl.load(lut_ptr + 11),
                         tl.load(lut_ptr + 12), tl.load(lut_ptr + 13), tl.load(lut_ptr + 14), tl.load(lut_ptr + 15))


@triton.jit
def _code_bias(CODES: tl.constexpr):  # what _codes_to_values adds to lut[c]
    if CODES == 1:
        return 8388608.0
    elif CODES == 2:
        return 8388616.0
    else:
        return 0.0


@triton.jit
def _load_scale(s_ptr, idx, m, MASKED: tl.constexpr, SCALE: tl.constexpr):
    """Scale tile at idx -> float32 (E4M3 / E8M0 bytes decoded here, on the small per-group tile only)."""
    if MASKED:
        raw = tl.load(s_ptr + idx, mask=m, other=0)
    else:
        raw = tl.load(s_ptr + idx)
    if SCALE == 1:
        return cd.e4m3_decode(raw)
    elif SCALE == 2:
        return cd.e8m0_decode(raw)
    else:
        return raw


@triton.jit
def _load_zoff(z_ptr, idx, m, MASKED: tl.constexpr, HAS_Z: tl.constexpr, CODES: tl.constexpr):
    """Zero-point tile at idx -> float32 z + code bias (exact: both are integers below 2^24), what raw values lose."""
    if HAS_Z:
        if MASKED:
            z = tl.load(z_ptr + idx, mask=m, other=0)
        else:
            z = tl.load(z_ptr + idx)
        return z.to(tl.float32) + _code_bias(CODES)
    else:
        return tl.zeros(idx.shape, tl.float32) + _code_bias(CODES)


@triton.jit
def dequant_tile(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, rows, rmask, k0, K, G, GC: tl.constexpr, BITS: tl.constexpr,
                 SCALE: tl.constexpr, HAS_Z: tl.constexpr, HAS_G: tl.constexpr, CODES: tl.constexpr,
                 LUT_MODE: tl.constexpr, BK: tl.constexpr, MASKED: tl.constexpr):
    """float32 [R, BK]: dequantized W[rows, k0:k0+BK], each value ((lut[code] - z) * s) * g rounded exactly as the
    reference does (0 outside rmask and past K when MASKED; without MASKED every row and column must be in range).

    q_ptr: uint8 [N, K/2] packed, element 2i in the low nibble (BITS=4) or int8/uint8 [N, K] (BITS=8).
    s_ptr: [N, K/G] float32 (SCALE=0) or uint8 bytes of E4M3 (1) / E8M0 (2). z_ptr: uint8 [N, K/G] (HAS_Z).
    g_ptr: float32 [1] (HAS_G). lut_ptr: float32 [16] code values (BITS=4), CODES says which (code_kind).
    rows: int64 [R]; k0: a multiple of BK. G: the group size; GC = group_constexpr(G).
    Scales and zeros are loaded once per (row, group): a [R] tile when a group spans the whole K tile, else a
    [R, BK/G] tile broadcast over [R, BK/G, G]; per element this costs the code decode, a subtract and a multiply.
    """
    KG = K // G
    cols = k0 + tl.arange(0, BK)
    mask = rmask[:, None] & (cols[None, :] < K)
    if BITS == 4:
        hcols = k0 // 2 + tl.arange(0, BK // 2)
        if MASKED:
            p = tl.load(q_ptr + rows[:, None] * (K // 2) + hcols[None, :],
                        mask=rmask[:, None] & (hcols[None, :] < K // 2), other=0)
        else:
            p = tl.load(q_ptr + rows[:, None] * (K // 2) + hcols[None, :])
        if CODES == 0 and LUT_MODE == 2:  # GPU only: byte-permute lookups on the packed bytes
            v = _lut_prmt(p, lut_ptr)
        else:
            c = cd.unpack_tile(p.to(tl.int32))  # and / shift on 32-bit lanes, low nibble first
            v = _codes_to_values(c, lut_ptr, CODES, LUT_MODE)
    else:  # (CODES is CODES_LUT here: no code bias)
        if MASKED:
            v = tl.load(q_ptr + rows[:, None] * K + cols[None, :], mask=mask, other=0).to(tl.float32)
        else:
            v = tl.load(q_ptr + rows[:, None] * K + cols[None, :]).to(tl.float32)
    R: tl.constexpr = v.shape[0]
    if GC % BK == 0:  # the whole K tile lies in one group: [R] scales
        gi = k0 // G
        s = _load_scale(s_ptr, rows * KG + gi, rmask, MASKED, SCALE)
        if HAS_Z or CODES == 1 or CODES == 2:
            v = v - _load_zoff(z_ptr, rows * KG + gi, rmask, MASKED, HAS_Z, CODES)[:, None]
        v = v * s[:, None]
    elif BK % GC == 0:  # BK / GC groups per K tile: [R, BK/GC] scales broadcast over [R, BK/GC, GC]
        NG: tl.constexpr = BK // GC
        gcols = k0 // GC + tl.arange(0, NG)
        sidx = rows[:, None] * KG + gcols[None, :]
        smask = rmask[:, None] & (gcols[None, :] < KG)
        s = _load_scale(s_ptr, sidx, smask, MASKED, SCALE)
        v3 = tl.reshape(v, (R, NG, GC))
        if HAS_Z or CODES == 1 or CODES == 2:
            v3 = v3 - _load_zoff(z_ptr, sidx, smask, MASKED, HAS_Z, CODES)[:, :, None]
        v = tl.reshape(v3 * s[:, :, None], (R, BK))
    else:  # groups straddle K tiles (G neither divides nor is a multiple of BK): per-element gathers
        sidx = rows[:, None] * KG + (cols // GC)[None, :]
        if HAS_Z or CODES == 1 or CODES == 2:
            v = v - _load_zoff(z_ptr, sidx, mask, True, HAS_Z, CODES)
        v = v * _load_scale(s_ptr, sidx, mask, True, SCALE)
    if HAS_G:
        v = v * tl.load(g_ptr)
    if MASKED:
        v = tl.where(mask, v, 0.0)
    return v


# --- 16-bit outputs by per-group tables ----------------------------------------------------------------------------
# For a bf16 / fp16 output every code of a group has one of 16 final values, t_c = dtype(((lut[c] - z) * s) * g) (the
# same float32 steps as dequant_tile, so bit-exact by construction). The group-table kernel computes those 16 values
# once per (row, group), keeps them as 2 x 4 byte-plane words (L_q: the low bytes of t_4q .. t_4q+3, H_q: the high
# bytes) and turns each code byte into its two outputs with 8 byte permutes (prmt) per 4 codes. The per-element work
# drops from ~7 instructions (the float32 LUT's 4 planes, multiply, convert) to ~3.5 plus the table's share; it pays
# for the codebook formats (nf4, bnb_fp4: groups of 64) and costs for nvfp4, whose groups hold only 16 elements.


@triton.jit
def _bits16(x, OUT: tl.constexpr):  # float32 -> uint32: x's bits in bfloat16 (OUT=2) / float16, RNE
    if OUT == 2:
        return cd.bf16_bits(x).to(tl.uint32)
    else:
        return x.to(tl.float16).to(tl.uint16, bitcast=True).to(tl.uint32)


@triton.jit
def _plane_pair(lut_ptr, Q: tl.constexpr, s, z, g, HAS_Z: tl.constexpr, HAS_G: tl.constexpr, OUT: tl.constexpr):
    """uint32 [R, NG] byte-plane words (L_Q, H_Q) of the final 16-bit values of codes 4Q .. 4Q+3 (code 4Q lowest)."""
    lo = tl.zeros(s.shape, tl.uint32)
    hi = tl.zeros(s.shape, tl.uint32)
    for j in tl.static_range(4):
        t = tl.load(lut_ptr + 4 * Q + j)  # (a scalar: + 0.0 to broadcast would turn E2M1's -0.0 into +0.0)
        if HAS_Z:
            t = t - z
        t = t * s
        if HAS_G:
            t = t * g
        b = _bits16(t, OUT)
        lo |= (b & 0xFF) << (8 * j)
        hi |= (b >> 8) << (8 * j)
    return lo, hi


# 4 code bytes ($4, element 2i in byte i's low nibble) -> 4 words ($0..$3), each byte's two 16-bit outputs (its low
# nibble's in the low half); the 8 plane words L0..L3, H0..H3 arrive as 4 copies each (pack = 4), the first read:
# $5 + 4 i. Per 16-bit half: s = the codes' low 3 bits (prmt's byte index into entries 0-7 / 8-15), u picks the
# 8-15 result by bit 3, then 0x5140 / 0x7362 interleave the low / high byte planes into (t_e0, t_e1), (t_e2, t_e3).
def _group_prmt_asm():
    P = lambda i: f"${5 + 4 * i}"  # noqa: E731
    lines = ["{", ".reg .b32 s, u, g, a, b, l, h;"]
    for half in (0, 1):
        lines.append("shr.b32 g, $4, 16;" if half else "mov.b32 g, $4;")
        lines += ["and.b32 s, g, 0x7777;", "shr.b32 u, g, 1;", "and.b32 u, u, 0x4444;", "or.b32 u, u, 0x3210;"]
        for dst, base in (("l", 0), ("h", 4)):
            lines += [f"prmt.b32 a, {P(base)}, {P(base + 1)}, s;", f"prmt.b32 b, {P(base + 2)}, {P(base + 3)}, s;",
                      f"prmt.b32 {dst}, a, b, u;"]
        lines += [f"prmt.b32 ${2 * half}, l, h, 0x5140;", f"prmt.b32 ${2 * half + 1}, l, h, 0x7362;"]
    return "\n".join(lines + ["}"])


GROUP_PRMT_ASM = tl.constexpr(_group_prmt_asm())
GROUP_PRMT_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 4 + ["r"] * (1 + 32)))


@triton.jit
def _prmt(a, b, sel):  # PTX prmt.b32 (selector nibbles 0..7: byte of {b, a}) on uint32 tiles: the interpreter's twin
    d = tl.zeros(a.shape, tl.uint32)
    for k in tl.static_range(4):
        i = (sel >> (4 * k)) & 7
        d |= ((tl.where(i < 4, a, b) >> (8 * (i & 3))) & 0xFF) << (8 * k)
    return d


@triton.jit
def _group_lookup_emu(byte, L0, L1, L2, L3, H0, H1, H2, H3):
    """uint32 code bytes -> uint32 output pairs by the asm's own steps on one byte (interpreter / CPU)."""
    s = byte & 0x77
    u = ((byte >> 1) & 0x44) | 0x3210
    lo = _prmt(_prmt(L0, L1, s), _prmt(L2, L3, s), u)
    hi = _prmt(_prmt(H0, H1, s), _prmt(H2, H3, s), u)
    return _prmt(lo, hi, tl.full(byte.shape, 0x5140, tl.uint32))


@triton.jit
def _dequantize16_kernel(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, out_ptr, N, K, G, GC: tl.constexpr,
                         SCALE: tl.constexpr, HAS_Z: tl.constexpr, HAS_G: tl.constexpr, OUT: tl.constexpr,
                         BR: tl.constexpr, BK: tl.constexpr, EMULATE: tl.constexpr):
    """4-bit codes -> bfloat16 (OUT=2) / float16 (OUT=1) by per-group tables. out_ptr: int32 [N, K/2], word i of a
    row the outputs of elements 2i (low half) and 2i + 1. Needs BK % GC == 0 or GC % BK == 0 (a tile holds whole
    groups, or lies in one) and GC % 8 == 0 (the 4 bytes of one asm call share a group)."""
    rows = tl.program_id(0).to(tl.int64) * BR + tl.arange(0, BR)
    k0 = tl.program_id(1) * BK
    NG: tl.constexpr = 1 if GC % BK == 0 else BK // GC  # groups a K tile
    hcols = k0 // 2 + tl.arange(0, BK // 2)
    m2 = (rows[:, None] < N) & (hcols[None, :] < K // 2)
    p = tl.load(q_ptr + rows[:, None] * (K // 2) + hcols[None, :], mask=m2, other=0)
    gcols = k0 // G + tl.arange(0, NG)
    sidx = rows[:, None] * (K // G) + gcols[None, :]
    smask = (rows[:, None] < N) & (gcols[None, :] < K // G)
    s = _load_scale(s_ptr, sidx, smask, True, SCALE)
    z = _load_zoff(z_ptr, sidx, smask, True, HAS_Z, 0)
    g = 1.0
    if HAS_G:
        g = tl.load(g_ptr)
    L0, H0 = _plane_pair(lut_ptr, 0, s, z, g, HAS_Z, HAS_G, OUT)
    L1, H1 = _plane_pair(lut_ptr, 1, s, z, g, HAS_Z, HAS_G, OUT)
    L2, H2 = _plane_pair(lut_ptr, 2, s, z, g, HAS_Z, HAS_G, OUT)
    L3, H3 = _plane_pair(lut_ptr, 3, s, z, g, HAS_Z, HAS_G, OUT)
    p3 = tl.reshape(p, (BR, NG, BK // 2 // NG))
    if EMULATE:
        w = _group_lookup_emu(p3.to(tl.uint32), L0[:, :, None], L1[:, :, None], L2[:, :, None], L3[:, :, None],
                              H0[:, :, None], H1[:, :, None], H2[:, :, None], H3[:, :, None])
    else:
        w = tl.inline_asm_elementwise(
            GROUP_PRMT_ASM, GROUP_PRMT_CONSTRAINTS,
            [p3, L0[:, :, None], L1[:, :, None], L2[:, :, None], L3[:, :, None], H0[:, :, None], H1[:, :, None],
             H2[:, :, None], H3[:, :, None]], dtype=tl.uint32, is_pure=True, pack=4)
    w = tl.reshape(w, (BR, BK // 2)).to(tl.int32, bitcast=True)
    tl.store(out_ptr + rows[:, None] * (K // 2) + hcols[None, :], w, mask=m2)


@triton.jit
def tile_rows(M, N, BM: tl.constexpr, BN: tl.constexpr):
    """The GEMMs' output tile of program (pid 0, pid 1): (rows of x / y [BM], rows of W = columns of y [BN], the
    same wrapped into [0, M) / [0, N) as int64 load indices: past-the-end rows load valid memory and are never
    stored, so the K loop needs no row masks)."""
    rows_m = tl.program_id(0) * BM + tl.arange(0, BM)
    rows_n = tl.program_id(1) * BN + tl.arange(0, BN)
    return rows_m, rows_n, (rows_m % M).to(tl.int64), (rows_n % N).to(tl.int64)


@triton.jit
def _dequantize_kernel(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, out_ptr, N, K, G, GC: tl.constexpr, CODES: tl.constexpr,
                       BITS: tl.constexpr,
                       SCALE: tl.constexpr, HAS_Z: tl.constexpr, HAS_G: tl.constexpr, OUT: tl.constexpr,
                       BR: tl.constexpr, BK: tl.constexpr, LUT_MODE: tl.constexpr):
    """out_ptr: [N, K] row-major; float32 (OUT=0), float16 (OUT=1) or int16 bits of bfloat16 (OUT=2)."""
    rows = tl.program_id(0).to(tl.int64) * BR + tl.arange(0, BR)
    k0 = tl.program_id(1) * BK
    cols = k0 + tl.arange(0, BK)
    mask = (rows[:, None] < N) & (cols[None, :] < K)
    v = dequant_tile(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, rows, rows < N, k0, K, G, GC, BITS, SCALE, HAS_Z, HAS_G,
                     CODES, LUT_MODE, BK, True)
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
    # any float32 tensor serves (the kernels never read an absent piece): no allocation and fill per call
    dummy = scales if scales.dtype == torch.float32 or lut is None or lut.numel() == 0 else lut
    pick = lambda t: t if t is not None and t.numel() else dummy  # noqa: E731
    return qdata, as_bytes(scales), pick(zeros), pick(global_scale), pick(lut)


def _k_tile_for(gc, block):
    """block with its K tile cut to 256 where GC = 256, which stands for any multiple of 256 (same elements a tile)."""
    return (block[0] * block[1] // 256, 256) if gc == 256 and block[1] > 256 else block


def _table_block(K, gc, block):
    """The group-table kernel's (rows, K) tile, or None where its tiles cannot hold whole groups (or lie in one)."""
    bk = min(TABLE_ELEMS, triton.next_power_of_2(K))
    block = _k_tile_for(gc, block or (TABLE_ELEMS // bk, bk))
    fits = gc % 8 == 0 and (block[1] % gc == 0 or gc % block[1] == 0)
    return block if fits else None


def dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype=torch.float32, block=None, num_warps=None,
               lut_mode=None, table=None) -> torch.Tensor:
    """Stored weight -> [N, K] of dtype (float32 / bfloat16 / float16), bit-exact with the reference.

    qdata: uint8 [N, K/2] packed (lut float32 [16]) or int8/uint8 [N, K] (lut empty). scales: [N, K/G] float32 /
    float8_e4m3fn / float8_e8m0fnu. zeros: uint8 [N, K/G] or empty. global_scale: float32 [1] or empty.
    table: use the group-table kernel (4-bit codes to a 16-bit dtype); None picks it for the codebook formats."""
    N, K, bits, sk, hz, hg = weight_meta(qdata, scales, zeros, global_scale, lut)
    out = scratch((N, K), dtype, qdata.device)
    kind = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}[dtype]
    gc = group_constexpr(group_size)
    codes = code_kind(lut) if bits == 4 else CODES_LUT
    lut4 = bits == 4 and codes == CODES_LUT
    tblock = _table_block(K, gc, block) if bits == 4 and kind != 0 else None
    if table and tblock is None:
        raise ValueError(f"table: needs 4-bit codes, a 16-bit dtype and tiles that hold whole groups of "
                         f"{group_size} (got {bits}-bit codes, {dtype}, block {block})")
    if tblock is not None and (table or (table is None and lut4)):
        launch(_dequantize16_kernel, (triton.cdiv(N, tblock[0]), triton.cdiv(K, tblock[1])),
               *weight_args(qdata, scales, zeros, global_scale, lut), out.view(torch.int32), N, K, int(group_size),
               GC=gc, SCALE=sk, HAS_Z=hz, HAS_G=hg, OUT=kind, BR=tblock[0], BK=tblock[1], EMULATE=interpreting(),
               num_warps=num_warps or TABLE_WARPS, **EXACT)
        return out
    tile4 = bits == 4 and codes in (CODES_UINT, CODES_E2M1)
    bk4 = min(TILE4_ELEMS, triton.next_power_of_2(K))
    block = block or (LUT_BLOCK if lut4 else (TILE4_ELEMS // bk4, bk4) if tile4 else (BLOCK_R, BLOCK_K))
    block = _k_tile_for(gc, block)
    num_warps = num_warps or (LUT_WARPS if lut4 else TILE4_WARPS[sk] if tile4 else WARPS)
    grid = (triton.cdiv(N, block[0]), triton.cdiv(K, block[1]))
    if lut_mode is None:  # codebook formats: the prmt byte-plane lookup on the GPU, the L1 gather when interpreting
        lut_mode = (1 if interpreting() else 2) if lut4 else 0
    launch(_dequantize_kernel, grid, *weight_args(qdata, scales, zeros, global_scale, lut),
           out.view(torch.int16) if kind == 2 else out, N, K, int(group_size), GC=gc, CODES=codes, BITS=bits,
           SCALE=sk, HAS_Z=hz, HAS_G=hg, OUT=kind, BR=block[0], BK=block[1], LUT_MODE=lut_mode,
           num_warps=num_warps, **EXACT)
    return out
