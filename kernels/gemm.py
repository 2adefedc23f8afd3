"""linear: fused y = x @ dequant(W)^T (+ bias). Each program dequantizes [BN, BK] tiles of W in registers (float32,
bit-exact with `dequantize`), converts them to the MMA operand dtype and feeds tl.dot (wgmma on Hopper) with a
float32 accumulator; the output has x's dtype.

Operand precision: bf16/fp16 x -> W tile rounded (RNE) to x's dtype, so each product carries up to one extra
rounding of 2^-8 (bf16) / 2^-11 (fp16) relative (fp16 also needs |W| < 65504); fp32 x -> tl.dot with
input_precision="ieee" (no tf32). nvfp4's global scale is applied to the accumulator in the epilogue: e2m1 * E4M3
has at most 6 significant bits, so the operand tile is exact in bf16 and fp16.

Weight path per K tile (dequant_tile): the packed bytes are unpacked with and / shift on 32-bit lanes; codes become
float32 without a per-element table load (int4: 2^23 + code by bits, the 2^23 folded into the per-group zero point;
E2M1: sign / exponent / mantissa bits placed in a float32 times 2^126; any other LUT, nf4 / bnb_fp4: LUT_MODE 2 on
the GPU, byte permutes (PTX prmt) straight on the packed bytes: 16 LUT words split into 4 byte planes, 3 prmt per
plane per 4 codes and 8 to put the bytes back together, about 6 instructions per element against ~19 for the
select tree (LUT_MODE 0, what the interpreter runs) and a bit copy of lut[code], so the values are the same);
scales and zeros are loaded once per (row, group) as a [BN] tile (the group spans the K tile) or a [BN, BK/G] tile
broadcast over [BN, BK/G, G], and E4M3 / E8M0 are decoded on that small tile only. The float32 product is rounded
once to x's dtype, exactly as the reference value rounds.

Split-K (small M): with few output tiles (8192^2 at BN 64 is 128 programs, one 4-warp program per SM) one program
walking all of K leaves the SMs idle on latency. SPLIT_K = s puts s programs on each output tile, each over a
contiguous run of K tiles, writing float32 partials to a workspace [s, M, N] allocated per call with torch.empty on
x's device and current stream (CUDA-graph capture takes it from the graph's pool; torch.compile sees the opaque
custom op); _splitk_reduce then adds the partials in the fixed order 0..s-1, multiplies the nvfp4 global scale,
adds the bias and casts. No atomics: a config's output is bitwise the same run to run. The split count comes from
the config's Auto(waves, min_tiles) rule (split_k_for), so one entry serves every N, K.

Notes (speed; bf16 x; H100 80GB HBM3, Triton 3.6, torch 2.11, 2026-11-26). Floors: 8192^2 weights are 34 MB of
4-bit codes + scales, 11 us at 3 TB/s; M = 64 is 8.6 GFLOP, 12 us at 720 TF/s, so a fused kernel that overlapped
the two would sit near 12-15 us; bf16 cuBLAS needs 52 us (128 MB of bf16 weights).
  Earlier work (CUDA-graph timing): 4096^2 M=64 int4 / nf4 / nvfp4 / mxfp4 638 / 595 / 337 / 339 -> 36 / 64 / 47 / 40 us
  (cuBLAS 15.4); 8192^2 M=1024 10406 / 9420 / 5613 / 5620 -> 458 / 743 / 434 / 368 (cuBLAS 172).
  Split-K + prmt nf4 + re-tuned buckets. Method: a one-off script (removed; its rows are in bench/results/), the op
  (torch.ops.fourbit.linear_out, autotuned) before the large-M dequantize path existed, median of
  triton.testing.do_bench over a CUDA graph of R calls on R weight copies (> 2x L2), per call; "before" = this file
  at commit 32e492e run side by side in the same process; cuBLAS bf16 x @ w.T timed the
  same way in the same run. us, before -> after (after's speed-up over cuBLAS; > 1 is faster than cuBLAS):
  | N x K,   M | cuBLAS | int4                 | nf4                  | nvfp4                | mxfp4                |
  | 8192^2   32|  52.4  | 68 -> 39.9 (1.32x)   | 129 -> 54.3 (0.96x)  | 87 -> 50.5 (1.04x)   | 76 -> 45.2 (1.16x)   |
  | 8192^2   64|  52.7  | 68 -> 49.6 (1.06x)   | 129 -> 66.8 (0.79x)  | 88 -> 61.1 (0.86x)   | 77 -> 52.4 (1.01x)   |
  | 8192^2  128|  54.2  | 93 -> 73.4 (0.74x)   | 189 -> 76.0 (0.71x)  | 106 -> 75.9 (0.71x)  | 103 -> 72.1 (0.75x)  |
  | 8192^2  256|  58.9  | 165 -> 119.5 (0.49x) | 320 -> 130.8 (0.45x) | 189 -> 122.8 (0.48x) | 154 -> 115.6 (0.51x) |
  | 4096^2   32|  15.6  | 36 -> 15.3 (1.02x)   | 64 -> 19.4 (0.81x)   | 47 -> 18.8 (0.83x)   | 39 -> 16.2 (0.97x)   |
  | 4096^2   64|  16.0  | 36 -> 17.8 (0.90x)   | 64 -> 22.4 (0.71x)   | 47 -> 21.6 (0.74x)   | 39 -> 19.4 (0.82x)   |
  | 4096^2  128|  16.1  | 36 -> 24.0 (0.67x)   | 65 -> 25.0 (0.64x)   | 47 -> 25.8 (0.62x)   | 39 -> 24.3 (0.66x)   |
  | 4096^2  256|  19.3  | 67 -> 39.2 (0.49x)   | 137 -> 40.0 (0.48x)  | 84 -> 41.3 (0.47x)   | 55 -> 38.2 (0.50x)   |
  | 28672x8192 32| 178.1| 165 -> 120.4 (1.48x) | 376 -> 165.9 (1.07x) | 210 -> 151.6 (1.18x) | 166 -> 128.3 (1.39x) |
  | 28672x8192 64| 178.3| 165 -> 155.6 (1.15x) | 368 -> 209.0 (0.85x) | 211 -> 182.5 (0.98x) | 166 -> 170.8 (1.04x) |
  | 28672x8192 128|174.8| 338 -> 214.5 (0.81x) | 618 -> 244.7 (0.71x) | 401 -> 238.0 (0.73x) | 307 -> 207.4 (0.84x) |
  | 28672x8192 256|206.2| 525 -> 419.6 (0.49x) | 1258 -> 480.7 (0.43x)| 461 -> 443.0 (0.47x) | 434 -> 361.9 (0.57x) |
  | 4096x14336 32|  48.7| 133 -> 36.2 (1.34x)  | 225 -> 49.7 (0.98x)  | 156 -> 45.5 (1.07x)  | 132 -> 38.2 (1.27x)  |
  | 4096x14336 64|  50.0| 133 -> 45.1 (1.11x)  | 225 -> 58.8 (0.85x)  | 156 -> 54.5 (0.92x)  | 133 -> 47.6 (1.05x)  |
  | 4096x14336 128| 54.5| 133 -> 65.9 (0.83x)  | 224 -> 67.9 (0.80x)  | 156 -> 68.0 (0.80x)  | 133 -> 63.6 (0.86x)  |
  | 4096x14336 256| 61.1| 230 -> 115.7 (0.53x) | 478 -> 122.0 (0.50x) | 297 -> 122.2 (0.50x) | 184 -> 115.1 (0.53x) |
  | 14336x4096 32|  47.9| 49 -> 37.8 (1.26x)   | 100 -> 48.7 (0.98x)  | 58 -> 45.8 (1.05x)   | 57 -> 39.4 (1.21x)   |
  | 14336x4096 64|  47.3| 49 -> 46.6 (1.01x)   | 100 -> 60.6 (0.78x)  | 58 -> 55.5 (0.85x)   | 57 -> 50.6 (0.93x)   |
  | 14336x4096 128| 48.8| 89 -> 61.1 (0.80x)   | 188 -> 66.1 (0.74x)  | 107 -> 66.3 (0.74x)  | 85 -> 59.2 (0.82x)   |
  | 14336x4096 256| 53.1| 139 -> 114.5 (0.46x) | 320 -> 131.5 (0.40x) | 123 -> 120.7 (0.44x) | 118 -> 96.5 (0.55x)  |
  (bench/results/gemm_small_m_h100_2026-11-26.json holds the rows and each key's tuned pick.)
  Steps, each measured with bench/gemm_tune.py (same card and day, CUDA-graph timing over weight copies):
  1. Split-K alone (sweep 1, every config x split 1/2/4/8/16): 8192^2 M=64 int4 68.3 -> 52.3 us (split 4),
     4096^2 M=64 33.3 -> 17.4 (split 2-4), 4096x14336 M=32 94 -> 36 (split 8); predicted ~2x where the grid was
     under one wave, got 1.3-2.6x there; shapes with >= 2 waves of tiles already (28672x8192, 14336x4096 at M >= 128)
     gain ~0-10% and keep split 1. M=256 gains little (split 1-2): the reduce pass costs s * M * N * 4 bytes.
  2. nf4 prmt decode (LUT_MODE 2; sweep 2): won all 413 (config, split) pairs against the select tree, 8192^2 M=64
     107 -> 68 us, M=32 103 -> 56; predicted ~3x fewer decode instructions (static SASS count 2112 -> 1584 per
     kernel, Triton 3.9 AOT compile for sm_90a on the CPU machine). The L1 gather (LUT_MODE 1) lost everywhere
     at SWAP=1 with split-K.
  3. M=64 bucket (64, 64, 64, 1, 4, 3) instead of (64, 64, 128, 1, 4, 4): 2 -> 4 programs per SM (78 KB ->
     29 KB shared memory, 157 -> 103 registers a thread, Triton 3.9's report for sm_90a on the CPU machine):
     geomean 7.8% faster over the 5 shapes x 4 formats of sweep 2 (-2% .. +24%); stages 3 vs 4 alone at BK 64: +3.6%.
What still limits it (measured): time grows linearly with M at fixed weight bytes (8192^2 int4: 40 / 50 / 73 /
120 us at M = 32 / 64 / 128 / 256, ~11 us per 32 rows, against an 11 us weight-streaming floor): in the SASS every
HGMMA of the register-A (SWAP=1) wgmma is followed by WARPGROUP.DEPBAR (Triton 3.6 waits for each k16 step when A
comes from registers), so the dequant (int4 per element: LOP3/LEA nibble extract, FADD zero, FMUL scale, half an
F2FP; ~5 instructions) and the MMA serialize inside a program and overlap only across the 2-4 programs an SM holds.
SWAP=0 (weights through shared memory, async wgmma) was slower where swept (M=256, sweep 1). Reaching 1.5x
cuBLAS at M = 64-128 and parity at M = 256 needs the dequant to overlap the MMA: a weight layout pre-shuffled into
the wgmma operand order (Marlin / Machete) and producer / consumer warp groups, i.e. a CUDA/CUTLASS mixed-input
kernel or Triton warp specialization, not more block-size tuning. The M > 256 bucket was not re-swept here.
"""
import os
from collections import namedtuple

import torch
import triton
import triton.language as tl

from ._launch import EXACT, bucket_entries, interpreting, launch as _jit, scratch
from .dequantize import CODES_LUT, code_kind, dequant_tile, group_constexpr, tile_rows, weight_args, weight_meta
from . import codecs as cd

# Tuning space (GPU, Hopper): (BM, BN, BK, SWAP, num_warps, num_stages, LUT_MODE, SPLIT_K).
#   BM 32/64/128/256 (rows of x), BN 64/128 (output columns = weight rows), BK 64/128/256;
#   SWAP=1 computes the transposed product y^T = W x^T: the dequantized weight tile is the MMA's first operand and
#   stays in registers (wgmma A from registers, no shared-memory round trip), and M is the MMA's N (8..256);
#   SWAP=0 stores the weight tile to shared memory as wgmma's B operand;
#   num_warps 4/8, num_stages 2/3/4 (software-pipelining depth of the global loads);
#   LUT_MODE (CODES_LUT formats only, nf4 / bnb_fp4): 0 register select tree, 1 gather from the global LUT (L1),
#   2 prmt byte-plane lookup on the packed bytes (GPU only; the interpreter runs 0 instead);
#   SPLIT_K: 1 = one program walks all of K and writes y; s > 1 = grid dimension 2, each program sums a contiguous
#   run of K tiles into a float32 workspace [s, M, N] (no atomics), then _splitk_reduce adds the s partials in fixed
#   order (0, 1, ..., s-1), applies the global scale and bias and casts, so a given config's results are bitwise
#   reproducible; Auto(waves, min_tiles): s from the tile count (split_k_for: the largest power of two keeping the
#   programs <= waves per SM and >= min_tiles K tiles per split).
# Each M bucket (next power of two of M, capped at 4096) keeps the winners measured there (bench/gemm_tune.py, H100,
# five model shapes, 2026-11-26). The config a call runs is pick(M, N, G): a pure function of the shape, no timing at
# run time, so every process and every run takes the same config and gives the same bits, and the first call costs
# one compile per kernel variant (seconds), never a tuning sweep. bench/gemm_pick.py times every entry of every bucket
# on the model shapes and prints pick()'s loss against the best; its numbers are in pick()'s comment.
Auto = namedtuple("Auto", "waves min_tiles")
AUTO = Auto(2, 4)
LM = 2  # LUT_MODE of the tuned entries: the prmt lookup won all 413 nf4 (config, split) pairs of the second sweep
_SPACE = {
    32: [(32, 64, 128, 1, 4, 3, LM, Auto(8, 8)), (32, 64, 128, 1, 4, 3, LM, Auto(4, 2))],
    64: [(64, 64, 64, 1, 4, 3, LM, Auto(4, 2)), (64, 64, 64, 1, 4, 3, LM, Auto(8, 2))],
    128: [(128, 64, 128, 1, 4, 3, LM, Auto(2, 2)), (128, 64, 128, 1, 4, 2, LM, Auto(2, 2))],
    256: [(128, 64, 128, 1, 4, 3, LM, Auto(2, 2)), (256, 128, 64, 1, 8, 3, LM, 1)],
    4096: [(256, 128, 64, 1, 8, 3, LM, 1), (128, 128, 64, 0, 8, 3, 0, 1)],
}


def candidates(M):
    """The tuning-space entries of M's bucket (what bench/gemm_pick.py times)."""
    return bucket_entries(_SPACE, M)


def pick(M, N, G):
    """The config launch() runs for x [M, K] @ W [N, K]^T with groups of G: a pure function of the shape.
    bench/gemm_pick.py (H100 80GB HBM3, 2026-11-26, CUDA-graph us; 5 shapes x int4 / nf4 / nvfp4 / mxfp4), geomean
    loss of this rule against each case's best entry: M = 32 +1.5% (worst +6.9%), M = 64 +2.3% (+13.3%) before the
    N rule below, M = 128 0%, M = 256 +1.1% (+12.4%), M = 384 +5.7% (+70.5%: nf4 needs LUT_MODE 2) before the G
    rule. The two exceptions, each a win on every measured shape of its kind:
      M 33-64, N >= 12288 (>= 192 column tiles): Auto(8, 2): 28672x8192 nf4 234.8 -> 207.2 us, nvfp4 199.6 -> 177.9;
        14336x4096 nf4 65.3 -> 60.4, nvfp4 57.9 -> 53.9 (N <= 8192 lost 3-23% with it);
      M 257-511, G = 16 (nvfp4): the SWAP=0 tile: 4096^2 109.3 -> 90.9 us, 8192^2 233.4 -> 220.9, 28672x8192
        916.3 -> 669.6, 4096x14336 417.2 -> 350.3, 14336x4096 221.2 -> 206.0."""
    cands = candidates(M)
    mb = min(triton.next_power_of_2(M), 4096)
    if mb == 64 and N >= 12288 or mb > 256 and G == 16:
        return cands[1]
    return cands[0]


DEFAULT = (64, 64, 128, 1, 4, 3)  # FOURBIT_TRITON_AUTOTUNE=0 (tests that try many shapes): one config, split AUTO
INTERP_BLOCKS = {"BM": 16, "BN": 16, "BK": 32, "SWAP": 0}  # the interpreter runs one fixed small config
LUT_MODE = 2  # LUT_MODE of the untuned GPU paths (DEFAULT, explicit configs); the interpreter runs 0
REDUCE_BLOCK = 1024
_sms = {}


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
    pid_k = tl.program_id(2)
    rows_m, rows_n, rm, rn = tile_rows(M, N, BM, BN)
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
    ws = scratch((splits, M, N), torch.float32, x.device) if splits > 1 else y
    grid = (triton.cdiv(M, BM), triton.cdiv(N, BN), splits)
    opts = {} if interpreting() else dict(num_warps=warps, num_stages=stages)
    _jit(_linear_kernel, grid, x, *wargs, b, y, ws, M, N, K, G, k_split // BK, EVEN_K=K % BK == 0,
         SPLIT=splits > 1, LUT_MODE=lm, BM=BM, BN=BN, BK=BK, SWAP=SWAP, **common, **opts)
    if splits > 1:
        _jit(_splitk_reduce, (triton.cdiv(M * N, REDUCE_BLOCK),), ws, wargs[3], b, y, M * N, N, splits,
             HAS_G=has_g, HAS_BIAS=has_bias, BLOCK=REDUCE_BLOCK, **EXACT)
    return y


def launch(x, qdata, scales, zeros, global_scale, lut, group_size, bias, y, config=None, lut_mode=None,
           split_k=None):
    """Run the kernel into y; config: a (BM, BN, BK, SWAP, warps, stages[, LUT_MODE[, SPLIT_K]]) tuple instead of
    pick()'s; lut_mode / split_k override those two fields (split_k also applies under the interpreter, whose blocks
    are fixed)."""
    N, K, bits, sk, hz, hg = weight_meta(qdata, scales, zeros, global_scale, lut)
    M = x.shape[0]
    wargs = weight_args(qdata, scales, zeros, global_scale, lut)
    b = bias if bias is not None else y
    codes = code_kind(lut) if bits == 4 else CODES_LUT
    common = dict(GC=group_constexpr(group_size), BITS=bits, SCALE=sk, HAS_Z=hz, HAS_G=hg, CODES=codes,
                  HAS_BIAS=bias is not None, INTERP=interpreting())
    def fix(c):
        c = tuple(c) + (LUT_MODE, AUTO)[len(c) - 6:]
        c = c[:6] + (c[6] if lut_mode is None else lut_mode, c[7] if split_k is None else split_k)
        if codes != CODES_LUT:  # LUT_MODE only changes CODES_LUT kernels: one compile for the others
            c = c[:6] + (0, c[7])
        if interpreting():  # fixed small blocks; no inline PTX (LUT_MODE 2) there
            c = (INTERP_BLOCKS["BM"], INTERP_BLOCKS["BN"], INTERP_BLOCKS["BK"], INTERP_BLOCKS["SWAP"]) + c[4:6] + \
                (min(c[6], 1), c[7])
        return c

    if config is None:  # FOURBIT_TRITON_AUTOTUNE=0: one config for every shape (tests that draw many shapes)
        tuned = not interpreting() and os.environ.get("FOURBIT_TRITON_AUTOTUNE", "1") != "0"
        config = pick(M, N, int(group_size)) if tuned else DEFAULT
    return _run(x, wargs, b, y, M, N, K, int(group_size), common, fix(config), hg, bias is not None)


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
