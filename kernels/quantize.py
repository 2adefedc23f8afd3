"""quantize: every fourbit format in one parameterized kernel (fmt id and grid constants are constexpr), bit-exact
with the FP32 references in fourbit/formats (same roundings: IEEE-correct quotients, RNE, same NaN policy).
On CUDA devices the op takes csrc/cuda/quant.cu instead for bf16 / fp16 weights in int4, nf4 and mxfp4 with a
power-of-two group size, and for nvfp4 (both passes; fourbit/ops/cuda.py; it follows this kernel's operation order,
and took 24-31% less time on an H200, nvfp4 7%, 2026-11-28); this kernel serves every other case.

nvfp4 takes two passes: the global amax (max |w| over finite elements, atomic max: `_amax16_kernel` on bf16 / fp16
words, `_amax_kernel` otherwise) then the block pass, so it reads the weight twice and cannot pass ~55% of copy by
the benchmark's byte count (which counts one read). Its codes come from codecs.e2m1_encode_quotient (no division:
|x| against the E2M1 bounds times s * g), and bfloat16 / float16 weights take _nvfp4_16bit_kernel (two elements a
32-bit word).

Speed (H100 80GB HBM3, 8192^2 bf16 random weights, CUDA-graph us, previous kernel -> this one in one process,
2026-11-26): ncu had shown the kernel issue-bound (0.83 instructions per scheduler per cycle, ~43 SASS instructions
per element for int4, 69 and 255 registers for nf4). Changes: one integer max of |x|'s bits gives both the group's
amax and its NaN / Inf flag (was a float max, a flag max and a select per element); quotients by multiply and two
FMA residual steps instead of the IEEE division (_div); cvt.rni for rint; a 4-step binary search over the nf4 /
bnb_fp4 midpoints; E2M1 encoding by bit arithmetic (codecs.e2m1_encode).
  int4 (asym, g128) 113.7 -> 100.8 us (51 -> 57% of copy); int4_sym 100.4 -> 85.1 (57 -> 68%); int8 (per channel)
  157.2 -> 94.5 (43 -> 72%); nf4 245.4 -> 119.2 (24 -> 49%); bnb_fp4 261.5 -> 153.0 (22 -> 38%); nvfp4 216.6 ->
  168.1 (27 -> 35%); mxfp4 121.5 -> 81.4 (47 -> 71%). Outputs bit-identical between the two kernels on that weight.
Round 2 (same card and method, the kernel above -> this one, 2026-11-27): the integer formats' scale s = d / levels
and zero point by the reciprocal and residual steps (_steps; d in [2^-86, 2^86], else the IEEE division), int asym's
min / max as two integer max reductions of x's bits (signed and unsigned views), codes by cvt.rni.s32 with NaN
groups coded through its NaN -> 0 (no per-element select). Fast-path SASS (sm_90, Triton 3.9 AOT on the CPU
machine): int4 asym 35.8 -> 26.8 instructions an element, int4_sym 27.8 -> 24.2.
  int4 99.9 -> 84.2 us (58 -> 69% of copy); int4_sym 83.1 -> 79.6 (69 -> 72%); int8 94.3 -> 77.8 (72 -> 88%);
  int8_asym 106.5 -> 77.2 (64 -> 89%); the others unchanged (nf4 49%, bnb_fp4 38%, nvfp4 35%, mxfp4 72%).
  Bit-identical on random weights and on weights with NaN, +-Inf, -0, subnormal groups and a 3e38 outlier.
  Then TILE / WARPS 2048 / 2 -> 1024 / 1 (below): int4 80.1-81.4 us (71-72%), int4_sym 74%.
Round 3 (same card and method, 2026-11-27): nf4's code from a 32-bucket table (_bucket_table: one L1 load, a compare
and a select an element) instead of the binary search; SASS 40 -> 29 instructions an element. nf4 116.4 -> 88.4 /
90.0 us (50 -> 65-66% of copy), bit-identical; 1024 / 1 is still its best tile (11 (tile, warps) pairs). The
bucket index's lower clamp (30 instructions) came after that run and is not timed. Round 4 (same card, 2026-11-27,
CUDA graph, HEAD vs working tree in one process): the table entry by cd.gather (inline ld.global.nc) instead of
tl.load, whose gather layout cost two shared-memory layout conversions per tile in Triton 3.6 (PTX shared-memory
ops 39 -> 2; ncu before: L1/TEX 95% busy, DRAM 48%): nf4 86.9 / 87.1 -> 79.6 / 80.9 us, bit-identical; bnb_fp4's
sorted-index -> code lookup the same way: 151.0 / 151.3 -> 126.7 / 126.9 us, bit-identical. Then one guard
(_outside) and one integer-scale helper (_int_scale) replaced the int formats' twin fast / slow branches:
bit-identical on random and special-value weights; int4 / int4_sym / int8_asym / nvfp4 within 0.5%, per-channel int8
72.3 -> 74.3 us (+2.8%, ~88% of copy either way). bnb_fp4
keeps the search: its midpoints lie 0.0026 apart, which would take 1024 buckets (8 KB, many L1 lines a warp).
Round 5 (same card and method, 2026-11-28, bench/probes/quant_nvfp4.py; outputs bit-identical to the previous kernel
on a random weight with NaN, Inf and subnormal groups): nvfp4 spent ~34 SASS instructions an element (sm_90, Triton
3.9 AOT here; issue-bound: ~126 us of block pass against ~60 for the amax pass's read). (1) The code of RN(x / d)
from 7 bounds a group (d * t in float64, exact, then cvt.rz to float32) and a 3-step binary search on |x|'s bits:
no per-element division, no range guard, no -0 fix; but the same instruction count (the old encoder was cheap),
float32 weights 229.5 -> 221.3 us. (2) For bf16 / fp16 weights, the search on two 16-bit lanes a word (codecs.
e2m1_encode_pairs) and each group in one thread (two [GPB, 4] word loads; one [GPB, 8] load split each group,
and its scale and bounds work, over two threads): 22.4 instructions an element at 2048 elements a program; 161.0 ->
129.9 us (37.6 -> 46.6% of this probe's copy); float16 the same way (the bounds as RZ_fp16): 160.7 -> 128.1.
(3) Programs from the tensor's end, where the amax pass's last reads may still sit in L2: -1.5 us. The block pass
now runs at ~2.5 TB/s (172 MB in ~69 us) and the amax pass at ~2.2 (~60 us; 2-16 blocks a program with one atomic
each changed nothing), so the two reads bound it.
Round 6 (H200, 2026-11-28, bench/probes/quant_nvfp4.py --amax, one-call CUDA graphs, 8192^2; outputs bit-identical to
the float32 weight's op): the amax pass of bf16 / fp16 weights on 32-bit words, the max taken on the 16-bit
magnitudes as integers (no float conversion), 8192 words in two loads a program (_amax16_kernel; it was 4096
elements in one load: 48.4 -> 45.2 us alone), and its last 16 MB read evict_last, so that the block pass, which
starts at the tensor's end, finds them in L2 (loads evict_first there). Whole op: bf16 117.6 -> 110.7 us, fp16 115.9
-> 109.7 (37.5 -> 39.8% of the H200's copy). Also: a bf16 / fp16 view starting 2 bytes past a 4-byte boundary takes
the generic kernels (the word loads fault there: "misaligned address" on the same card).
"""
from functools import lru_cache

import torch
import triton
import triton.language as tl

from . import codecs as cd
from ._launch import EXACT, interpreting
from fourbit.formats import FORMATS
from fourbit.formats._codebook import midpoints

TINY_BITS = tl.constexpr(0x006CE3EE)  # float32(1e-38), bitsandbytes' absmax clamp; a literal 1e-38 would become a float64 constant
# elements per quantize program (groups per program = TILE // padded group) and warps: one warp while the groups fit
# in the tile, WARPS_BIG for larger groups (per-channel int8: a program is one group). H100 8192^2 bf16, CUDA graph,
# this kernel, 2048 / 2 -> 1024 / 1, two alternating runs each (2026-11-27): int4 84.7 / 84.8 -> 80.1 / 81.4 us,
# int4_sym 80.0 / 79.6 -> 77.9 / 77.3, nf4 119.3 / 119.5 -> 117.2 / 117.4, nvfp4 165.6 / 166.1 -> 164.2 / 164.5,
# mxfp4 80.6 / 80.8 -> 79.9 / 80.4, bnb_fp4 153 either way; per-channel int8 / int8_asym at 1 warp: 77.4 -> 114.8,
# 78.0 -> 112.7, hence 2 warps there. Outputs bit-identical across the configs.
TILE, WARPS, WARPS_BIG = 1024, 1, 2
# _nvfp4_16bit_kernel's elements a program (1 warp). H100 80GB HBM3, 8192^2, CUDA graph, whole op, two runs
# (2026-11-28, bench/probes/quant_nvfp4.py): 1024 131.0 / 134.7 us, 2048 129.9 / 129.7, 4096 138.5 (2 warps 129.1 /
# 130.2), 8192 at 4 warps 129.7 / 130.4
TILE_NVFP4_16 = 2048
# _amax16_kernel's (words a load, loads a program, warps), and the bytes at the weight's end it reads evict_last for
# the block pass (which starts there). H200, 8192^2 bf16, one-call CUDA graphs (2026-11-28, bench/probes/quant_nvfp4.py
# --amax): the amax pass alone 48.4 us (_amax_kernel: float32 max of 4096 elements, one load a program) -> 45.2;
# 1024 / 1 / 4 59.6, 1024 / 2 / 4 48.7, every config of 8-16 KB a program in two or more loads 45.2-46.0. Whole op:
# bf16 117.6 -> 113.3 us (the new amax pass) -> 110.4 (8 or 16 MB kept), 111.0-112.2 keeping 24-48 MB (the L2 holds
# 60 MB, but keeping more bought nothing); fp16 115.9 -> 112.6 -> 109.6; a second run, same day: the default 110.7
# (bf16) / 109.7 (fp16). Bit-identical throughout. (The amax times include the zeroing of the amax.)
AMAX16, KEEP_L2 = (4096, 2, 16), 16 << 20


@triton.jit
def _amax_kernel(w_ptr, numel, amax_ptr, BLOCK: tl.constexpr):
    """w_ptr: [numel] float32/bf16/fp16 flat; amax_ptr: float32 [1] (zeroed), receives max |w| over finite w."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = cd.to_f32(tl.load(w_ptr + offs, mask=offs < numel, other=0))
    x = tl.where(cd.is_finite(x), tl.abs(x), 0.0)
    tl.atomic_max(amax_ptr, tl.max(x, axis=0))


@triton.jit
def _amax16_kernel(w_ptr, nwords, amax_ptr, keep_from, BLOCK: tl.constexpr, ITERS: tl.constexpr, F16: tl.constexpr,
                   KEEP: tl.constexpr):
    """w_ptr: [2 nwords] bfloat16 (F16: float16) flat, read as words; amax_ptr: float32 [1] (zeroed), receives max |w|
    over finite w. One program: ITERS independent BLOCK-word loads, max taken on the 16-bit magnitudes as integers
    (finite ones only: below 0x7F80 / 0x7C00), one atomic. KEEP: words at and past keep_from are loaded evict_last
    (the block pass, run from the tensor's end, reads them first) and the others evict_first."""
    base = tl.program_id(0).to(tl.int64) * (BLOCK * ITERS)
    w32 = w_ptr.to(tl.pointer_type(tl.uint32))
    inf: tl.constexpr = 0x7C00 if F16 else 0x7F80
    m = tl.zeros([BLOCK], tl.uint32)
    for i in tl.static_range(ITERS):
        offs = base + i * BLOCK + tl.arange(0, BLOCK)
        if KEEP:
            if base >= keep_from:
                v = tl.load(w32 + offs, mask=offs < nwords, other=0, eviction_policy="evict_last")
            else:
                v = tl.load(w32 + offs, mask=offs < nwords, other=0, eviction_policy="evict_first")
        else:
            v = tl.load(w32 + offs, mask=offs < nwords, other=0)
        lo, hi = v & 0x7FFF, (v >> 16) & 0x7FFF
        m = tl.maximum(m, tl.maximum(tl.where(lo < inf, lo, 0), tl.where(hi < inf, hi, 0)))
    r = tl.max(m, axis=0)
    if F16:
        a = r.to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32)
    else:
        a = (r << 16).to(tl.float32, bitcast=True)
    tl.atomic_max(amax_ptr, a)


@triton.jit
def _search15(t, mid_ptr):  # float32 t -> int32 count of the 15 sorted midpoints strictly below t (ties go low)
    # (codebooks without a bucket table: bnb_fp4)
    # binary search, 4 compares + 11 selects of scalars, against 15 compares + 15 adds for a linear count: on H100 the
    # linear count made nf4 the slowest quantize (69 instructions per element, 255 registers; ncu, 2026-11-26)
    b3 = t > tl.load(mid_ptr + 7)
    b2 = t > tl.where(b3, tl.load(mid_ptr + 11), tl.load(mid_ptr + 3))
    c = tl.where(b3, tl.where(b2, tl.load(mid_ptr + 13), tl.load(mid_ptr + 9)),
                 tl.where(b2, tl.load(mid_ptr + 5), tl.load(mid_ptr + 1)))
    b1 = t > c
    hi = tl.where(b2, tl.where(b1, tl.load(mid_ptr + 14), tl.load(mid_ptr + 12)),
                  tl.where(b1, tl.load(mid_ptr + 10), tl.load(mid_ptr + 8)))
    lo = tl.where(b2, tl.where(b1, tl.load(mid_ptr + 6), tl.load(mid_ptr + 4)),
                  tl.where(b1, tl.load(mid_ptr + 2), tl.load(mid_ptr + 0)))
    b0 = t > tl.where(b3, hi, lo)
    # the index summed in float32 (exact): summed as integers, LLVM narrowed the booleans to byte vectors and spent
    # PRMT / P2R instructions packing them (sm_90 SASS: 48 -> 40 instructions per element)
    idx = tl.where(b3, 8.0, 0.0) + tl.where(b2, 4.0, 0.0) + tl.where(b1, 2.0, 0.0) + tl.where(b0, 1.0, 0.0)
    return idx.to(tl.int32)


@triton.jit
def _outside(v, bad, LO: tl.constexpr, HI: tl.constexpr, ZERO_OK: tl.constexpr):
    """scalar: some finite group's v lies outside [LO, HI] (0 counts as inside when ZERO_OK): the guard that sends a
    program from the _steps fast path to tl.div_rn."""
    ok = (v >= LO) & (v <= HI)
    if ZERO_OK:
        ok = ok | (v == 0)
    return tl.max((~ok & ~bad).to(tl.int32)) > 0


@triton.jit
def _int_scale(d, bad, QMAX: tl.constexpr):
    """[GPB] range d -> (s, y, slow): s = d / QMAX as tl.div_rn rounds it (0 -> 1; a NaN / Inf group -> NaN, whose
    quotients rint_i32 turns into code 0 with no per-element select), y = RN(1 / s), and slow: some finite group's d
    lies outside [2^-86, 2^86] (then s and the callers' quotients by _div take tl.div_rn). In range, s = _steps(d,
    QMAX, 1 / QMAX): one scalar reciprocal a program (exhaustively checked by
    test_scale_by_steps_every_float_of_three_binades)."""
    lv = tl.full(d.shape, QMAX, tl.float32)
    slow = _outside(d, bad, 1.2924697071141057e-26, 7.737125245533627e+25, True)  # [2^-86, 2^86]
    if slow:
        s = tl.div_rn(d, lv)
    else:
        s = _steps(d, lv, _recip(tl.full([1], QMAX, tl.float32)))
    s = tl.where(bad, float("nan"), tl.where(s == 0, 1.0, s))
    return s, _recip(s), slow


@triton.jit
def _steps(x, s, y):
    """RN(x / s) for y = RN(1 / s), s in [2^-90, 2^90] and |x / s| >= 2^-8 (smaller quotients: some value below
    2^-8, which every caller rounds or encodes to 0 alike).

    Why: the IEEE division (MUFU.RCP, 5 FFMA, FCHK and a branch) bounded the kernel. q0 = RN(x * y) is within
    1.5 ulp of x / s; one residual step q1 = RN(q0 + RN(x - q0 s) y) makes it faithful (within 1 ulp); then the
    residual x - q1 s is exact and q2 = RN(q1 + (x - q1 s) y) is RN(x / s) (Markstein's theorem for y = RN(1 / s);
    Muller et al., Handbook of Floating-Point Arithmetic), since nothing under- or overflows in that range.
    Checked against numpy's division on 40M pairs near and away from half-integers (0 mismatches, 2026-11-26)."""
    q = x * y
    q = tl.fma(tl.fma(-q, s, x), y, q)
    return tl.fma(tl.fma(-q, s, x), y, q)


@triton.jit
def _div(x, s, y, slow):
    """x / s as tl.div_rn rounds it wherever |x / s| >= 2^-8, for s > 0 (or NaN) and y = RN(1 / s) broadcastable to x
    (_steps; tl.div_rn itself when `slow`), and elsewhere a value below 2^-8 (which rint rounds to 0 either way)."""
    if slow:  # one assignment per branch: returns inside the branch made int4 quantize 12% slower (H100, 2026-11-28)
        q = tl.div_rn(x, s)
    else:
        q = _steps(x, s, y)
    return q


@triton.jit
def _recip(s):  # RN(1 / s), elementwise
    return tl.div_rn(tl.full(s.shape, 1.0, tl.float32), s)


@triton.jit(do_not_specialize=["n_groups"])
def _quantize_kernel(w_ptr, q_ptr, s_ptr, z_ptr, g_ptr, amax_ptr, mid_ptr, order_ptr, tbl_ptr, K, n_groups, G,
                     FMT: tl.constexpr, BITS: tl.constexpr, QMIN: tl.constexpr, QMAX: tl.constexpr,
                     OFFSET: tl.constexpr, ZERO_CODE: tl.constexpr, GPB: tl.constexpr, BG: tl.constexpr,
                     SORTED: tl.constexpr, NB: tl.constexpr, INTERP: tl.constexpr):
    """One program: GPB consecutive groups of one row.

    w_ptr: [N, K] row-major float32/bf16/fp16. q_ptr: uint8 [N, K/2] packed (BITS=4) or int8/uint8 [N, K].
    s_ptr: [N, K/G] float32 (int, codebook) or uint8 bytes (nvfp4 E4M3, mxfp4 E8M0). z_ptr: uint8 [N, K/G] (INT_ASYM).
    g_ptr: float32 [1] global scale out (NVFP4); amax_ptr: float32 [1] finite amax in (NVFP4).
    mid_ptr: float32 [15] sorted codebook midpoints; order_ptr: uint8 [16] code of each sorted entry (CODEBOOK, NB 0);
    tbl_ptr: int64 [NB] bucket table of _bucket_table (CODEBOOK, NB > 0).
    G: group size (any even value; BG = next power of two >= G).
    A group with a NaN or Inf gets code 0 (of the value 0) and a NaN scale, so its other outputs may be computed
    from non-finite values and are discarded.
    """
    row = tl.program_id(0).to(tl.int64)
    gi = tl.program_id(1) * GPB + tl.arange(0, GPB)
    j = tl.arange(0, BG)
    gmask = gi < n_groups
    mask = gmask[:, None] & (j[None, :] < G)
    x = cd.to_f32(tl.load(w_ptr + row * K + gi[:, None] * G + j[None, :], mask=mask, other=0))
    # |x| as integer bits: one max gives both the group's amax and whether it holds a NaN / Inf (bits >= 0x7F800000)
    amax_bits = tl.max(x.to(tl.int32, bitcast=True) & 0x7FFFFFFF, axis=1)
    bad = amax_bits >= 0x7F800000
    amax = amax_bits.to(tl.float32, bitcast=True)
    if FMT == 0:  # INT_SYM: s = amax / qmax, q = RNE(x / s) clamped
        s, y, slow = _int_scale(amax, bad, QMAX)
        qi = cd.rint_i32(_div(x, s[:, None], y[:, None], slow), INTERP)
        codes = tl.minimum(tl.maximum(qi, QMIN), QMAX) + OFFSET
        scale = s
    elif FMT == 1:  # INT_ASYM: range widened to hold 0, s = (mx - mn) / levels, z = RNE(-mn / s)
        # min and max as two integer max reductions over x's bits, in place of the |x| bits max + a float min + a
        # float max (H100: 2 fewer instructions an element than order keys): as int32, positive floats order as
        # floats and lie above every negative, so the signed max is the largest positive x, if any; as uint32,
        # negative floats lie above every positive and order by magnitude, so the unsigned max is the most negative
        # x, if any. The clamps at 0 cover the other cases (-0 counts as negative: mn = -0, the same value). NaN /
        # Inf: bits at or above +Inf's (signed) or -Inf's (unsigned).
        b = x.to(tl.int32, bitcast=True)
        smax, umax = tl.max(b, axis=1), tl.max(b.to(tl.uint32, bitcast=True), axis=1)
        bad = (smax >= 0x7F800000) | (umax >= 0xFF800000)
        mx = tl.where(smax > 0, smax.to(tl.float32, bitcast=True), 0.0)
        mn = tl.where(umax >= 0x80000000, umax.to(tl.float32, bitcast=True), 0.0)
        d = mx - mn
        s, y, slow = _int_scale(d, bad, QMAX)  # a NaN / Inf group: s = NaN, code 0, and z = 0 below
        z = cd.rint_i32(_div(-mn, s, y, slow), INTERP)
        qi = cd.rint_i32(_div(x, s[:, None], y[:, None], slow), INTERP)
        z = tl.where(bad, 0, tl.minimum(tl.maximum(z, 0), QMAX))
        codes = tl.minimum(tl.maximum(qi + z[:, None], 0), QMAX)
        tl.store(z_ptr + row * n_groups + gi, z.to(tl.uint8), mask=gmask)
        scale = s
    elif FMT == 2:  # CODEBOOK: t = clamp(x * (1 / max(a, 1e-38)), -1, 1), index = #midpoints strictly below t
        tiny = tl.full([GPB], TINY_BITS, tl.uint32).to(tl.float32, bitcast=True)
        inv = tl.div_rn(tl.full([GPB], 1.0, tl.float32), tl.maximum(amax, tiny))
        t = tl.minimum(tl.maximum(x * inv[:, None], -1.0), 1.0)
        if NB > 0:  # bucket b of t's 2 / NB-wide slice of [-1, 1]: one table load gives the code on either side
            # of the slice's only midpoint (_bucket_table). b is clamped at both ends: a NaN t (a discarded group;
            # Triton leaves the clamps' NaN result unspecified) must still index inside the table
            b = tl.minimum(tl.maximum((t * (NB // 2) + (NB // 2)).to(tl.int32), 0), NB - 1)
            e = cd.gather(tbl_ptr, b, INTERP)
            lo = e.to(tl.int32)
            idx = tl.where(t > (e >> 32).to(tl.int32).to(tl.float32, bitcast=True), (lo >> 4) & 15, lo & 15)
            codes = tl.where(bad[:, None], ZERO_CODE, idx)
        elif SORTED:  # codes already in value order: the search's index is the code
            codes = tl.where(bad[:, None], ZERO_CODE, _search15(t, mid_ptr))
        else:
            codes = tl.where(bad[:, None], ZERO_CODE, cd.gather(order_ptr, _search15(t, mid_ptr), INTERP).to(tl.int32))
        scale = tl.where(bad, float("nan"), amax)
    elif FMT == 3:  # NVFP4: g = amax / 2688, s = E4M3(bmax / (6 g)), code = E2M1(x / (s * g)) through bounds on |x|
        g = cd.nvfp4_global_scale(amax_ptr)
        byte, s = cd.nvfp4_block_scale(amax, g)
        codes = tl.where(bad[:, None], 0, cd.e2m1_encode_quotient(x, (s * g)[:, None], INTERP))
        scale = tl.where(bad, 0x7F, byte).to(tl.uint8)
        if (tl.program_id(0) == 0) & (tl.program_id(1) == 0):
            tl.store(g_ptr, g)
    else:  # MX_FLOOR / MX_RCEIL: E8M0 exponent e, code = E2M1(x * 2^-e) (an exact scaling)
        e = cd.mx_exponent(amax, FMT)
        codes = tl.where(bad[:, None], 0, cd.e2m1_encode(x * cd.exp2i(-e)[:, None]))
        scale = tl.where(bad, 255, e + 127).to(tl.uint8)
    tl.store(s_ptr + row * n_groups + gi, scale, mask=gmask)
    if BITS == 4:
        jj = tl.arange(0, BG // 2)
        packed = cd.pack_tile(codes).to(tl.uint8)
        tl.store(q_ptr + row * (K // 2) + gi[:, None] * (G // 2) + jj[None, :], packed,
                 mask=gmask[:, None] & (jj[None, :] < G // 2))
    else:
        tl.store(q_ptr + row * K + gi[:, None] * G + j[None, :], codes.to(q_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["n_groups"])
def _nvfp4_16bit_kernel(w_ptr, q_ptr, s_ptr, g_ptr, amax_ptr, K, n_groups, GPB: tl.constexpr, F16: tl.constexpr,
                        REV: tl.constexpr, EVICT: tl.constexpr, INTERP: tl.constexpr):
    """nvfp4 of bfloat16 (F16: float16) weights, bit-exact with _quantize_kernel's FMT 3: one program, GPB
    16-element groups of one row, each as two [GPB, 4] tiles of words holding two elements (so that one thread holds
    a whole group: loaded as one [GPB, 8] tile, Triton split each group over two threads, which then both computed
    its scale and bounds).
    w_ptr: [N, K] bfloat16 / float16; q_ptr: uint8 [N, K/2]; s_ptr: uint8 [N, K/16] E4M3 bytes; g_ptr, amax_ptr as
    there. Why: _quantize_kernel spent ~34 SASS instructions an element on nvfp4 (issue-bound, 2.1x the amax pass's
    time for the same read)."""
    # programs in row-major order from the end: the amax pass read the tensor front to back, so its last ~40 MB
    # may still be in L2
    n_chunks = tl.cdiv(n_groups, GPB)
    t = tl.program_id(0).to(tl.int64)
    if REV:
        t = tl.num_programs(0).to(tl.int64) - 1 - t
    row = t // n_chunks
    gi = (t - row * n_chunks).to(tl.int32) * GPB + tl.arange(0, GPB)
    gmask = gi < n_groups
    j = tl.arange(0, 4)
    offs = row * (K // 2) + gi[:, None] * 8 + j[None, :]  # words (and output bytes) of the group's first half
    m = gmask[:, None] & (j[None, :] < 4)
    w32 = w_ptr.to(tl.pointer_type(tl.uint32))
    if EVICT:  # the weight's last read in this op, and the words kept in L2 for it lose their evict_last priority
        lo = tl.load(w32 + offs, mask=m, other=0, eviction_policy="evict_first")
        hi = tl.load(w32 + offs + 4, mask=m, other=0, eviction_policy="evict_first")
    else:
        lo, hi = tl.load(w32 + offs, mask=m, other=0), tl.load(w32 + offs + 4, mask=m, other=0)
    amax16 = tl.maximum(tl.max(tl.maximum(lo & 0x7FFF, (lo >> 16) & 0x7FFF), axis=1),
                        tl.max(tl.maximum(hi & 0x7FFF, (hi >> 16) & 0x7FFF), axis=1))
    bad = amax16 >= (0x7C00 if F16 else 0x7F80)  # a NaN / Inf
    if F16:
        bmax = amax16.to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32)
    else:
        bmax = (amax16 << 16).to(tl.float32, bitcast=True)
    g = cd.nvfp4_global_scale(amax_ptr)
    byte, s = cd.nvfp4_block_scale(bmax, g)
    bounds = cd.e2m1_bounds((s * g)[:, None], INTERP)
    for h in tl.static_range(2):
        c = cd.e2m1_encode_pairs(lo if h == 0 else hi, bounds, F16, INTERP)
        tl.store(q_ptr + offs + 4 * h, tl.where(bad[:, None], 0, c).to(tl.uint8), mask=m)
    tl.store(s_ptr + row * n_groups + gi, tl.where(bad, 0x7F, byte).to(tl.uint8), mask=gmask)
    if tl.program_id(0) == 0:
        tl.store(g_ptr, g)


NB_MAX = 128  # most buckets of a codebook table (bnb_fp4, whose midpoints lie 0.0026 apart, searches instead)
_EDGE = 2.0**-22  # > the error of RN(t + 1) (2^-24): how far a computed bucket can be from t's own


def _bucket_table(mid: torch.Tensor, order: torch.Tensor):
    """(int64 [NB] table, NB) for a codebook whose sorted midpoints `mid` (float32 [15]) and code of each sorted
    entry `order` allow it, else (None, 0). NB is the fewest buckets (a power of two) whose slices of [-1, 1],
    widened by _EDGE on both sides, each hold at most one midpoint. Entry b: the float32 bits of that midpoint in the
    high word (2.0 if none: never exceeded), then the code for t <= it (bits 0-3) and for t > it (bits 4-7).
    Why: the kernel's 4-step binary search spent 11 selects and 4 compares an element (nf4 quantize, 49% of copy);
    a bucket needs one table load (L1), one compare and one select."""
    m = mid.double().tolist()
    gap = min(b - a for a, b in zip(m, m[1:]))
    NB = next((n for n in (32, 64, NB_MAX) if 2.0 / n + 2 * _EDGE < gap), 0)
    if not NB:
        return None, 0
    table = []
    for b in range(NB):
        lo, hi = b * 2.0 / NB - 1 - _EDGE, (b + 1) * 2.0 / NB - 1 + _EDGE
        inside = [i for i, v in enumerate(m) if lo <= v < hi]
        i = inside[0] if inside else sum(v < lo for v in m)
        thr = m[i] if inside else 2.0
        bits = int(torch.tensor(thr, dtype=torch.float32).view(torch.int32))
        c_lo, c_hi = int(order[i]), int(order[i + 1] if inside else order[i])
        table.append(bits * 2**32 + (c_hi << 4) + c_lo)
    return torch.tensor(table, dtype=torch.int64), NB


@lru_cache(maxsize=None)
def _codebook_tables(fmt: str, device: str):
    """(float32 [15] midpoints of the sorted codebook, uint8 [16] code of each sorted entry, code of 0.0, whether
    the codes are already in value order, int64 bucket table or None, its NB or 0)."""
    cb = FORMATS[fmt].codebook
    order = torch.sort(cb, stable=True).indices
    zero = int(torch.nonzero(cb == 0)[0])
    mid = midpoints(cb[order])
    table, nb = _bucket_table(mid, order)
    return (mid.to(device), order.to(torch.uint8).to(device), zero, bool(torch.equal(order, torch.arange(16))),
            None if table is None else table.to(device), nb)


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


_DUMMIES = {}  # (dtype, device) -> a 1-element tensor the kernel never reads or writes (an unused pointer argument)


def _dummy(dtype, device):
    """The unused-pointer argument, allocated once per device: a torch.zeros per call was a fill kernel each, two
    per quantize call."""
    key = (dtype, str(device))
    if key not in _DUMMIES:
        _DUMMIES[key] = torch.empty(1, dtype=dtype, device=device)
    return _DUMMIES[key]


def finite_amax(w: torch.Tensor, amax_cfg: tuple | None = None, keep: int = KEEP_L2) -> torch.Tensor:
    """float32 [1]: max |w| over the finite elements of a contiguous w (nvfp4's first pass). bf16 / fp16 weights
    starting on a 4-byte boundary take _amax16_kernel (amax_cfg, keep: quantize's knobs), others _amax_kernel."""
    amax = torch.zeros(1, dtype=torch.float32, device=w.device)
    if w.dtype != torch.float32 and w.data_ptr() % 4 == 0:
        blk, it, nw = amax_cfg or AMAX16
        nwords = w.numel() // 2  # K % 16 == 0
        _amax16_kernel[(triton.cdiv(nwords, blk * it),)](w, nwords, amax, max(0, nwords - keep // 4), BLOCK=blk,
                                                        ITERS=it, F16=w.dtype == torch.float16, KEEP=keep > 0,
                                                        num_warps=nw)
    else:
        _amax_kernel[(triton.cdiv(w.numel(), 4096),)](w, w.numel(), amax, BLOCK=4096)
    return amax


def quantize(w: torch.Tensor, fmt: str, variant: str, group_size: int, tile: int | None = None,
             num_warps: int | None = None, rev: bool = True, amax_cfg: tuple | None = None, keep: int | None = None):
    """w: [N, K] contiguous float32/bfloat16/float16 -> (qdata, scales, zeros, global_scale), as fourbit.ops:
    qdata uint8 [N, K/2] (4-bit, element 2i in the low nibble) or int8 (int8 sym) / uint8 (int8 asym) [N, K];
    scales [N, K/G] float32 / float8_e4m3fn (nvfp4) / float8_e8m0fnu (mxfp4); zeros uint8 [N, K/G] (asym) or
    empty; global_scale float32 [1] (nvfp4) or empty.
    Tuning knobs (bench/probes/quant_nvfp4.py; the defaults are module constants): tile and num_warps of the block
    pass, rev (_nvfp4_16bit_kernel's programs from the end), amax_cfg ((words a load, loads, warps) of
    _amax16_kernel) and keep (bytes it leaves in L2 for the block pass, 0: no eviction hints)."""
    from fourbit.ops.library import quantize_out_meta
    N, K = w.shape
    G = int(group_size)
    qdata, scales, zeros, gscale = quantize_out_meta(w, fmt, variant, G)
    fid, bits, qmin, qmax, offset = _params(fmt, variant)
    dev = w.device
    dummy_f = _dummy(torch.float32, dev)
    mid, order, zero_code, srt, tbl, nb = dummy_f, _dummy(torch.uint8, dev), 0, False, None, 0
    if fid == cd.CODEBOOK:
        mid, order, zero_code, srt, tbl, nb = _codebook_tables(fmt, str(dev))
    amax = dummy_f
    # nvfp4 of bf16 / fp16 reads w as 32-bit words: a view starting at an odd element takes the generic kernels
    words = fid == cd.NVFP4 and w.dtype != torch.float32 and w.data_ptr() % 4 == 0
    keep = KEEP_L2 if keep is None else keep
    if fid == cd.NVFP4:
        amax = finite_amax(w, amax_cfg, keep)
    BG = max(2, triton.next_power_of_2(G))
    n_groups = K // G
    if words:  # two elements a 32-bit word (_nvfp4_16bit_kernel)
        GPB = max(1, min((tile or TILE_NVFP4_16) // BG, triton.next_power_of_2(n_groups)))
        _nvfp4_16bit_kernel[(N * triton.cdiv(n_groups, GPB),)](w, qdata, scales.view(torch.uint8), gscale, amax, K,
                                                                 n_groups, GPB=GPB, F16=w.dtype == torch.float16,
                                                                 REV=rev, EVICT=keep > 0, INTERP=interpreting(),
                                                                 num_warps=num_warps or WARPS, **EXACT)
        return qdata, scales, zeros, gscale
    tile = tile or TILE
    GPB = max(1, min(tile // BG, triton.next_power_of_2(n_groups)))
    if num_warps is None:
        num_warps = WARPS if BG <= tile else WARPS_BIG
    s_out = scales.view(torch.uint8) if scales.element_size() == 1 else scales
    grid = (N, triton.cdiv(n_groups, GPB))
    _quantize_kernel[grid](w, qdata, s_out, zeros if zeros.numel() else dummy_f, gscale if gscale.numel() else dummy_f,
                           amax, mid, order, tbl if tbl is not None else dummy_f, K, n_groups, G, FMT=fid, BITS=bits,
                           QMIN=qmin, QMAX=qmax, OFFSET=offset, ZERO_CODE=zero_code, GPB=GPB, BG=BG, SORTED=srt,
                           NB=nb, INTERP=interpreting(),
                           num_warps=num_warps, **EXACT)
    return qdata, scales, zeros, gscale
