"""Argument checks shared by every op's fake (meta) implementation and its real kernels.

Each failure names the argument and the rule: check_type raises TypeError, check_value ValueError, so callers get a
plain Python exception, never a crash or a silently wrong result.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..formats import FORMATS

def check_value(cond, message) -> None:
    """ValueError(message()) unless cond. A plain bool (eager calls) is tested in Python: torch._check_value costs
    ~1 us a call (29 checks made an M = 1 linear 28 us slower, measured on the CPU machine); symbolic conditions
    (fake tensors under torch.compile) go through torch._check_value so the tracer records them."""
    if cond is True:
        return
    if isinstance(cond, bool):
        raise ValueError(message())
    torch._check_value(cond, message)


def check_type(cond, message) -> None:
    """TypeError(message()) unless cond (the same fast path as check_value)."""
    if cond is True:
        return
    if isinstance(cond, bool):
        raise TypeError(message())
    torch._check_type(cond, message)


ACT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
SCALE_DTYPES = (torch.float32, torch.float8_e4m3fn, torch.float8_e8m0fnu)
ALIGN = 16  # bytes: the GPU kernels load 16-byte vectors, so x and qdata must start on a 16-byte boundary


def dtype_in(name: str, t: torch.Tensor, allowed) -> None:
    check_type(t.dtype in allowed, lambda: f"{name} must have dtype in {[str(d) for d in allowed]}, "
                                                  f"got {t.dtype}")


def contiguous(name: str, t: torch.Tensor) -> None:
    check_value(t.is_contiguous(), lambda: f"{name} must be contiguous (call .contiguous()); "
                                                   f"got strides {tuple(t.stride())} for shape {tuple(t.shape)}")


def shape_is(name: str, t: torch.Tensor, shape) -> None:
    check_value(tuple(t.shape) == tuple(shape),
                       lambda: f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def same_device(ref_name: str, ref: torch.Tensor, **tensors) -> None:
    for name, t in tensors.items():
        if t is not None:
            check_value(t.device == ref.device,
                               lambda: f"{name} is on {t.device} but {ref_name} is on {ref.device}: "
                                       f"all tensors must be on one device")


def aligned(**tensors) -> None:
    """Real tensors only (fake tensors have no address)."""
    for name, t in tensors.items():
        check_value(t.data_ptr() % ALIGN == 0,
                           lambda: f"{name} must start on a {ALIGN}-byte boundary (data_ptr {t.data_ptr():#x}); "
                                   f"a sliced view can break this: pass a fresh .contiguous() copy")


def check_codes(codes: torch.Tensor) -> None:
    dtype_in("codes", codes, (torch.uint8,))
    contiguous("codes", codes)
    check_value(codes.dim() >= 1 and codes.shape[-1] % 2 == 0,
                       lambda: f"codes' last dimension must be even to pack pairs, got shape {tuple(codes.shape)}")


def check_packed(packed: torch.Tensor) -> None:
    dtype_in("packed", packed, (torch.uint8,))
    contiguous("packed", packed)
    check_value(packed.dim() >= 1, lambda: "packed must have at least one dimension")


def check_quantize(w: torch.Tensor, fmt: str, variant: str, group_size: int) -> None:
    check_value(fmt in FORMATS, lambda: f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
    variants = {"int4": ("sym", "asym"), "int8": ("sym", "asym"), "mxfp4": ("floor", "rceil")}.get(fmt, ("",))
    check_value(variant in variants, lambda: f"variant for {fmt} must be one of {variants}, got {variant!r}")
    dtype_in("w", w, ACT_DTYPES)
    check_value(w.dim() == 2, lambda: f"w must be 2-D [N, K], got shape {tuple(w.shape)}")
    check_value(w.numel() > 0, lambda: f"w must not be empty, got shape {tuple(w.shape)}")
    contiguous("w", w)
    K = w.shape[1]
    check_value(group_size > 0 and K % group_size == 0,
                       lambda: f"K={K} (w.shape[1]) must be a multiple of group_size={group_size}")
    fixed = {"nvfp4": 16, "mxfp4": 32}.get(fmt)
    check_value(fixed is None or group_size == fixed,
                       lambda: f"group_size for {fmt} is fixed at {fixed}, got {group_size}")
    check_value(FORMATS[fmt].bits == 8 or K % 2 == 0, lambda: f"K={K} must be even for a 4-bit format")


def weight_dims(qdata: torch.Tensor, lut: torch.Tensor):
    """(N, K) of a quantized weight: 4-bit formats pack two codes per byte."""
    packed = lut.numel() == 16
    return qdata.shape[0], qdata.shape[1] * (2 if packed else 1)


def check_weight(qdata, scales, zeros, global_scale, lut, group_size: int):
    """Checks the stored pieces of a quantized [N, K] weight; returns (N, K)."""
    check_value(qdata.dim() == 2, lambda: f"qdata must be 2-D [N, K/2] or [N, K], got {tuple(qdata.shape)}")
    dtype_in("qdata", qdata, (torch.uint8, torch.int8))
    dtype_in("lut", lut, (torch.float32,))
    check_value(lut.numel() in (0, 16), lambda: f"lut must hold 16 entries (4-bit) or 0 (8-bit), "
                                                        f"got {lut.numel()}")
    check_value(lut.numel() == 0 or qdata.dtype == torch.uint8,
                       lambda: "qdata must be uint8 when a 16-entry lut is given (packed 4-bit codes)")
    N, K = weight_dims(qdata, lut)
    check_value(N > 0 and K > 0, lambda: f"qdata must not be empty, got shape {tuple(qdata.shape)}")
    check_value(group_size > 0 and K % group_size == 0,
                       lambda: f"K={K} must be a multiple of group_size={group_size}")
    dtype_in("scales", scales, SCALE_DTYPES)
    shape_is("scales", scales, (N, K // group_size))
    dtype_in("zeros", zeros, (torch.uint8,))
    check_value(zeros.numel() == 0 or tuple(zeros.shape) == (N, K // group_size),
                       lambda: f"zeros must be empty or have shape {(N, K // group_size)}, got {tuple(zeros.shape)}")
    dtype_in("global_scale", global_scale, (torch.float32,))
    check_value(global_scale.numel() in (0, 1),
                       lambda: f"global_scale must be empty or hold one element, got shape {tuple(global_scale.shape)}")
    for name, t in (("qdata", qdata), ("scales", scales), ("zeros", zeros), ("global_scale", global_scale),
                    ("lut", lut)):
        contiguous(name, t)
    same_device("qdata", qdata, scales=scales, zeros=zeros, global_scale=global_scale, lut=lut)
    return N, K


def check_linear(x, qdata, scales, zeros, global_scale, lut, group_size: int, bias: Optional[torch.Tensor]):
    """Checks y = x @ dequant(W)^T (+ bias); returns (M, N, K) with M the product of x's leading dims."""
    N, K = check_weight(qdata, scales, zeros, global_scale, lut, group_size)
    dtype_in("x", x, ACT_DTYPES)
    check_value(x.dim() >= 1 and x.shape[-1] == K,
                       lambda: f"x must have shape [..., K={K}] (in_features), got {tuple(x.shape)}")
    M = x.numel() // K
    check_value(M > 0, lambda: f"x must not be empty (M = 0 rows), got shape {tuple(x.shape)}")
    contiguous("x", x)
    same_device("x", x, qdata=qdata)
    if bias is not None:
        check_type(bias.dtype == x.dtype, lambda: f"bias must have x's dtype {x.dtype}, got {bias.dtype}")
        shape_is("bias", bias, (N,))
        contiguous("bias", bias)
        same_device("x", x, bias=bias)
    return M, N, K
