"""CUDA backend: registers GPU kernels for every op. The kernel is chosen here, by device capability and M, never
by the caller:
  pack / unpack / quantize / dequantize -> Triton (fourbit.kernels)
  linear, M <= 16 (decode)             -> the CUDA C++ GEMV (csrc/cuda/gemv.cu) when fourbit._C has CUDA
  linear, 16 < M <= 64, Hopper          -> the CUDA warp-specialized wgmma GEMM (csrc/cuda/gemm_tc.cu) for nib4
                                           weights decoded through a table with float32 scales (nf4, bnb_fp4) and
                                           bf16 / fp16 x (M <= 32 only while N <= TC_TABLE_WIDE_N); FOURBIT_TC_MAX_M
                                           sets the window for every format (TC_MAX_M)
  linear, 16 < M < DEQUANT_MIN_M         -> Triton fused dequant + tl.dot GEMM; on Blackwell (capability >= 10) with
                                           bf16 x, nvfp4 / mxfp4 weights go to the tl.dot_scaled kernel, whose
                                           native block-scaled MMA exists only there (compiled and SASS-checked in
                                           CI, never run: no Blackwell GPU was available)
  linear, M >= DEQUANT_MIN_M            -> (formats without the dot_scaled path) dequantize into a transient [N, K] buffer of x's dtype (Triton, bit-exact)
                                           then cuBLAS (torch.mm / addmm): the compute-bound regime, where the fused
                                           kernel's dequant ALU work in the MMA warps costs more than one extra pass
                                           over the weight (see DEQUANT_MIN_M). Peak extra memory: N * K * 2 bytes.
All launches use torch's current CUDA stream. Triton is imported on first use, so CPU-only users never pay for it.
"""
from __future__ import annotations

import os

import torch

from . import _checks as C
from . import _native_cuda
from .library import check_out

GEMV_MAX_M = 16  # decode sizes: the memory-bound GEMV; above it the tensor-core GEMM
# From this M on, dequantize-then-cuBLAS beats the fused Triton GEMM. H100, CUDA-graph us, fused vs dequant+mm
# (bench/gpu_peers.py crossover, 2026-11-26, before split-K): 8192^2 M=128 int4 96 vs 134, M=256 174 vs 136,
# M=1024 457 vs 253. With split-K the fused kernel takes M=256 back (8192^2 int4 119.5, nf4 130.8 vs dequant+mm
# 136 / 171; 4096^2 39.2 vs 44.6), so the switch sits at 512; BENCHMARKS.md's crossover table is the latest check.
DEQUANT_MIN_M = 512
# The Hopper wgmma GEMM (csrc/cuda/gemm_tc.cu) takes 16 < M <= TC_MAX_M when the environment sets FOURBIT_TC_MAX_M,
# for every format it supports (0 turns it off). Unset, it takes 16 < M <= 64 for table-decoded weights with float32
# scales (nf4, nf4 with double quantization, bnb_fp4), where the Triton fused kernel pays a table gather per code;
# above N = TC_TABLE_WIDE_N only 32 < M <= 64. H100 80GB HBM3, 2026-11-27 (tenth session), bench/gpu_tc.py (CUDA
# graphs, us), nf4 tc vs Triton:
#   M = 17: 4096^2 16.7 vs 19.6, 8192^2 47.8 vs 55.2, 4096x14336 43.5 vs 48.6, 14336x4096 47.2 vs 47.3,
#           28672x8192 172.4 vs 161.9 (the wide-N exception; M = 32 the same picture);
#   M = 64: 19.7 vs 22.7, 56.0 vs 66.4, 50.8 vs 59.1, 53.2 vs 59.7, 191.7 vs 208.7;
#   M = 128: 24.4 vs 25.1, 72.0 vs 75.4, 67.8 vs 67.9, 73.6 vs 65.1, 278.9 vs 244.2 (so the window stops at 64).
# int4, nvfp4 and mxfp4 stay on Triton: at M <= 128 tc was within -8..+20% of it (geomean about even for nvfp4 at
# M = 64, behind for int4 / mxfp4), at M = 256 10-20% slower. bnb_fp4 shares nf4's decode on both paths; not timed.
# The kernel's last two changes (x one stage ahead; BMM = 256 for M > 128) were timed on 8192^2 and 4096^2 only
# (bench/gpu_tc.py --quick): there tc now beats Triton for every format at M = 128 (8192^2 56.7-64.0 vs 70.1-75.1)
# and M = 256 (96.7-110.3 vs 112.3-129.9), but the window stays as timed on all five shapes above until a full run
# says the same for 28672x8192 and 14336x4096 (where the previous kernel lost at M = 128). FOURBIT_TC_MAX_M=256
# takes it now.
_TC_ENV = os.environ.get("FOURBIT_TC_MAX_M")
TC_MAX_M = int(_TC_ENV) if _TC_ENV else None  # None: the per-format default of _tc_window
TC_TABLE_M = (16, 64)  # the default window (exclusive, inclusive) for table-decoded weights with float32 scales
TC_TABLE_WIDE_N = 16384  # above this N the window starts at 32 (28672x8192: Triton 5-6% faster at M = 17-32)


def _tc_window(scales, zeros, lut, N):
    """(lo, hi): the tc path takes lo < M <= hi for these weights with N output columns."""
    if TC_MAX_M is not None:
        return GEMV_MAX_M, TC_MAX_M
    if scales.dtype == torch.float32 and (zeros is None or zeros.numel() == 0) and _native_cuda.tc_codes(lut) == 0:
        return (TC_TABLE_M[0] if N <= TC_TABLE_WIDE_N else 32), TC_TABLE_M[1]
    return 0, 0


def _kernels():
    from .. import kernels  # Triton, imported lazily
    return kernels


def _scaled_format(x, scales, global_scale, lut):
    """'nvfp4' / 'mxfp4' when this call can take tl.dot_scaled's native Blackwell path, else None."""
    if x.dtype != torch.bfloat16 or lut.numel() != 16 or torch.cuda.get_device_capability(x.device)[0] < 10:
        return None
    if scales.dtype == torch.float8_e4m3fn and global_scale.numel() == 1:
        return "nvfp4"
    return "mxfp4" if scales.dtype == torch.float8_e8m0fnu else None


def route(x2, qdata, scales, zeros, global_scale, lut, group_size) -> str:
    """The kernel linear_into runs for x2 [M, K]: 'gemv', 'tc' (the Hopper wgmma GEMM), 'scaled' (tl.dot_scaled,
    Blackwell), 'dequant_mm' or 'fused' (the module docstring gives the rule)."""
    M = x2.shape[0]
    if M <= GEMV_MAX_M and _native_cuda.has_cuda():
        return "gemv"
    # (M against the widest window first, so most calls skip the format checks)
    if GEMV_MAX_M < M <= max(TC_MAX_M or 0, TC_TABLE_M[1]) and _native_cuda.has_cuda():
        lo, hi = _tc_window(scales, zeros, lut, qdata.shape[0])
        if lo < M <= hi and _native_cuda.tc_supported(x2, qdata, scales, zeros, lut, group_size):
            return "tc"
    if _scaled_format(x2, scales, global_scale, lut) is not None:
        return "scaled"
    return "dequant_mm" if M >= DEQUANT_MIN_M else "fused"


def linear_into(x2, qdata, scales, zeros, global_scale, lut, group_size, bias, out2):
    """out2 [M, N] = x2 [M, K] @ dequant(W)^T (+ bias) with the kernel this device and M call for."""
    path = route(x2, qdata, scales, zeros, global_scale, lut, group_size)
    if path in ("gemv", "tc"):
        return _native_cuda.linear_out(x2, qdata, scales, zeros, global_scale, lut, group_size, bias, out2,
                                       tc=path == "tc")
    if path == "scaled":
        fmt = _scaled_format(x2, scales, global_scale, lut)
        return _kernels().linear_scaled(x2, qdata, scales, global_scale, fmt, bias, act="bf16", out=out2)
    if path == "dequant_mm":
        # the weight rounds once to x's dtype exactly as the fused kernel's operand tile does; cuBLAS then runs the
        # same x @ W^T (+ bias in its epilogue) that a bf16 nn.Linear runs
        w = _kernels().dequantize(qdata, scales, zeros, global_scale, lut, group_size, x2.dtype)
        return mm_into(x2, w, bias, out2)
    return _kernels().linear(x2, qdata, scales, zeros, global_scale, lut, group_size, bias, out=out2)


def mm_into(x2, w, bias, out2):
    """out2 = x2 @ w^T (+ bias) through cuBLAS (the dequant_mm path's second half)."""
    if bias is None:
        return torch.mm(x2, w.t(), out=out2)
    return torch.addmm(bias, x2, w.t(), out=out2)


@torch.library.register_kernel("fourbit::pack_nibbles", "cuda")
def _(codes):
    C.check_codes(codes)
    return _kernels().pack_nibbles(codes)


@torch.library.register_kernel("fourbit::unpack_nibbles", "cuda")
def _(packed):
    C.check_packed(packed)
    return _kernels().unpack_nibbles(packed)


@torch.library.register_kernel("fourbit::quantize", "cuda")
def _(w, fmt, variant, group_size):
    C.check_quantize(w, fmt, variant, group_size)
    return _kernels().quantize(w, fmt, variant, group_size)


@torch.library.register_kernel("fourbit::dequantize", "cuda")
def _(qdata, scales, zeros, global_scale, lut, group_size, dtype):
    C.check_weight(qdata, scales, zeros, global_scale, lut, group_size)
    C.check_type(dtype in C.ACT_DTYPES, lambda: f"dtype must be one of {C.ACT_DTYPES}, got {dtype}")
    C.aligned(qdata=qdata)
    return _kernels().dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype)


@torch.library.register_kernel("fourbit::linear", "cuda")
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias):
    M, N, K = C.check_linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias)
    C.aligned(x=x, qdata=qdata)
    out = torch.empty((*x.shape[:-1], N), dtype=x.dtype, device=x.device)
    linear_into(x.reshape(M, K), qdata, scales, zeros, global_scale, lut, group_size, bias, out.view(M, N))
    return out


@torch.library.register_kernel("fourbit::linear_out", "cuda")
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out):
    M, N, K = check_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out)
    C.aligned(x=x, qdata=qdata, out=out)
    linear_into(x.reshape(M, K), qdata, scales, zeros, global_scale, lut, group_size, bias, out.view(M, N))
