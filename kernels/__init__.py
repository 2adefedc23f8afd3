"""fourbit.kernels: Triton GPU kernels (they also run under the Triton interpreter, TRITON_INTERPRET=1).

Launchers take and return torch tensors exactly like the CPU launchers in fourbit.ops._native, with no validation
(the op layer validates first):
  pack_nibbles(codes) -> packed                         uint8 [..., 2n] -> [..., n], element 2i in the LOW nibble
  unpack_nibbles(packed) -> codes                       inverse of pack_nibbles
  quantize(w, fmt, variant, group_size) -> (qdata, scales, zeros, global_scale)      bit-exact with the references
  dequantize(qdata, scales, zeros, global_scale, lut, group_size, dtype) -> [N, K]   bit-exact
  linear(x, qdata, scales, zeros, global_scale, lut, group_size, bias, out=None) -> x @ dequant(W)^T (+ bias)
  linear_scaled(x, qdata, scales, global_scale, fmt, bias, act, variant="floor") -> nvfp4/mxfp4 via tl.dot_scaled
Modules: codecs (element codecs), pack, quantize, dequantize, gemm (fused dequant + tl.dot), gemm_scaled.
"""
from .dequantize import dequantize
from .gemm import linear
from .gemm_scaled import linear_scaled
from .pack import pack_nibbles, unpack_nibbles
from .quantize import quantize

__all__ = ["pack_nibbles", "unpack_nibbles", "quantize", "dequantize", "linear", "linear_scaled"]
