"""@triton.jit element codecs shared by every fourbit Triton kernel: exact float32 rounding, FP4 E2M1, FP8 E4M3,
E8M0, bf16 conversion, power-of-two exponents and 4-bit nibble (un)packing.

Everything here is integer bit manipulation or single IEEE float32 operations (add, multiply, tl.div_rn), so the
results are the same bits on a GPU (checked in the PTX: add.rn/mul.rn/div.rn.f32, no .ftz; the launchers turn FMA
contraction off) and under the Triton interpreter (numpy float32). libdevice is avoided on purpose: the
interpreter cannot run extern calls, and Triton sets libdevice's FTZ reflect flag, which flushes subnormals. The
inline PTX instructions (rint_fast: cvt.rni.f32.f32, round to the nearest even integer; _bound_bits: cvt.rz.f32.f64)
are as exact as their interpreter twins and are chosen by the caller's INTERP constexpr.
"""
import struct

import triton
import triton.language as tl

# fmt ids (constexpr): how `quantize` chooses each group's scale and codes
INT_SYM = 0  # integer grid, scale = amax / qmax
INT_ASYM = 1  # integer grid with a zero point, scale = (max - min) / levels
CODEBOOK = 2  # nf4 / bnb_fp4: absmax scale, nearest entry of a sorted 16-value codebook, ties to the lower entry
NVFP4 = 3  # E2M1 codes, E4M3 block scale, float32 global scale
MX_FLOOR = 4  # mxfp4, OCP spec scale rule
MX_RCEIL = 5  # mxfp4, cuBLAS scale rule

# scale kinds (constexpr): how the stored scales are decoded
SCALE_F32 = 0
SCALE_E4M3 = 1
SCALE_E8M0 = 2


@triton.jit
def rint(x):  # float32 -> float32 round-half-to-even to an integer (2^23 magic-number trick, exact for every float32)
    big = 8388608.0
    a = tl.abs(x)
    r = tl.where(a < big, (a + big) - big, a)
    sign = x.to(tl.uint32, bitcast=True) & 0x80000000
    return (r.to(tl.uint32, bitcast=True) | sign).to(tl.float32, bitcast=True)


@triton.jit
def rint_fast(x, INTERP: tl.constexpr):  # rint on the GPU as one cvt.rni (FRND); the interpreter runs rint above
    if INTERP:
        return rint(x)
    return tl.inline_asm_elementwise("cvt.rni.f32.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def rint_i32(x, INTERP: tl.constexpr):  # float32 -> int32 rint (|x| < 2^31; NaN -> 0) as one cvt.rni.s32 (F2I)
    if INTERP:  # numpy casts NaN to INT_MIN; cvt.rni gives 0
        return tl.where(x == x, rint(x), 0.0).to(tl.int32)
    return tl.inline_asm_elementwise("cvt.rni.s32.f32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=True, pack=1)


@triton.jit
def gather(ptr, idx, INTERP: tl.constexpr):
    """ptr[idx] of a small int64 or uint8 table (uint8 comes back as int32), one ld.global.nc an element on the GPU
    (a tl.load in the interpreter). Why: Triton 3.6 gives a gather tl.load its own 1-element-a-thread layout, and
    quantize's codebook tiles paid shared-memory layout conversions around it (nf4: the [GPB, BG] float32 t and the
    [GPB, BG/2, 2] codes; bnb_fp4: the pointer tile and the codes; Triton 3.6 TTGIR); inline asm keeps the layout."""
    if INTERP:
        v = tl.load(ptr + idx)
    elif ptr.dtype.element_ty == tl.int64:  # one assignment per branch: Triton 3.6 type-checks every return
        v = tl.inline_asm_elementwise("ld.global.nc.b64 $0, [$1];", "=l,l", [(ptr + idx).to(tl.int64)],
                                      dtype=tl.int64, is_pure=True, pack=1)
    else:
        v = tl.inline_asm_elementwise("ld.global.nc.u8 $0, [$1];", "=r,l", [(ptr + idx).to(tl.int64)],
                                      dtype=tl.int32, is_pure=True, pack=1)
    return v


@triton.jit
def to_f32(x):  # float32/bf16/fp16 -> float32, exact (by bits for bf16: the interpreter's bf16 cast drops subnormals)
    if x.dtype == tl.bfloat16:
        return (x.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    return x.to(tl.float32)


@triton.jit
def is_finite(x):  # float32 -> bool: neither NaN nor +-Inf (exponent field not all ones)
    return (x.to(tl.uint32, bitcast=True) & 0x7F800000) != 0x7F800000


@triton.jit
def e2m1_encode(v):  # finite float32 -> int32 E2M1 code 0..15: RNE ties-to-even on the code, saturating at 6, sign kept
    # Integer arithmetic on the bits instead of 7 compares: ~12 instructions against ~20 (sm_90 SASS, 2026-11-26).
    a = tl.minimum(tl.abs(v), 6.0)
    # below 2 the E2M1 grid is 0.5 apart: code = RNE(2a), read off the bits of 2a + 2^23 (exact, no conversion)
    sub = (a * 2.0 + 8388608.0).to(tl.int32, bitcast=True) - 0x4B000000
    # from 2 up: keep 1 mantissa bit with RNE (+ 2^21 - 1 + the kept bit); the exponent / mantissa bits are then the
    # code plus 252 (2.0 = 2^1 is code 4 and has exponent field 128: 128 * 2 - 252 = 4), saturated by the clamp at 6
    bits = a.to(tl.int32, bitcast=True)
    nrm = (bits + (0x1FFFFF - (252 << 22)) + ((bits >> 22) & 1)) >> 22
    sign = (v.to(tl.int32, bitcast=True) >> 28) & 8
    return tl.where(a < 2.0, sub, nrm) | sign


# e2m1_encode_quotient's bounds. Code magnitude k + 1 or more needs RN(|x| / d) > b for the E2M1 decision bounds
# b = 0.25, 1.25, 2.5, 5 (a tie rounds down, to the even code) and RN(|x| / d) >= b for b = 0.75, 1.75, 3.5 (a tie
# rounds up). Every b is a float32 with an even last mantissa bit, so in real numbers that is |x| / d > t with
# t = b + ulp(b) / 2, resp. |x| / d >= t with t = b - ulp(pred(b)) / 2 (a float32 quotient exactly at t rounds to
# b). Each t has 25 significant bits, the last one set; here as float64 bit patterns.
E2M1_T = [tl.constexpr(struct.unpack("<q", struct.pack("<d", t))[0])
          for t in (0.25 + 2**-26, 0.75 - 2**-25, 1.25 + 2**-24, 1.75 - 2**-24, 2.5 + 2**-23, 3.5 - 2**-23, 5 + 2**-22)]
_T0, _T1, _T2, _T3, _T4, _T5, _T6 = E2M1_T


@triton.jit
def _bound_bits(d64, T_BITS: tl.constexpr, INTERP: tl.constexpr):
    """int32 float32 bits of RZ(d * t), t the float64 with bits T_BITS: |x| / d exceeds t exactly when |x|'s bits
    exceed these. d * t is exact in float64 (24 + 25 significant bits) and, for d > 0, never a float32 (its odd
    significand has >= 25 bits), so |x| > d t <=> |x| > RZ(d t), and > and >= at t coincide for float32 |x|."""
    p = d64 * tl.full([1], T_BITS, tl.int64).to(tl.float64, bitcast=True)
    if INTERP:  # the interpreter's own rtz conversion mishandles subnormals: RN, then one step down where it rounded up
        r = p.to(tl.float32)
        return r.to(tl.int32, bitcast=True) - (r.to(tl.float64) > p).to(tl.int32)
    # Triton's rtz downcast does not lower for float64 -> float32 on NVIDIA: one cvt.rz (F2F) as inline PTX
    return tl.inline_asm_elementwise("cvt.rz.f32.f64 $0, $1;", "=r,l", [p.to(tl.int64, bitcast=True)], dtype=tl.int32,
                                     is_pure=True, pack=1)


@triton.jit
def e2m1_bounds(d, INTERP: tl.constexpr):
    """The 7 int32 bounds of e2m1_encode_quotient for divisors d (any shape): |x| / d passes bound k exactly where
    |x|'s float32 bits exceed the k-th."""
    d64 = d.to(tl.float64)
    return (_bound_bits(d64, _T0, INTERP), _bound_bits(d64, _T1, INTERP), _bound_bits(d64, _T2, INTERP),
            _bound_bits(d64, _T3, INTERP), _bound_bits(d64, _T4, INTERP), _bound_bits(d64, _T5, INTERP),
            _bound_bits(d64, _T6, INTERP))


@triton.jit
def e2m1_encode_quotient(x, d, INTERP: tl.constexpr):
    """float32 x, float32 divisor d >= 0 broadcastable to x (a group's, with a size-1 last dim) -> int32 E2M1 code of
    RN(x / d), bit-exact with e2m1_encode(tl.div_rn(x, d)) for finite x and d > 0, with no division: 7 bounds a
    group (one float64 multiply and one conversion each), then a 3-step binary search an element on |x|'s bits.
    d = 0 (an nvfp4 s * g that underflowed) codes +-0 as +-0 and any other x as +-6 (formats/nvfp4.py).
    Why: one path for every d (no 1 / d division, no range guard, no -0 fix) in about the instructions of the
    residual-step quotient and e2m1_encode, and bounds that e2m1_encode_pairs can search two 16-bit x a word at a
    time (kernels/quantize.py's docstring, round 5, has the measurements)."""
    z0, z1, z2, z3, z4, z5, z6 = e2m1_bounds(d, INTERP)
    # The search runs on masks m = (z - a) >> 31 (-1 where |x| > z, else 0) and picks the next bound with LOP3s: as
    # predicates, 32 elements a thread of them ran out of predicate registers and ptxas kept them as bits in a
    # register, 2 LOP3 a flag (sm_90 SASS, Triton 3.9).
    b = x.to(tl.int32, bitcast=True)
    a = b & 0x7FFFFFFF
    m4 = (z3 - a) >> 31  # magnitude >= 4
    m2 = ((z1 ^ ((z1 ^ z5) & m4)) - a) >> 31  # >= 2, resp. >= 6: the bound z1, resp. z5
    z = (z0 ^ (m4 & (z0 ^ z4))) ^ (m2 & ((z0 ^ z2) ^ (m4 & (z0 ^ z2 ^ z4 ^ z6))))  # z0 / z2 / z4 / z6
    m1 = (z - a) >> 31  # the odd step
    return ((b >> 28) & 8) - (m1 + 2 * m2 + 4 * m4)  # sign | magnitude (disjoint bits)


@triton.jit
def _lanes(z, F16: tl.constexpr, INTERP: tl.constexpr):
    """int32 float32-bit bound z -> uint32 holding in both 16-bit lanes (each with bit 15 set, for _lanes_le) the
    bound for a 16-bit |x|: |x| > z <=> |x|'s 16 bits > it. bf16: z >> 16 (|x|'s low 16 float32 bits are 0); fp16:
    the bits of RZ_fp16(z), the largest fp16 <= z (65504 above it)."""
    if F16:
        zf = z.to(tl.float32, bitcast=True)
        if INTERP:  # RN, then one step down where it rounded up (inf -> 65504 too)
            r = zf.to(tl.float16)
            h = (r.to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF) - (r.to(tl.float32) > zf).to(tl.int32)
        else:
            h = zf.to(tl.float16, fp_downcast_rounding="rtz").to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
    else:
        h = z >> 16
    return (h * 0x10001).to(tl.uint32) | 0x80008000


@triton.jit
def _lanes_le(zl, a, INTERP: tl.constexpr):
    """uint32 per 16-bit lane: 0xFFFF where a <= z, else 0 (zl: _lanes(z); a: two 16-bit magnitudes, lanes < 0x8000).
    Each lane of zl - a is (z | 0x8000) - a in [1, 0xFFFF], so no borrow crosses the lanes and its bit 15 is the
    answer; one prmt replicates each lane's bit 15 over the lane (the interpreter shifts and multiplies)."""
    d = zl - a
    if INTERP:
        return ((d >> 15) & 0x10001) * 0xFFFF
    return tl.inline_asm_elementwise("prmt.b32 $0, $1, 0, 0xBB99;", "=r,r", [d], dtype=tl.uint32, is_pure=True,
                                     pack=1)


@triton.jit
def e2m1_encode_pairs(w, bounds, F16: tl.constexpr, INTERP: tl.constexpr):
    """uint32 words of two bfloat16 (F16: float16) x (element 2i in the low half), a group's e2m1_bounds
    broadcastable to w -> uint32 packed byte (code of the low x in the low nibble), bit-exact with
    e2m1_encode_quotient on each x. Both x of a word go through the same binary search in 16-bit lanes (SIMD within a
    register, _lanes' bounds): about half the instructions an element."""
    z0, z1, z2, z3, z4, z5, z6 = bounds
    l0, l1, l2 = _lanes(z0, F16, INTERP), _lanes(z1, F16, INTERP), _lanes(z2, F16, INTERP)
    l3, l4 = _lanes(z3, F16, INTERP), _lanes(z4, F16, INTERP)
    l5, l6 = _lanes(z5, F16, INTERP), _lanes(z6, F16, INTERP)
    a = w & 0x7FFF7FFF
    n4 = _lanes_le(l3, a, INTERP)  # not (magnitude >= 4)
    n2 = _lanes_le(l5 ^ ((l5 ^ l1) & n4), a, INTERP)  # not (>= 6), resp. not (>= 2)
    n1 = _lanes_le(l6 ^ (n4 & (l6 ^ l2)) ^ (n2 & ((l6 ^ l4) ^ (n4 & (l6 ^ l4 ^ l2 ^ l0)))), a, INTERP)  # the odd step
    code = ((n4 & 0x40004) | (n2 & 0x20002) | (n1 & 0x10001)) ^ 0x70007 | ((w >> 12) & 0x80008)
    return (code | (code >> 12)) & 0xFF


@triton.jit
def e2m1_decode(c):  # uint8 E2M1 code 0..15 (high bits ignored) -> float32 value
    m = (c & 7).to(tl.int32)
    e = m >> 1  # exponent field: 0 subnormal (0 or 0.5), else 2^(e-1) * (1 + mantissa / 2)
    mag = tl.where(e == 0, (m & 1).to(tl.float32) * 0.5,
                   (((e + 126) << 23) | ((m & 1) << 22)).to(tl.float32, bitcast=True))
    return tl.where((c & 8) != 0, -mag, mag)


@triton.jit
def e4m3_encode(x):  # float32 -> uint8 float8_e4m3fn byte: clamp to +-448, RNE, subnormals, NaN -> 0x7F (torch's rule)
    sign = ((x.to(tl.uint32, bitcast=True) >> 31) << 7).to(tl.uint8)
    a = tl.minimum(tl.abs(x), 448.0)
    bits = a.to(tl.uint32, bitcast=True)
    r = bits + 0x7FFFF + ((bits >> 20) & 1)  # round the 23-bit mantissa to 3 bits, ties to even
    normal = ((r >> 20) - (120 << 3)).to(tl.uint8)  # rebias the exponent 127 -> 7
    sub = rint(a * 512.0).to(tl.uint8)  # below 2^-6: code = RNE(a / 2^-9); 8 is 2^-6 itself
    byte = tl.where(a >= 0.015625, normal, sub) | sign
    return tl.where(x != x, 0x7F, byte).to(tl.uint8)


@triton.jit
def e4m3_decode(b):  # uint8 float8_e4m3fn byte -> float32 (0x7F / 0xFF -> NaN)
    b32 = b.to(tl.uint32)
    mag = b32 & 0x7F
    normal = ((mag << 20) + (120 << 23)).to(tl.float32, bitcast=True)
    sub = (mag & 7).to(tl.float32) * 0.001953125  # exponent field 0: mantissa * 2^-9
    v = tl.where((mag >> 3) == 0, sub, normal)
    v = tl.where(mag == 0x7F, float("nan"), v)
    return tl.where((b32 & 0x80) != 0, -v, v)


@triton.jit
def e8m0_decode(b):  # uint8 E8M0 byte -> float32 2^(b - 127); 0 -> 2^-127 (subnormal), 0xFF -> NaN
    b32 = b.to(tl.uint32)
    bits = tl.where(b32 == 0, 0x400000, b32 << 23)
    return tl.where(b32 == 255, float("nan"), bits.to(tl.float32, bitcast=True))


@triton.jit
def exp2i(n):  # int32 n in [-127, 127] -> float32 2^n exactly (2^-127 is subnormal)
    bits = tl.where(n >= -126, (n + 127) << 23, 0x400000)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def log2_floor(x):  # positive finite float32 -> (int32 floor(log2 x), x is a power of two), exact for subnormals (frexp)
    bits = x.to(tl.uint32, bitcast=True) & 0x7FFFFFFF
    sub = bits < 0x800000
    xs = tl.where(sub, x * 18446744073709551616.0, x)  # 2^64 lifts a subnormal into the normal range, exactly
    sbits = xs.to(tl.uint32, bitcast=True) & 0x7FFFFFFF
    e = (sbits >> 23).to(tl.int32) - 127 - tl.where(sub, 64, 0)
    return e, (sbits & 0x7FFFFF) == 0


@triton.jit
def mx_exponent(bmax, RULE: tl.constexpr):  # block max (float32 >= 0) -> int32 E8M0 exponent in [-127, 127]
    if RULE == 4:  # MX_FLOOR (module globals are not visible inside @triton.jit)
        fl, _ = log2_floor(tl.where(bmax > 0, bmax, 1.0))
        e = tl.where(bmax > 0, fl - 2, -127)
    else:
        t = tl.div_rn(bmax, 6.0)
        fl, pow2 = log2_floor(tl.where(t > 0, t, 1.0))
        e = tl.where(t > 0, tl.where(pow2, fl, fl + 1), -127)
    return tl.minimum(tl.maximum(e, -127), 127)


@triton.jit
def nvfp4_global_scale(amax_ptr):  # float32 [1] finite amax -> nvfp4's g = amax / 2688 (6 * 448), 1.0 if that is 0
    g = tl.div_rn(tl.load(amax_ptr), 2688.0)
    return tl.where(g == 0, 1.0, g)


@triton.jit
def nvfp4_block_scale(bmax, g):  # block max, global scale (float32) -> (E4M3 byte, its float32 value); 0 becomes 1.0
    byte = e4m3_encode(tl.div_rn(bmax, 6.0 * g))
    byte = tl.where((byte & 0x7F) == 0, 0x38, byte).to(tl.uint8)  # 0x38 is 1.0
    return byte, e4m3_decode(byte)


@triton.jit
def bf16_bits(x):  # float32 -> uint16 bits of bfloat16, RNE (the interpreter's own .to(bfloat16) truncates)
    bits = x.to(tl.uint32, bitcast=True)
    r = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return tl.where(x != x, (bits >> 16) | 0x40, r).to(tl.uint16)


@triton.jit
def round_to(w, DT: tl.constexpr):  # float32 tile -> float32 tile of the values rounded (RNE) to dtype DT
    if DT == tl.bfloat16:
        return (bf16_bits(w).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    return w.to(DT).to(tl.float32)


@triton.jit
def cast_rne(v, DT: tl.constexpr):  # float32 -> DT with RNE on the GPU and in the interpreter (whose bf16 cast truncates)
    if DT == tl.bfloat16:
        return bf16_bits(v).to(tl.bfloat16, bitcast=True)
    return v.to(DT)


@triton.jit
def unpack_tile(p):  # uint8 [R, C] packed bytes -> uint8 [R, 2C] codes, element 2i from the LOW nibble
    lo = p & 0xF
    hi = p >> 4
    return tl.reshape(tl.join(lo, hi), (p.shape[0], 2 * p.shape[1]))


@triton.jit
def pack_tile(c):  # [R, 2C] codes 0..15 -> [R, C] bytes (same integer dtype), element 2i into the LOW nibble
    lo, hi = tl.split(tl.reshape(c, (c.shape[0], c.shape[1] // 2, 2)))
    return lo | (hi << 4)
