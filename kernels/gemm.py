"""linear: fused y = x @ dequant(W)^T (+ bias). Each program dequantizes [BN, BK] tiles of W in registers (float32,
bit-exact with `dequantize`), converts them to the MMA operand dtype and feeds tl.dot (wgmma on Hopper) with a
float32 accumulator; the output has x's dtype.

Operand precision: bf16/fp16 x -> W tile rounded (RNE) to x's dtype, so each product carries up to one extra
rounding of 2^-8 (bf16) / 2^-11 (fp16) relative (fp16 also needs |W| < 65504); fp32 x -> tl.dot with
input_precision="ieee" (no tf32). nvfp4's global scale is applied to the accumulator in the epilogue: e2m1 * E4M3
has at most 6 significant bits, so the operand tile is exact in bf16 and fp16.

Weight path per K tile (dequant_tile): the packed bytes are unpacked with and / shift on 32-bit lanes; codes become
float32 without a per-element table load (int4: 2^23 + code by bits, the 2^23 folded into the per-group zero point;
E2M1: sign / exponent / mantissa bits placed in a float32 times 2^126; any other LUT, nf4: 16 scalars held in
registers and a bit-split select tree); scales and zeros are loaded once per (row, group) as a [BN] tile (the
group spans the K tile) or a [BN, BK/G] tile broadcast over [BN, BK/G, G], and E4M3 / E8M0 are decoded on that
small tile only. The float32 product is rounded once to x's dtype, exactly as the reference value rounds.

Notes (speed; bf16 x, CUDA-graph timing, L2 flushed by rotating weight copies; H100 80GB HBM3, Triton 3.6,
2026-11-26). Floors: 8192x8192 M=1024 is 137 GFLOP, 0.19 ms at 720 TF/s (cuBLAS reaches 172 us); M=256 is
weight-bandwidth light (34 MB at 3 TB/s = 11 us), so the dequant ALU work and the MMA bound it.
  | N x K, M   | cuBLAS | int4 before -> after | nf4 before -> after | nvfp4 before -> after | mxfp4 before -> after |
  | 4096^2, 64 | 15.4   | 638 -> 36 (0.43x)    | 595 -> 64 (0.24x)   | 337 -> 47 (0.33x)     | 339 -> 40 (0.39x)     |
  | 8192^2, 256| 58.0   | 2610 -> 165 (0.35x)  | 2298 -> 323 (0.18x) | 1374 -> 191 (0.30x)   | 1384 -> 151 (0.39x)   |
  | 8192^2,1024| 172    | 10406 -> 458 (0.38x) | 9420 -> 743 (0.23x) | 5613 -> 434 (0.40x)   | 5620 -> 368 (0.47x)   |
  (us; "after" = best config of bench/gemm_tune.py's sweep, which the M buckets below now hold. The autotuned
  public op in scripts/gpu_check.sh's table, same card and day: int4 / nf4 / nvfp4 / mxfp4 = 36 / 65 / 47 / 39 us
  at 4096^2 M=64, 167 / 321 / 190 / 155 at 8192^2 M=256, 460 / 743 / 438 / 370 at M=1024; all GPU tests passed.)
  Prediction was ~0.35-0.43x cuBLAS (GPU.md's plain unpack-then-tl.dot): int4 / mxfp4 / nvfp4 land there. nf4 stays
  about half of that: its select tree is ~19 integer / select ops per element against ~5 for int4; the global-LUT
  gather (LUT_MODE 1) is 4x worse when the tile goes through shared memory (SWAP=0) but 10% better with SWAP=1.
  SWAP=1 (weights as the register A operand) wins at small M (M is the MMA's N) and at M=1024 with BM=256.
What still limits it: per element the unpack, float conversion, scale multiply and bf16 rounding run on the CUDA
cores in the same warps as the MMA, and the fragment shuffles into the MMA operand layout are left to Triton. The
remaining step is a weight layout pre-shuffled into the wgmma operand order (Marlin / Machete / triton_kernels), so
one 32-bit load gives ready operand registers, plus split-K for small M (4096^2 at M=64 has only 64 tiles).
"""
import os
from collections import namedtuple

import torch
import triton
import triton.testing
import triton.language as tl

from ._launch import EXACT, interpreting
from .dequantize import CODES_LUT, code_kind, dequant_tile, group_constexpr, weight_args, weight_meta
from . import codecs as cd

# Tuning space (GPU, Hopper): (BM, BN, BK, SWAP, num_warps, num_stages, LUT_MODE, SPLIT_K).
#   BM 32/64/128/256 (rows of x), BN 64/128 (output columns = weight rows), BK 64/128/256;
#   SWAP=1 computes the transposed product y^T = W x^T: the dequantized weight tile is the MMA's first operand and
#   stays in registers (wgmma A from registers, no shared-memory round trip), and M is the MMA's N (8..256);
#   SWAP=0 stores the weight tile to shared memory as wgmma's B operand;
#   num_warps 4/8, num_stages 3/4 (software-pipelining depth of the global loads);
#   LUT_MODE (CODES_LUT formats only, nf4 / bnb_fp4): 0 register select tree, 1 gather from the global LUT (L1);
#   SPLIT_K: 1 = one program walks all of K and writes y; s > 1 = grid dimension 2, each program sums a contiguous
#   run of K tiles into a float32 workspace [s, M, N] (no atomics), then _splitk_reduce adds the s partials in fixed
#   order (0, 1, ..., s-1), applies the global scale and bias and casts, so a given config's results are bitwise
#   reproducible; Auto(waves, min_tiles): s from the tile count (split_k_for: the largest power of two keeping the
#   programs <= waves per SM and >= min_tiles K tiles per split).
# Each M bucket (next power of two of M, capped at 4096) keeps the winners measured there (bench/gemm_tune.py, H100,
# five model shapes, 2026-11-26): a pair of entries whose better one is within a few % of the sweep's best on every
# measured shape and format. The first call of a (M bucket, N, K, format, dtype) key times just those (a few
# compiles, milliseconds of runs) and caches the pick for the process; during CUDA-graph capture an untimed key runs
# the bucket's first entry (uncached).
Auto = namedtuple("Auto", "waves min_tiles")
AUTO = Auto(2, 4)
LM = 2  # LUT_MODE of the tuned entries: the prmt lookup won all 413 nf4 (config, split) pairs of the second sweep
_SPACE = {
    32: [(32, 64, 128, 1, 4, 3, LM, Auto(8, 8)), (32, 64, 128, 1, 4, 3, LM, Auto(4, 2))],
    64: [(64, 64, 64, 1, 4, 3, LM, Auto(4, 2)), (64, 64, 64, 1, 4, 3, LM, Auto(8, 2))],
    128: [(128, 64, 128, 1, 4, 3, LM, Auto(2, 2)), (128, 64, 128, 1, 4, 2, LM, Auto(2, 2))],
    256: [(128, 64, 128, 1, 4, 3, LM, Auto(2, 2)), (256, 128, 64, 1, 8, 3, LM, 1)],
    4096: [(256, 128, 64, 1, 8, 3, 0, 1), (128, 128, 64, 0, 8, 3, 0, 1), (256, 128, 64, 1, 8, 3, LM, 1)],
}


def _bucket_space(mb):
    return _SPACE[next((b for b in sorted(_SPACE) if mb <= b), max(_SPACE))]


DEFAULT = (64, 64, 128, 1, 4, 3)  # FOURBIT_TRITON_AUTOTUNE=0 (tests that try many shapes): one config, split AUTO
INTERP_BLOCKS = {"BM": 16, "BN": 16, "BK": 32, "SWAP": 0}  # the interpreter runs one fixed small config
LUT_MODE = 2  # LUT_MODE of the untuned GPU paths (DEFAULT, explicit configs); the interpreter runs 0
REDUCE_BLOCK = 1024
_sms = {}
_best = {}  # tuning key -> config tuple, per process


@triton.jit(do_not_specialize=["M", "T_SPLIT"])
def _linear_kernel(x_ptr, q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, b_ptr, y_ptr, ws_ptr, M, N, K, G, T_SPLIT,
                   GC: tl.constexpr, BITS: tl.constexpr, SCALE: tl.constexpr, HAS_Z: tl.constexpr,
                   HAS_G: tl.constexpr, CODES: tl.constexpr, LUT_MODE: tl.constexpr, HAS_BIAS: tl.constexpr,
                   INTERP: tl.constexpr, EVEN_K: tl.constexpr, SPLIT: tl.constexpr,
                   BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, SWAP: tl.constexpr):
    """x_ptr: [M, K] row-major float32/bf16/fp16; weight pointers as in dequant_tile; b_ptr: [N] of x's dtype;
    y_ptr: [M, N] row-major of x's dtype. One program computes y[BM rows, BN cols] over the T_SPLIT K tiles from
    k_lo = program_id(2) * T_SPLIT * BK (so k_lo's divisibility by BK is static: vector loads). SPLIT: write the
    float32 partial sum to ws_ptr[program_id(2), M, N] (global scale, bias and cast left to _splitk_reduce); else
    the finished y.
    EVEN_K: K % BK == 0 (no masks in the K loop; rows past M / N are clamped and never stored)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)
    rows_m = pid_m * BM + tl.arange(0, BM)
    rows_n = pid_n * BN + tl.arange(0, BN)
    rm = (rows_m % M).to(tl.int64)
    rn = (rows_n % N).to(tl.int64)
    DT: tl.constexpr = x_ptr.dtype.element_ty
    kk = tl.arange(0, BK)
    k_lo = pid_k * T_SPLIT * BK
    k_hi = tl.minimum(K, k_lo + T_SPLIT * BK)
    x_ptrs = x_ptr + rm[:, None] * K + (k_lo + kk)[None, :]
    if SWAP:
        acc = tl.zeros([BN, BM], tl.float32)
    else:
        acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(k_lo, k_hi, BK):
        if EVEN_K:
            x = tl.load(x_ptrs)
        else:
            x = tl.load(x_ptrs, mask=(k0 + kk)[None, :] < K, other=0)
        # nvfp4 (HAS_G): the global scale waits for the epilogue, so the tile stays exact in bf16 / fp16
        w = dequant_tile(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, rn, rn < N, k0, K, G, GC, BITS, SCALE, HAS_Z, False,
                         CODES, LUT_MODE, BK, not EVEN_K)
        if DT == tl.float32:
            if SWAP:
                acc += tl.dot(w, tl.trans(x), input_precision="ieee")
            else:
                acc += tl.dot(x, tl.trans(w), input_precision="ieee")
        elif INTERP:  # the interpreter's tl.dot cannot multiply bf16: same products in float32
            acc += tl.dot(cd.to_f32(x), tl.trans(cd.round_to(w, DT)), input_precision="ieee")
        elif SWAP:
            acc += tl.dot(w.to(DT), tl.trans(x))
        else:
            acc += tl.dot(x, tl.trans(w.to(DT)))
        x_ptrs += BK
    if SWAP:
        acc = tl.trans(acc)
    nmask = rows_n < N
    omask = (rows_m < M)[:, None] & nmask[None, :]
    if SPLIT:
        ws_ptrs = ws_ptr + (pid_k.to(tl.int64) * M + rows_m.to(tl.int64))[:, None] * N + rows_n[None, :]
        tl.store(ws_ptrs, acc, mask=omask)
    else:
        if HAS_G:
            acc = acc * tl.load(g_ptr)
        if HAS_BIAS:
            acc = acc + cd.to_f32(tl.load(b_ptr + rows_n, mask=nmask, other=0))[None, :]
        y_ptrs = y_ptr + rows_m.to(tl.int64)[:, None] * N + rows_n[None, :]
        tl.store(y_ptrs, cd.cast_rne(acc, DT), mask=omask)


@triton.jit(do_not_specialize=["SPLITS"])
def _splitk_reduce(ws_ptr, g_ptr, b_ptr, y_ptr, MN, N, SPLITS, HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr,
                   BLOCK: tl.constexpr):
    """y[i] = cast((sum_{s=0..SPLITS-1} ws[s, i]) * g + bias[i % N]) over the flat [M * N] output, the partials
    added in the fixed order s = 0, 1, ... (deterministic, no atomics)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < MN
    acc = tl.load(ws_ptr + offs, mask=mask, other=0)
    for s in range(1, SPLITS):
        acc += tl.load(ws_ptr + s * MN + offs, mask=mask, other=0)
    if HAS_G:
        acc = acc * tl.load(g_ptr)
    if HAS_BIAS:
        acc = acc + cd.to_f32(tl.load(b_ptr + offs % N, mask=mask, other=0))
    tl.store(y_ptr + offs, cd.cast_rne(acc, y_ptr.dtype.element_ty), mask=mask)


def _sm_count(device):
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _sms:
        _sms[idx] = torch.cuda.get_device_properties(idx).multi_processor_count
    return _sms[idx]


def split_k_for(M, N, K, BM, BN, BK, split, device):
    """(number of splits, K per split) for a config's SPLIT_K (an int or Auto), trimmed so that no split is empty."""
    nt = triton.cdiv(K, BK)
    if isinstance(split, Auto):
        tiles = triton.cdiv(M, BM) * triton.cdiv(N, BN)
        sms = 4 if interpreting() or device.type != "cuda" else _sm_count(device)
        waves, min_tiles = split
        split = 1
        while tiles * split * 2 <= waves * sms and nt // (split * 2) >= min_tiles:
            split *= 2
    split = max(1, min(int(split), nt))
    per = triton.cdiv(nt, split)
    return triton.cdiv(nt, per), per * BK


def _run(x, wargs, b, y, M, N, K, G, common, cfg, has_g, has_bias):
    """One launch (plus the split-K reduction) with cfg = (BM, BN, BK, SWAP, warps, stages, LUT_MODE, SPLIT_K)."""
    BM, BN, BK, SWAP, warps, stages, lm, split = cfg
    splits, k_split = split_k_for(M, N, K, BM, BN, BK, split, x.device)
    ws = torch.empty((splits, M, N), dtype=torch.float32, device=x.device) if splits > 1 else y
    grid = (triton.cdiv(M, BM), triton.cdiv(N, BN), splits)
    opts = {} if interpreting() else dict(num_warps=warps, num_stages=stages)
    _linear_kernel[grid](x, *wargs, b, y, ws, M, N, K, G, k_split // BK, EVEN_K=K % BK == 0, SPLIT=splits > 1,
                         LUT_MODE=lm, BM=BM, BN=BN, BK=BK, SWAP=SWAP, **common, **opts)
    if splits > 1:
        _splitk_reduce[(triton.cdiv(M * N, REDUCE_BLOCK),)](ws, wargs[3], b, y, M * N, N, splits, HAS_G=has_g,
                                                            HAS_BIAS=has_bias, BLOCK=REDUCE_BLOCK, **EXACT)
    return y


def launch(x, qdata, scales, zeros, global_scale, lut, group_size, bias, y, config=None, lut_mode=None,
           split_k=None):
    """Run the kernel into y; config: a (BM, BN, BK, SWAP, warps, stages[, LUT_MODE[, SPLIT_K]]) tuple to bypass
    tuning; lut_mode / split_k override those two fields (split_k also applies under the interpreter, whose blocks
    are fixed)."""
    N, K, bits, sk, hz, hg = weight_meta(qdata, scales, zeros, global_scale, lut)
    M = x.shape[0]
    wargs = weight_args(qdata, scales, zeros, global_scale, lut)
    b = bias if bias is not None else y
    codes = code_kind(lut) if bits == 4 else CODES_LUT
    common = dict(GC=group_constexpr(group_size), BITS=bits, SCALE=sk, HAS_Z=hz, HAS_G=hg, CODES=codes,
                  HAS_BIAS=bias is not None, INTERP=interpreting())
    run = lambda c: _run(x, wargs, b, y, M, N, K, int(group_size), common, c, hg, bias is not None)  # noqa: E731

    def fix(c):
        c = tuple(c) + (LUT_MODE, AUTO)[len(c) - 6:]
        c = c[:6] + (c[6] if lut_mode is None else lut_mode, c[7] if split_k is None else split_k)
        if codes != CODES_LUT:  # LUT_MODE only changes CODES_LUT kernels: one compile for the others
            c = c[:6] + (0, c[7])
        if interpreting():  # fixed small blocks; no inline PTX (LUT_MODE 2) there
            c = (INTERP_BLOCKS["BM"], INTERP_BLOCKS["BN"], INTERP_BLOCKS["BK"], INTERP_BLOCKS["SWAP"]) + c[4:6] + \
                (min(c[6], 1), c[7])
        return c

    if config is None and (interpreting() or os.environ.get("FOURBIT_TRITON_AUTOTUNE", "1") == "0"):
        config = DEFAULT
    if config is not None:
        return run(fix(config))
    mb = min(triton.next_power_of_2(M), 4096)
    cands = list(dict.fromkeys(fix(c) for c in _bucket_space(mb)))
    key = (x.device.index, mb, N, K, common["GC"], bits, sk, hz, hg, codes, x.dtype, bias is not None)
    best = _best.get(key)
    if best is None:
        if len(cands) == 1 or torch.cuda.is_current_stream_capturing():
            if len(cands) > 1:  # no timing inside a capture: the bucket's first entry, not cached
                return run(cands[0])
            best = cands[0]
        else:
            ts = [triton.testing.do_bench(lambda c=c: run(c), warmup=5, rep=20, return_mode="median") for c in cands]
            best = cands[min(range(len(cands)), key=ts.__getitem__)]
        _best[key] = best
    return run(best)


def linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias=None, out=None, split_k=None) -> torch.Tensor:
    """y [M, N] = x [M, K] @ dequant(W)^T (+ bias), float32 accumulation, returned in x's dtype.

    x: contiguous [M, K] float32/bfloat16/float16, any M. Weight pieces as in dequantize (K a multiple of
    group_size). bias: [N] of x's dtype or None. out: optional contiguous [M, N] of x's dtype to write into.
    split_k: force a split-K factor (1 = none) on the default / interpreter config (tests)."""
    N = qdata.shape[0]
    y = out if out is not None else torch.empty(x.shape[0], N, dtype=x.dtype, device=x.device)
    if split_k is not None:
        return launch(x, qdata, scales, zeros, global_scale, lut, group_size, bias, y, config=DEFAULT,
                      split_k=split_k)
    return launch(x, qdata, scales, zeros, global_scale, lut, group_size, bias, y)
