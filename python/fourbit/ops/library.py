"""Every fourbit op, defined once: its schema, its fake (meta) implementation and its autograd rule.

Backends register kernels per device (cpu.py now; CUDA plugs in the same way) without changing callers. The fakes
run the same argument checks as the kernels, so torch.compile traces reject bad input with the same messages.

Ops (namespace fourbit):
  pack_nibbles(codes) -> packed          uint8 [..., 2n] -> [..., n], element 2i in the LOW nibble
  unpack_nibbles(packed) -> codes        inverse of pack_nibbles
  quantize(w, fmt, variant, group_size) -> (qdata, scales, zeros, global_scale)
  dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype) -> w [N, K]
  linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias) -> y = x @ dequant(W)^T (+ bias)
  linear_out(..., out) -> None                 the same, written into a caller's contiguous [..., N] buffer
Absent pieces (zeros, global_scale) are passed as empty tensors so that the schema has no optional outputs.
"""
from __future__ import annotations

import torch

from ..formats import FORMATS
from . import _checks as C

_DEFS = {
    "pack_nibbles": "pack_nibbles(Tensor codes) -> Tensor",
    "unpack_nibbles": "unpack_nibbles(Tensor packed) -> Tensor",
    "quantize": "quantize(Tensor w, str fmt, str variant, int group_size) -> (Tensor, Tensor, Tensor, Tensor)",
    "dequantize": "dequantize(Tensor qdata, Tensor scales, Tensor zeros, Tensor global_scale, Tensor lut, "
                  "int group_size, ScalarType dtype) -> Tensor",
    "linear": "linear(Tensor x, Tensor qdata, Tensor scales, Tensor zeros, Tensor global_scale, Tensor lut, "
              "int group_size, Tensor? bias) -> Tensor",
    # the out= form is its own op (opcheck and functionalization want no overloads and no aliased returns)
    "linear_out": "linear_out(Tensor x, Tensor qdata, Tensor scales, Tensor zeros, Tensor global_scale, "
                  "Tensor lut, int group_size, Tensor? bias, Tensor(a!) out) -> ()",
}
for _name, _schema in _DEFS.items():
    torch.library.define(f"fourbit::{_name}", _schema[len(_name):])


def quantize_out_meta(w: torch.Tensor, fmt: str, variant: str, group_size: int):
    """Empty outputs of quantize with the right shapes and dtypes (used by the fake and by the kernels)."""
    cls = FORMATS[fmt]
    N, K = w.shape
    if cls.bits == 4:
        qdata = w.new_empty((N, K // 2), dtype=torch.uint8)
    else:
        qdata = w.new_empty((N, K), dtype=torch.int8 if variant == "sym" else torch.uint8)
    scales = w.new_empty((N, K // group_size), dtype=cls.scale_dtype)
    has_zeros = variant == "asym"
    zeros = w.new_empty((N, K // group_size) if has_zeros else (0,), dtype=torch.uint8)
    gscale = w.new_empty((1,) if cls.has_global_scale else (0,), dtype=torch.float32)
    return qdata, scales, zeros, gscale


@torch.library.register_fake("fourbit::pack_nibbles")
def _(codes):
    C.check_codes(codes)
    return codes.new_empty((*codes.shape[:-1], codes.shape[-1] // 2))


@torch.library.register_fake("fourbit::unpack_nibbles")
def _(packed):
    C.check_packed(packed)
    return packed.new_empty((*packed.shape[:-1], packed.shape[-1] * 2))


@torch.library.register_fake("fourbit::quantize")
def _(w, fmt, variant, group_size):
    C.check_quantize(w, fmt, variant, group_size)
    return quantize_out_meta(w, fmt, variant, group_size)


@torch.library.register_fake("fourbit::dequantize")
def _(qdata, scales, zeros, global_scale, lut, group_size, dtype):
    N, K = C.check_weight(qdata, scales, zeros, global_scale, lut, group_size)
    C.check_type(dtype in C.ACT_DTYPES, lambda: f"dtype must be one of {C.ACT_DTYPES}, got {dtype}")
    return qdata.new_empty((N, K), dtype=dtype)


@torch.library.register_fake("fourbit::linear")
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias):
    M, N, K = C.check_linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias)
    return x.new_empty((*x.shape[:-1], N))


@torch.library.register_fake("fourbit::linear_out")
def _(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out):
    check_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out)


def check_out(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out):
    """linear's checks plus the output buffer's: x's dtype, shape [..., N], contiguous, same device."""
    M, N, K = C.check_linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias)
    C.check_type(out.dtype == x.dtype, lambda: f"out must have x's dtype {x.dtype}, got {out.dtype}")
    C.shape_is("out", out, (*x.shape[:-1], N))
    C.contiguous("out", out)
    C.same_device("x", x, out=out)
    return M, N, K


# --- autograd: linear is differentiable in x and bias (the quantized weight is frozen, as in QLoRA) -------------

def _linear_setup(ctx, inputs, output):
    x, qdata, scales, zeros, global_scale, lut, group_size, bias = inputs
    ctx.save_for_backward(qdata, scales, zeros, global_scale, lut)
    ctx.group_size, ctx.x_dtype, ctx.has_bias = group_size, x.dtype, bias is not None


def _linear_backward(ctx, grad):
    qdata, scales, zeros, global_scale, lut = ctx.saved_tensors
    w = torch.ops.fourbit.dequantize(qdata, scales, zeros, global_scale, lut, ctx.group_size, ctx.x_dtype)
    grad_x = grad @ w
    grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias else None
    return grad_x, None, None, None, None, None, None, grad_bias


torch.library.register_autograd("fourbit::linear", _linear_backward, setup_context=_linear_setup)
