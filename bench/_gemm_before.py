"""BASELINE COPY (bench only): kernels/gemm.py as of commit 32e492e, before split-K and the prmt nf4 decode,
imports made absolute; bench/gemm_small_m.py times it next to the current kernel in the same run.

linear: fused y = x @ dequant(W)^T (+ bias). Each program dequantizes [BN, BK] tiles of W in registers (float32,
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

import torch
import triton
import triton.language as tl

from fourbit.kernels._launch import interpreting
from fourbit.kernels.dequantize import CODES_LUT, code_kind, dequant_tile, group_constexpr, weight_args, weight_meta
from fourbit.kernels import codecs as cd

# Tuning space (GPU, Hopper): (BM, BN, BK, SWAP, num_warps, num_stages, LUT_MODE).
#   BM 64/128/256 (rows of x), BN 64/128 (output columns = weight rows), BK 64/128;
#   SWAP=1 computes the transposed product y^T = W x^T: the dequantized weight tile is the MMA's first operand and
#   stays in registers (wgmma A from registers, no shared-memory round trip), and M is the MMA's N (8..256);
#   SWAP=0 stores the weight tile to shared memory as wgmma's B operand;
#   num_warps 4/8, num_stages 3/4 (software-pipelining depth of the global loads);
#   LUT_MODE (CODES_LUT formats only, nf4 / bnb_fp4): 0 register select tree, 1 gather from the global LUT (L1).
# Swept on an H100 (bench/gemm_tune.py, 2026-11-26): BN 256 and BK 128 with BM >= 128 lose (register pressure);
# LUT_MODE 1 only pays with SWAP=1. Each M bucket (next power of two of M, capped at 4096) keeps the winners
# measured there; the autotuner tries just those (few compiles) and caches its pick per (M bucket, N, K, group,
# format constexprs, dtypes) for the process.
_SPACE = {
    64: [(64, 64, 128, 1, 4, 4, 0), (64, 64, 64, 1, 4, 4, 0)],
    128: [(64, 128, 64, 1, 4, 4, 0), (64, 64, 128, 1, 4, 4, 0)],
    256: [(64, 128, 64, 1, 4, 4, 0), (128, 128, 64, 0, 8, 3, 0)],
    4096: [(256, 128, 64, 1, 8, 3, 0), (128, 128, 64, 0, 8, 3, 0), (256, 128, 64, 1, 8, 3, 1)],
}


def _cfg(t):
    return triton.Config({"BM": t[0], "BN": t[1], "BK": t[2], "SWAP": t[3], "LUT_MODE": t[6]}, num_warps=t[4],
                         num_stages=t[5])


def _bucket_space(mb):
    return _SPACE[next((b for b in sorted(_SPACE) if mb <= b), max(_SPACE))]


CONFIGS = [_cfg(t) for t in dict.fromkeys(t for ts in _SPACE.values() for t in ts)]
DEFAULT = (64, 128, 64, 1, 4, 4)  # FOURBIT_TRITON_AUTOTUNE=0 (tests that try many shapes): one config, no tuning
INTERP_BLOCKS = {"BM": 16, "BN": 16, "BK": 32, "SWAP": 0}  # the interpreter runs one fixed small config
LUT_MODE = 0  # LUT_MODE of the untuned paths (DEFAULT, explicit configs, the interpreter)


@triton.jit(do_not_specialize=["M", "M_BUCKET"])
def _linear_kernel(x_ptr, q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, b_ptr, y_ptr, M, N, K, G, M_BUCKET,
                   GC: tl.constexpr, BITS: tl.constexpr, SCALE: tl.constexpr, HAS_Z: tl.constexpr,
                   HAS_G: tl.constexpr, CODES: tl.constexpr, LUT_MODE: tl.constexpr, HAS_BIAS: tl.constexpr,
                   INTERP: tl.constexpr, EVEN_K: tl.constexpr,
                   BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, SWAP: tl.constexpr):
    """x_ptr: [M, K] row-major float32/bf16/fp16; weight pointers as in dequant_tile; b_ptr: [N] of x's dtype;
    y_ptr: [M, N] row-major of x's dtype. One program computes y[BM rows, BN cols]. M_BUCKET: autotune key only.
    EVEN_K: K % BK == 0 (no masks in the K loop; rows past M / N are clamped and never stored)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows_m = pid_m * BM + tl.arange(0, BM)
    rows_n = pid_n * BN + tl.arange(0, BN)
    rm = (rows_m % M).to(tl.int64)
    rn = (rows_n % N).to(tl.int64)
    DT: tl.constexpr = x_ptr.dtype.element_ty
    kk = tl.arange(0, BK)
    x_ptrs = x_ptr + rm[:, None] * K + kk[None, :]
    if SWAP:
        acc = tl.zeros([BN, BM], tl.float32)
    else:
        acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, K, BK):
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
    if HAS_G:
        acc = acc * tl.load(g_ptr)
    nmask = rows_n < N
    if HAS_BIAS:
        acc = acc + cd.to_f32(tl.load(b_ptr + rows_n, mask=nmask, other=0))[None, :]
    y_ptrs = y_ptr + rows_m.to(tl.int64)[:, None] * N + rows_n[None, :]
    tl.store(y_ptrs, cd.cast_rne(acc, DT), mask=(rows_m < M)[:, None] & nmask[None, :])


def _prune(configs, named_args, **kwargs):
    """The M bucket's configs; LUT_MODE variants only for CODES_LUT (for other codes they are the same kernel)."""
    args = {**named_args, **kwargs}
    want = set(_bucket_space(args["M_BUCKET"]))
    out = [c for c in configs if (c.kwargs["BM"], c.kwargs["BN"], c.kwargs["BK"], c.kwargs["SWAP"], c.num_warps,
                                  c.num_stages, c.kwargs["LUT_MODE"]) in want
           and (c.kwargs["LUT_MODE"] == 0 or args.get("CODES", CODES_LUT) == CODES_LUT)]
    return out or configs[:1]


_tuned = triton.autotune(configs=CONFIGS, key=["M_BUCKET", "N", "K", "GC", "BITS", "SCALE", "HAS_Z", "HAS_G", "CODES"],
                         prune_configs_by={"early_config_prune": _prune})(
    triton.heuristics({"EVEN_K": lambda a: a["K"] % a["BK"] == 0})(_linear_kernel))


def launch(x, qdata, scales, zeros, global_scale, lut, group_size, bias, y, config=None, lut_mode=None):
    """Run the kernel into y; config: a (BM, BN, BK, SWAP, warps, stages) tuple (LUT_MODE: lut_mode) to bypass
    autotuning."""
    N, K, bits, sk, hz, hg = weight_meta(qdata, scales, zeros, global_scale, lut)
    M = x.shape[0]
    wargs = weight_args(qdata, scales, zeros, global_scale, lut)
    b = bias if bias is not None else y
    mb = min(triton.next_power_of_2(M), 4096)
    common = dict(GC=group_constexpr(group_size), BITS=bits, SCALE=sk, HAS_Z=hz, HAS_G=hg,
                  CODES=code_kind(lut) if bits == 4 else CODES_LUT, HAS_BIAS=bias is not None,
                  INTERP=interpreting())
    if config is None and (interpreting() or os.environ.get("FOURBIT_TRITON_AUTOTUNE", "1") == "0"):
        config = DEFAULT
    if interpreting():
        blocks = dict(INTERP_BLOCKS, LUT_MODE=LUT_MODE if lut_mode is None else lut_mode)
    elif config is not None:
        blocks = dict(BM=config[0], BN=config[1], BK=config[2], SWAP=config[3], num_warps=config[4],
                      num_stages=config[5], LUT_MODE=LUT_MODE if lut_mode is None else lut_mode)
    if interpreting() or config is not None:
        grid = (triton.cdiv(M, blocks["BM"]), triton.cdiv(N, blocks["BN"]))
        _linear_kernel[grid](x, *wargs, b, y, M, N, K, int(group_size), mb, EVEN_K=K % blocks["BK"] == 0,
                             **common, **blocks)
    else:
        grid = lambda meta: (triton.cdiv(M, meta["BM"]), triton.cdiv(N, meta["BN"]))  # noqa: E731
        _tuned[grid](x, *wargs, b, y, M, N, K, int(group_size), mb, **common)
    return y


def linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias=None, out=None) -> torch.Tensor:
    """y [M, N] = x [M, K] @ dequant(W)^T (+ bias), float32 accumulation, returned in x's dtype.

    x: contiguous [M, K] float32/bfloat16/float16, any M. Weight pieces as in dequantize (K a multiple of
    group_size). bias: [N] of x's dtype or None. out: optional contiguous [M, N] of x's dtype to write into."""
    N = qdata.shape[0]
    y = out if out is not None else torch.empty(x.shape[0], N, dtype=x.dtype, device=x.device)
    return launch(x, qdata, scales, zeros, global_scale, lut, group_size, bias, y)
