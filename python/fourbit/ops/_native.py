"""Thin torch wrappers over the native CPU kernels in fourbit._C.

No validation here (the op layer validates first); these allocate outputs, pass raw data pointers and sizes,
and return tensors. The extension does not link libtorch.
"""
from __future__ import annotations

import torch

_C = None


def _lib():
    """Import fourbit._C on first use, so `import fourbit` works in a source tree without the extension."""
    global _C
    if _C is None:
        from .. import _C as mod
        _C = mod
    return _C


_DT = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
_SD = {torch.float32: "float32", torch.float8_e4m3fn: "float8_e4m3fn", torch.float8_e8m0fnu: "float8_e8m0fnu"}


def _ptr(t):
    """Data pointer of an optional tensor (0 when absent or empty)."""
    return 0 if t is None or t.numel() == 0 else t.data_ptr()


def _qkind(qdata, lut):
    """Storage kind from the contract: uint8 + 16-entry lut -> nibbles; int8 -> signed; uint8 + empty lut -> unsigned."""
    if qdata.dtype == torch.int8:
        return "int8"
    return "nib4" if lut is not None and lut.numel() == 16 else "uint8"


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 2n] codes -> uint8 [..., n]; element 2i in the low nibble, 2i+1 in the high nibble."""
    codes = codes.contiguous()
    out = torch.empty(*codes.shape[:-1], codes.shape[-1] // 2, dtype=torch.uint8)
    _lib().pack_nibbles(codes.data_ptr(), out.data_ptr(), out.numel())
    return out


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [..., n] -> uint8 [..., 2n] codes (inverse of pack_nibbles)."""
    packed = packed.contiguous()
    out = torch.empty(*packed.shape[:-1], packed.shape[-1] * 2, dtype=torch.uint8)
    _lib().unpack_nibbles(packed.data_ptr(), out.data_ptr(), packed.numel())
    return out


def format_lut(fmt: str, variant: str = "") -> torch.Tensor:
    """The 16-entry float32 codebook (code -> value) the kernels use for a 4-bit format."""
    return torch.tensor(_lib().format_lut(fmt, variant), dtype=torch.float32)


def quantize(w: torch.Tensor, fmt: str, variant: str, group_size: int):
    """w [N, K] float32/bfloat16/float16 -> (qdata, scales, zeros, global_scale) in the fourbit layout."""
    assert w.dim() == 2 and w.dtype in _DT, (w.shape, w.dtype)
    w = w.contiguous()
    N, K = w.shape
    G = int(group_size)
    ng = K // G
    if fmt == "int8":
        qdata = torch.empty(N, K, dtype=torch.uint8 if variant == "asym" else torch.int8)
    else:
        qdata = torch.empty(N, K // 2, dtype=torch.uint8)
    sdtype = {"nvfp4": torch.float8_e4m3fn, "mxfp4": torch.float8_e8m0fnu}.get(fmt, torch.float32)
    scales = torch.empty(N, ng, dtype=sdtype)
    asym = fmt in ("int4", "int8") and variant == "asym"
    zeros = torch.empty(N, ng, dtype=torch.uint8) if asym else torch.empty(0, dtype=torch.uint8)
    gscale = torch.empty(1 if fmt == "nvfp4" else 0, dtype=torch.float32)
    _lib().quantize(w.data_ptr(), _DT[w.dtype], N, K, G, fmt, variant, qdata.data_ptr(), scales.data_ptr(),
                    _ptr(zeros), _ptr(gscale))
    return qdata, scales, zeros, gscale


def _weight_args(qdata, scales, zeros, global_scale, lut, group_size):
    """Positional weight arguments shared by _C.dequantize and _C.linear."""
    kind = _qkind(qdata, lut)
    N = qdata.shape[0]
    K = qdata.shape[1] * (2 if kind == "nib4" else 1)
    return (qdata.data_ptr(), kind, N, K, int(group_size), scales.data_ptr(), _SD[scales.dtype], _ptr(zeros),
            _ptr(global_scale), _ptr(lut) if kind == "nib4" else 0), N, K


def dequantize_out(qdata, scales, zeros, global_scale, lut, group_size, out) -> torch.Tensor:
    """Dequantize into a caller's contiguous out [N, K] (float32/bfloat16/float16)."""
    qdata, scales = qdata.contiguous(), scales.contiguous()
    zeros = None if zeros is None else zeros.contiguous()
    lut = None if lut is None else lut.contiguous().to(torch.float32)
    args, N, K = _weight_args(qdata, scales, zeros, global_scale, lut, group_size)
    assert out.is_contiguous() and tuple(out.shape) == (N, K) and out.dtype in _DT
    _lib().dequantize(*args, out.data_ptr(), _DT[out.dtype])
    return out


def dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype=torch.float32) -> torch.Tensor:
    """Dequantize to [N, K] of dtype: v = ((lut[code] - z) * s) * g in float32, then RNE to dtype."""
    K = qdata.shape[1] * (2 if _qkind(qdata, lut) == "nib4" else 1)
    out = torch.empty(qdata.shape[0], K, dtype=dtype)
    return dequantize_out(qdata, scales, zeros, global_scale, lut, group_size, out)


def linear_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out) -> torch.Tensor:
    """out[M, N] = x[M, K] @ dequant(W).T (+ bias), f32 accumulation, in x.dtype; out must be contiguous."""
    x, qdata, scales = x.contiguous(), qdata.contiguous(), scales.contiguous()
    zeros = None if zeros is None else zeros.contiguous()
    lut = None if lut is None else lut.contiguous().to(torch.float32)
    bias = None if bias is None else bias.contiguous()
    args, N, K = _weight_args(qdata, scales, zeros, global_scale, lut, group_size)
    assert out.is_contiguous() and out.dtype == x.dtype and tuple(out.shape) == (x.shape[0], N)
    _lib().linear(x.data_ptr(), _DT[x.dtype], x.shape[0], *args, _ptr(bias), out.data_ptr())
    return out


def linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias=None) -> torch.Tensor:
    """y[M, N] = x[M, K] @ dequant(W).T (+ bias), accumulated in float32, returned in x.dtype."""
    out = torch.empty(x.shape[0], qdata.shape[0], dtype=x.dtype)
    return linear_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out)
