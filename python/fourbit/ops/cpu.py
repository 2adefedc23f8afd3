"""CPU backend: registers the native C++ kernels (fourbit._C, through _native) for every op."""
from __future__ import annotations

import torch

from . import _checks as C
from . import _native
from .library import check_out


@torch.library.register_kernel("fourbit::pack_nibbles", "cpu")
def _(codes):
    C.check_codes(codes)
    return _native.pack_nibbles(codes)


@torch.library.register_kernel("fourbit::unpack_nibbles", "cpu")
def _(packed):
    C.check_packed(packed)
    return _native.unpack_nibbles(packed)


@torch.library.register_kernel("fourbit::quantize", "cpu")
def _(w, fmt, variant, group_size):
    C.check_quantize(w, fmt, variant, group_size)
    return _native.quantize(w, fmt, variant, group_size)


@torch.library.register_kernel("fourbit::dequantize", "cpu")
def _(qdata, scales, zeros, global_scale, lut, group_size, dtype):
    C.check_weight(qdata, scales, zeros, global_scale, lut, group_size)
    C.check_type(dtype in C.ACT_DTYPES, lambda: f"dtype must be one of {C.ACT_DTYPES}, got {dtype}")
    C.aligned(qdata=qdata)
    return _native.dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype)


@torch.library.register_kernel("fourbit::linear", "cpu")
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias):
    M, N, K = C.check_linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias)
    C.aligned(x=x, qdata=qdata)
    y = _native.linear(x.reshape(M, K), qdata, scales, zeros, global_scale, lut, group_size, bias)
    return y.reshape(*x.shape[:-1], N)


@torch.library.register_kernel("fourbit::linear_out", "cpu")
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out):
    M, N, K = check_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out)
    C.aligned(x=x, qdata=qdata)
    _native.linear_out(x.reshape(M, K), qdata, scales, zeros, global_scale, lut, group_size, bias,
                       out.view(M, N))
