"""CUDA backend: registers GPU kernels for every op. The kernel is chosen here, by device capability and M, never
by the caller:
  pack / unpack                         -> Triton (fourbit.kernels)
  quantize                              -> the CUDA kernel (csrc/cuda/quant.cu) for bf16 / fp16 weights in int4, nf4,
                                           nvfp4 (both passes) and mxfp4 with a power-of-two group size,
                                           else Triton (fourbit.kernels)
  dequantize                            -> the CUDA kernel (csrc/cuda/dequant.cu) to bf16 / fp16 for 4-bit codes with
                                           a power-of-two group size, else Triton (dequantize_weight)
  linear, 32 < M <= 2048, Hopper        -> the CUDA register-A wgmma GEMM (csrc/cuda/gemm_rs.cu) for nib4 weights with
                                           the GEMV's scale kinds and bf16 / fp16 x, K % 64 == 0 (RS_MIN_M, RS_MAX_M;
                                           rs_takes)
  linear, 8 < M <= 64 otherwise         -> the CUDA small-M GEMM (csrc/cuda/gemm_sm.cu, mma.sync, any CUDA GPU) for
                                           nib4 weights with the GEMV's scale kinds and bf16 / fp16 x (SM_MIN_M,
                                           SM_MAX_M)
  linear, M <= 16 otherwise (decode)    -> the CUDA C++ GEMV (csrc/cuda/gemv.cu) when fourbit._C has CUDA
  linear, 16 < M <= 256, Hopper         -> the CUDA warp-specialized wgmma GEMM (csrc/cuda/gemm_tc.cu) for nib4
                                           weights with bf16 / fp16 x, inside a per-format M window that narrows for
                                           wide N (TC_WINDOWS: nf4 / int4 / nvfp4 from M = 17, mxfp4 from 65), where
                                           neither the register-A GEMM nor the small-M GEMM takes the weight (by
                                           default the nib4 formats they take leave it nothing on Hopper);
                                           FOURBIT_TC_MAX_M sets one window for every format (TC_MAX_M)
  linear, 16 < M < DEQUANT_MIN_M         -> Triton fused dequant + tl.dot GEMM; on Blackwell (capability >= 10) with
                                           bf16 x, nvfp4 / mxfp4 weights go to the tl.dot_scaled kernel, whose
                                           native block-scaled MMA exists only there (compiled and SASS-checked in
                                           CI, never run: no Blackwell GPU was available)
  linear, M >= DEQUANT_MIN_M            -> (formats without the dot_scaled path) dequantize into a transient [N, K]
                                           buffer of x's dtype (dequantize_weight, bit-exact)
                                           then cuBLAS (torch.mm / addmm): the compute-bound regime, where the fused
                                           kernel's dequant ALU work in the MMA warps costs more than one extra pass
                                           over the weight (see DEQUANT_MIN_M). Peak extra memory: N * K * 2 bytes.
All launches use torch's current CUDA stream. Triton is imported on first use, so CPU-only users never pay for it.
Every kernel registered here runs under a guard for its first tensor's device (on_device): native and Triton kernels
launch on the current device, and a model spread over several GPUs (a device_map) calls layers on cuda:1 while cuda:0
is current; without the guard those launches read another GPU's memory (tests/test_multi_gpu.py).
"""
from __future__ import annotations

import functools
import os

import torch

from . import _checks as C
from . import _native_cuda
from .library import check_out

GEMV_MAX_M = 16  # decode sizes: the memory-bound GEMV; above it the tensor-core GEMM
# SM_MIN_M < M <= SM_MAX_M: the small-M mma.sync GEMM where it applies (ahead of the GEMV and the wgmma GEMM's
# windows). The bounds live in the native linear_sm_takes (csrc/cuda/gemm_sm.cu, kSmMinM / kSmMaxM); these mirror them.
# Why from M = 9: at M = 16 it beat the GEMV in all 20 shape x format cases of an H100 run (8192^2 int4 37.7 -> 29.4
# us, 28672x8192 nf4 108.6 -> 88.8; gemm_sm.cu's header has the table).
SM_MIN_M = 8
SM_MAX_M = 64
# From this M on, dequantize-then-cuBLAS beats the fused Triton GEMM. H100, CUDA-graph us, fused vs dequant+mm
# (bench/gpu_peers.py crossover, 2026-11-26, before split-K): 8192^2 M=128 int4 96 vs 134, M=256 174 vs 136,
# M=1024 457 vs 253. With split-K the fused kernel takes M=256 back (8192^2 int4 119.5, nf4 130.8 vs dequant+mm
# 136 / 171; 4096^2 39.2 vs 44.6), and on Hopper the wgmma GEMM now takes M <= 256 (TC_WINDOWS). Above 256 the
# fused kernel falls off (bench/gpu_tc.py --ms 320,384,512 --dq, H100 80GB HBM3, 2026-11-27, us, Triton fused vs
# dequant+mm, int4 / nf4 / nvfp4 / mxfp4): 4096^2 M = 320 104.5 / 126.0 / 91.2 / 86.9 vs 38.0 / 41.3 / 38.5 / 38.7;
# 8192^2 M = 320 226.0 / 269.5 / 225.5 / 178.9 vs 134.6 / 144.2 / 133.3 / 135.9; 28672x8192 M = 384 894.9 / 1014.0 /
# 679.8 / 703.3 vs 503.0 / 534.9 / 493.1 / 494.0; every shape and format of that run alike (2-3x at 4096^2, 1.3-2x
# above). So the switch sits right above 256 (dequant+mm also beat the wgmma GEMM at M = 512: 8192^2 int4 165.8 vs
# 183.8). Peak extra memory from there on: N * K * 2 bytes.
DEQUANT_MIN_M = 257
# RS_MIN_M < M <= RS_MAX_M: the register-A wgmma GEMM (csrc/cuda/gemm_rs.cu) where it takes the weight (Hopper), ahead
# of every other kernel. From bench/gpu_rs.py on an H200 (2026-11-27, CUDA graphs, us, int4 / nf4 / nvfp4 / mxfp4,
# bf16 x; five shapes, M = 33 / 48 / 64 / 128 / 256 / 512) against the kernel each M took before:
#   M = 33-64 vs the small-M GEMM: faster in 59 of 60 (8192^2 M = 64 36.6 / 34.4 / 40.3 / 37.1 vs 47.4 / 46.0 / 47.9 /
#             46.0; 28672x8192 nvfp4 M = 33 131.2 vs 130.5 the one loss);
#   M = 128 / 256 vs the wgmma GEMM (tc): faster in all 40 (8192^2 M = 256 76.4 / 68.2 / 79.3 / 75.0 vs 84.8 / 87.8 /
#             89.3 / 88.2; 28672x8192 M = 128 150.5 / 132.9 / 155.7 / 142.4 vs 213.9 / 231.4 / 234.8 / 229.2);
#   M = 512 vs dequantize + cuBLAS: faster in 17 of 20, 4% slower at 14336x4096 int4 / nvfp4 / mxfp4 (151.0 vs 145.4),
#             and no N * K * 2-byte transient weight; at M = 1024 dequantize + cuBLAS won then (8192^2 int4 249 vs 320).
# Sixteenth session: 256-row x tiles above M = 128 (a producer warpgroup hands registers to the consumers) moved
# M = 1024 inside (H200, int4 / nf4, us, against dequantize + cuBLAS in the same run): 8192^2 221.2 / 222.0 vs 257.2 /
# 292.6, 4096^2 58.1 / 53.9 vs 63.9 / 68.9 (bf16 cuBLAS 202.4 / 53.1). M = 2048+ was not timed then.
# Twenty-first session (H100 80GB HBM3, 2026-11-27, bench/probes/route_floor.py B: CUDA graphs of 3 calls over 3
# weight copies, us, dequantize + cuBLAS / register-A GEMM, int4 / nf4 / nvfp4 / mxfp4, bf16 cuBLAS in brackets):
#   M = 2048: the GEMM wins all 8: 4096^2 113.8 / 109.5, 117.0 / 103.2, 126.5 / 114.7, 110.4 / 107.8 (96.0); 8192^2
#             475.4 / 461.6, 482.3 / 434.4, 454.3 / 425.5, 441.4 / 437.2 (416.4);
#   M = 4096: dequantize + cuBLAS wins 7 of 8: 4096^2 214.0 / 228.3, 228.1 / 236.2, 225.3 / 232.5, 206.1 / 218.6
#             (198.0); 8192^2 853.7 / 962.8, 897.4 / 864.7 (nf4, the GEMM's one win), 856.4 / 908.9, 830.5 / 881.7
#             (775.4). So the window ends at 2048 (M between 2048 and 4096 was not timed).
# Below M = 33 the small-M GEMM stays (at M = 16 it was 28.5 against 35.0, 8192^2 int4, H100).
RS_MIN_M = 32
RS_MAX_M = 2048
# The Hopper wgmma GEMM (csrc/cuda/gemm_tc.cu) takes 16 < M <= TC_MAX_M when the environment sets FOURBIT_TC_MAX_M,
# for every format it supports (0 turns it off). Unset, each weight class has its own window, TC_WINDOWS, set from
# the full bench/gpu_tc.py run of the eleventh session and changed by the twelfth session's runs (the last two
# entries below; H100 80GB HBM3, 2026-11-27, CUDA graphs, us, tc vs Triton; five shapes: 4096^2, 8192^2, 28672x8192,
# 4096x14336, 14336x4096):
#   M = 256: tc faster for every format and shape (8192^2: int4 108.8 vs 117.8, nf4 95.8 vs 130.8, nvfp4 103.4 vs
#            120.6, mxfp4 96.7 vs 111.9) but int4 28672x8192 (429.6 vs 423.5, 1.4% slower; after gemm_tc's 64-K
#            stages for M > 128: 359.5 vs 419.9, and 8192^2 int4 88.6 vs 118.2);
#   M = 128: int4 / nf4 faster or even on all five (8192^2 56.7 vs 72.9, 62.7 vs 75.4); nvfp4 / mxfp4 faster at N <= 8192
#            (8192^2 64.2 vs 74.8, 63.0 vs 70.5) but slower at N >= 14336 (28672x8192 nvfp4 243.6 vs 234.0, mxfp4
#            239.9 vs 203.8; 14336x4096 68.3 vs 65.2, 67.4 vs 57.7): hence the wide-N bound;
#   M = 64: nf4 faster on all five (8192^2 53.5 vs 66.3); nvfp4 on four (28672x8192 184.0 vs 180.6); int4 and mxfp4
#           even or slower (8192^2 52.8 vs 50.3, 53.2 vs 51.1; 28672x8192 175.9 vs 155.4, 180.8 vs 165.2);
#   M = 17 / 32: nf4 faster but at 28672x8192 (165.9 vs 164.8, even); nvfp4 faster at N <= 8192 (8192^2 46.8 vs 49.9),
#                slower at 28672x8192 (169.2 vs 147.0); int4 / mxfp4 even or slower (8192^2 41.5 vs 40.5, 46.2 vs 42.0).
#   128 < M < 256 (partial x tiles; after they stopped copying one clamped row, gemm_tc.cu): as fast as M = 256,
#            so tc wins there too for int4 / nf4 / nvfp4 (8192^2 M = 129 99.3 / 105.4 / 108.4 vs 115.0 / 134.4 / 118.3;
#            28672x8192 386.5 / 410.4 / 422.7 vs 414.9 / 484.1 / 431.6). mxfp4 is even at N <= 8192 (8192^2 106.7 vs
#            105.5) but 4-6% slower above (28672x8192 416.7 vs 393.3, 14336x4096 110.4 vs 105.2; M = 256 in that run
#            412.7 vs 396.7, 111.9 vs 106.3), so mxfp4 stayed on Triton above N = 8192 for a while.
#   M = 129-256 on the twelfth session's kernel (dead rows read valid rows, x copies spread over all producers;
#            H100 80GB HBM3, 2026-11-27): tc faster for every format and shape, mxfp4 above N = 8192 included
#            (28672x8192 340.0-347.6 vs 392.7-398.8, 14336x4096 93.1-95.8 vs 104.4-106.3); mxfp4 is back to 128 < M.
#   M = 17-64, int4, on the kernel whose producers all copy x (same day): tc faster or even at N <= 16384 (8192^2 M = 17
#            / 32 / 64 39.8 / 40.1 / 49.0 vs 41.1 / 42.0 / 50.2; 14336x4096 M = 64 43.4 vs 46.7; 4096x14336 M = 64 46.5
#            vs 45.3 the one loss), slower above (28672x8192 M = 17 139.9 vs 122.7, M = 64 162.1 vs 155.4):
#            int4 from 17.
# int4_sym (codes c - 8, no zeros) shares int4's row and bnb_fp4 / nf4_dq share nf4's; those three were not timed.
# Scales of other dtypes (bf16 / fp16, from checkpoints) stay on Triton: not timed.
_TC_ENV = os.environ.get("FOURBIT_TC_MAX_M")
TC_MAX_M = int(_TC_ENV) if _TC_ENV else None  # None: the per-class default windows below
# weight class -> (lo, hi, wide_n, lo_wide): tc takes lo < M <= hi, and lo_wide < M <= hi when N > wide_n
TC_WINDOWS = {
    "table": (16, 256, 16384, 32),  # float32 scales, a table decode (nf4, nf4_dq, bnb_fp4)
    "int": (16, 256, 16384, 64),  # float32 scales, integer codes (int4 with zeros, int4_sym)
    "nvfp4": (16, 256, 8192, 128),  # e4m3 scales
    "mxfp4": (64, 256, 8192, 128),  # e8m0 scales
}
TC_HI = max(w[1] for w in TC_WINDOWS.values())  # no default window reaches above this M


NATIVE_PATHS = ("gemv", "sm", "rs", "tc")  # routes served by fourbit._C's CUDA kernels (one native call each)


def _tc_class(scales, lut):
    """The TC_WINDOWS row of these weights, or None (not timed: Triton)."""
    if scales.dtype == torch.float32:
        return "table" if _native_cuda.tc_codes(lut) == 0 else "int"
    return {torch.float8_e4m3fn: "nvfp4", torch.float8_e8m0fnu: "mxfp4"}.get(scales.dtype)


def _tc_window(scales, lut, N):
    """(lo, hi): the tc path takes lo < M <= hi for these weights with N output columns."""
    if TC_MAX_M is not None:
        return GEMV_MAX_M, TC_MAX_M
    row = TC_WINDOWS.get(_tc_class(scales, lut))
    if row is None:
        return 0, 0
    lo, hi, wide_n, lo_wide = row
    return (lo if N <= wide_n else lo_wide), hi


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
    """The kernel linear_into runs for x2 [M, K]: 'gemv', 'sm' (the small-M GEMM), 'rs' (the register-A wgmma GEMM),
    'tc' (the Hopper wgmma GEMM), 'scaled' (tl.dot_scaled, Blackwell), 'dequant_mm' or 'fused' (the module docstring
    gives the rule)."""
    M = x2.shape[0]
    if RS_MIN_M < M <= RS_MAX_M and _native_cuda.has_cuda() and \
            _native_cuda.rs_takes(x2, qdata, scales, zeros, lut, group_size):
        return "rs"
    if SM_MIN_M < M <= SM_MAX_M and _native_cuda.has_cuda() and \
            _native_cuda.sm_takes(x2, qdata, scales, zeros, lut, group_size):
        return "sm"
    if M <= GEMV_MAX_M and _native_cuda.has_cuda():
        return "gemv"
    # (M against the widest window first, so most calls skip the format checks)
    if GEMV_MAX_M < M <= max(TC_MAX_M or 0, TC_HI) and _native_cuda.has_cuda():
        lo, hi = _tc_window(scales, lut, qdata.shape[0])
        if lo < M <= hi and _native_cuda.tc_supported(x2, qdata, scales, zeros, lut, group_size):
            return "tc"
    if _scaled_format(x2, scales, global_scale, lut) is not None:
        return "scaled"
    return "dequant_mm" if M >= DEQUANT_MIN_M else "fused"


def linear_into(x2, qdata, scales, zeros, global_scale, lut, group_size, bias, out2):
    """out2 [M, N] = x2 [M, K] @ dequant(W)^T (+ bias) with the kernel this device and M call for."""
    path = route(x2, qdata, scales, zeros, global_scale, lut, group_size)
    if path in NATIVE_PATHS:
        return _native_cuda.linear_out(x2, qdata, scales, zeros, global_scale, lut, group_size, bias, out2,
                                       tc=path == "tc", rs=path == "rs")
    if path == "scaled":
        fmt = _scaled_format(x2, scales, global_scale, lut)
        return _kernels().linear_scaled(x2, qdata, scales, global_scale, fmt, bias, act="bf16", out=out2)
    if path == "dequant_mm":
        # the weight rounds once to x's dtype exactly as the fused kernel's operand tile does; cuBLAS then runs the
        # same x @ W^T (+ bias in its epilogue) that a bf16 nn.Linear runs
        return mm_into(x2, dequantize_weight(qdata, scales, zeros, global_scale, lut, group_size, x2.dtype), bias, out2)
    return _kernels().linear(x2, qdata, scales, zeros, global_scale, lut, group_size, bias, out=out2)


def dequantize_weight(qdata, scales, zeros, global_scale, lut, group_size, dtype):
    """[N, K] of dtype: the CUDA dequantize (csrc/cuda/dequant.cu) for the 4-bit weights it takes, else Triton's
    (kernels/dequantize.py); both bit-exact with the reference."""
    if _native_cuda.has_cuda():
        w = _native_cuda.dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype)
        if w is not None:
            return w
    return _kernels().dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype)


def mm_into(x2, w, bias, out2):
    """out2 = x2 @ w^T (+ bias) through cuBLAS (the dequant_mm path's second half)."""
    if bias is None:
        return torch.mm(x2, w.t(), out=out2)
    return torch.addmm(bias, x2, w.t(), out=out2)


def run_on(device: torch.device, fn, *args, **kwargs):
    """fn(*args, **kwargs) with `device` (a GPU) as the current device; switched only when it is not (a few us)."""
    if device.index == torch.cuda.current_device():
        return fn(*args, **kwargs)
    with torch.cuda.device(device):
        return fn(*args, **kwargs)


def on_device(kernel):
    """kernel run with its first argument's GPU as the current device (the op kernels registered below)."""
    @functools.wraps(kernel)
    def run(t, *args, **kwargs):
        return run_on(t.device, kernel, t, *args, **kwargs)
    return run


@torch.library.register_kernel("fourbit::pack_nibbles", "cuda")
@on_device
def _(codes):
    C.check_codes(codes)
    return _kernels().pack_nibbles(codes)


@torch.library.register_kernel("fourbit::unpack_nibbles", "cuda")
@on_device
def _(packed):
    C.check_packed(packed)
    return _kernels().unpack_nibbles(packed)


@torch.library.register_kernel("fourbit::quantize", "cuda")
@on_device
def _(w, fmt, variant, group_size):
    C.check_quantize(w, fmt, variant, group_size)
    out = _native_cuda.quantize(w, fmt, variant, group_size) if _native_cuda.has_cuda() else None
    return out if out is not None else _kernels().quantize(w, fmt, variant, group_size)


@torch.library.register_kernel("fourbit::dequantize", "cuda")
@on_device
def _(qdata, scales, zeros, global_scale, lut, group_size, dtype):
    C.check_weight(qdata, scales, zeros, global_scale, lut, group_size)
    C.check_type(dtype in C.ACT_DTYPES, lambda: f"dtype must be one of {C.ACT_DTYPES}, got {dtype}")
    C.aligned(qdata=qdata)
    return dequantize_weight(qdata, scales, zeros, global_scale, lut, group_size, dtype)


@torch.library.register_kernel("fourbit::linear", "cuda")
@on_device
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias):
    M, N, K = C.check_linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias)
    C.aligned(x=x, qdata=qdata)
    out = torch.empty((*x.shape[:-1], N), dtype=x.dtype, device=x.device)
    linear_into(x.reshape(M, K), qdata, scales, zeros, global_scale, lut, group_size, bias, out.view(M, N))
    return out


@torch.library.register_kernel("fourbit::linear_out", "cuda")
@on_device
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out):
    M, N, K = check_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out)
    C.aligned(x=x, qdata=qdata, out=out)
    linear_into(x.reshape(M, K), qdata, scales, zeros, global_scale, lut, group_size, bias, out.view(M, N))
