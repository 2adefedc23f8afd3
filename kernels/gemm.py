"""linear: fused y = x @ dequant(W)^T (+ bias). Each program dequantizes [BN, BK] tiles of W in registers (float32,
bit-exact with `dequantize`), converts them to the MMA operand dtype and feeds tl.dot (wgmma on Hopper) with a
float32 accumulator; the output has x's dtype.

Operand precision: bf16/fp16 x -> W tile rounded (RNE) to x's dtype, so each product carries up to one extra
rounding of 2^-8 (bf16) / 2^-11 (fp16) relative (fp16 also needs |W| < 65504); fp32 x -> tl.dot with
input_precision="ieee" (no tf32). nvfp4's global scale is applied to the accumulator in the epilogue: e2m1 * E4M3
has at most 6 significant bits, so the operand tile is exact in bf16 and fp16.

Speed (issue 5): this is the naive "unpack then tl.dot" design, ~0.4x cuBLAS at large M on H100 (ANCHORS.md).
The fix is a pre-shuffled weight layout: store each [BN, BK] tile's nibbles in the order of the wgmma B-operand
register fragment (as Marlin / Machete / triton_kernels' Hopper layout do) so one 32-bit load + shifts/LUT
gives ready operand registers, with scales likewise tiled, and apply group scales to fp16/bf16 code values
(or per group after the MMA when G >= BK) instead of gathering one scale per element as done here.
"""
import os

import torch
import triton
import triton.language as tl

from ._launch import interpreting
from .dequantize import dequant_tile, weight_args, weight_meta
from . import codecs as cd

# Tuning space (GPU): BLOCK_M x BLOCK_N x BLOCK_K tiles, warps, pipeline stages. Small and fixed; the autotuner
# benchmarks each once per key (M bucket, N, K, group, formats) and caches the winner for the process.
CONFIGS = [
    triton.Config({"BM": 64, "BN": 64, "BK": 64}, num_warps=4, num_stages=3),
    triton.Config({"BM": 128, "BN": 64, "BK": 64}, num_warps=4, num_stages=3),
    triton.Config({"BM": 64, "BN": 128, "BK": 64}, num_warps=4, num_stages=3),
    triton.Config({"BM": 128, "BN": 128, "BK": 64}, num_warps=8, num_stages=3),
    triton.Config({"BM": 32, "BN": 64, "BK": 128}, num_warps=4, num_stages=4),
]
INTERP_BLOCKS = {"BM": 16, "BN": 16, "BK": 32}  # the interpreter runs one fixed small config (no autotuning)
# FOURBIT_TRITON_AUTOTUNE=0 skips autotuning on the GPU (CONFIGS[0]): tests that try many shapes use it


@triton.jit(do_not_specialize=["M", "M_BUCKET"])
def _linear_kernel(x_ptr, q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, b_ptr, y_ptr, M, N, K, G, M_BUCKET,
                   BITS: tl.constexpr, SCALE: tl.constexpr, HAS_Z: tl.constexpr, HAS_G: tl.constexpr,
                   HAS_BIAS: tl.constexpr, INTERP: tl.constexpr,
                   BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """x_ptr: [M, K] row-major float32/bf16/fp16; weight pointers as in dequant_tile; b_ptr: [N] of x's dtype;
    y_ptr: [M, N] row-major of x's dtype. One program computes y[BM rows, BN cols]. M_BUCKET: autotune key only."""
    rows_m = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    rows_n = tl.program_id(1).to(tl.int64) * BN + tl.arange(0, BN)
    mmask, nmask = rows_m < M, rows_n < N
    DT: tl.constexpr = x_ptr.dtype.element_ty
    acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, K, BK):
        cols = k0 + tl.arange(0, BK)
        x = tl.load(x_ptr + rows_m[:, None] * K + cols[None, :], mask=mmask[:, None] & (cols[None, :] < K), other=0)
        # nvfp4 (HAS_G): the global scale waits for the epilogue, so the tile stays exact in bf16 / fp16
        w = dequant_tile(q_ptr, s_ptr, z_ptr, g_ptr, lut_ptr, rows_n, nmask, k0, K, G, BITS, SCALE, HAS_Z, False, BK)
        if DT == tl.float32:
            acc += tl.dot(x, tl.trans(w), input_precision="ieee")
        elif INTERP:  # the interpreter's tl.dot cannot multiply bf16: same products in float32
            acc += tl.dot(cd.to_f32(x), tl.trans(cd.round_to(w, DT)), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(w.to(DT)))
    if HAS_G:
        acc = acc * tl.load(g_ptr)
    if HAS_BIAS:
        acc = acc + cd.to_f32(tl.load(b_ptr + rows_n, mask=nmask, other=0))[None, :]
    tl.store(y_ptr + rows_m[:, None] * N + rows_n[None, :], cd.cast_rne(acc, DT), mask=mmask[:, None] & nmask[None, :])


_tuned = triton.autotune(configs=CONFIGS, key=["M_BUCKET", "N", "K", "G", "BITS", "SCALE", "HAS_Z", "HAS_G"])(
    _linear_kernel)


def linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias=None, out=None) -> torch.Tensor:
    """y [M, N] = x [M, K] @ dequant(W)^T (+ bias), float32 accumulation, returned in x's dtype.

    x: contiguous [M, K] float32/bfloat16/float16, any M. Weight pieces as in dequantize (K a multiple of
    group_size). bias: [N] of x's dtype or None. out: optional contiguous [M, N] of x's dtype to write into."""
    N, K, bits, sk, hz, hg = weight_meta(qdata, scales, zeros, global_scale, lut)
    M = x.shape[0]
    y = out if out is not None else torch.empty(M, N, dtype=x.dtype, device=x.device)
    wargs = weight_args(qdata, scales, zeros, global_scale, lut)
    b = bias if bias is not None else y
    mb = min(triton.next_power_of_2(M), 4096)
    common = dict(BITS=bits, SCALE=sk, HAS_Z=hz, HAS_G=hg, HAS_BIAS=bias is not None,
                  INTERP=interpreting())
    if interpreting() or os.environ.get("FOURBIT_TRITON_AUTOTUNE", "1") == "0":
        blocks = INTERP_BLOCKS if interpreting() else dict(CONFIGS[0].kwargs, num_warps=CONFIGS[0].num_warps,
                                                             num_stages=CONFIGS[0].num_stages)
        grid = (triton.cdiv(M, blocks["BM"]), triton.cdiv(N, blocks["BN"]))
        _linear_kernel[grid](x, *wargs, b, y, M, N, K, int(group_size), mb, **common, **blocks)
    else:
        grid = lambda meta: (triton.cdiv(M, meta["BM"]), triton.cdiv(N, meta["BN"]))  # noqa: E731
        _tuned[grid](x, *wargs, b, y, M, N, K, int(group_size), mb, **common)
    return y
