"""QuantLinear: one nn.Module for every format, y = x @ dequant(W)^T + b through torch.ops.fourbit.linear."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..formats import Format
from ..formats._absmax import NESTED_BLOCK, DoubleQuant
from ..ops import eager, w4a8
from ..ops.library import quantize_out_meta
from ..quantized import QuantizedWeight, quantize, resolve_format, stored_rows

#: the state_dict of a QuantLinear (N = out_features, K = in_features, G = the format's group size)
STATE_DICT_DOC = {
    "qweight": "uint8 [N, K/2]: 4-bit codes, element 2i in the LOW nibble; int8 formats: int8/uint8 [N, K]",
    "scales": "[N, K/G] float32 | float8_e4m3fn (nvfp4) | float8_e8m0fnu (mxfp4); absent with double quant; "
              "[N*K/G, 1] when K is not a multiple of G (groups of G row-major elements cross rows)",
    "zeros": "uint8, shaped like scales: integer zero points (asymmetric int4/int8 only)",
    "global_scale": "float32 [1] per-tensor scale (nvfp4 only)",
    "nested_codes": "uint8 [N*K/G] double-quantized scales (nf4/bnb_fp4 with double_quant)",
    "nested_absmax": "float32 [ceil(N*K/G / 256)] (double quant)",
    "nested_offset": "float32 [1] (double quant)",
    "bias": "[N] in the model's dtype (optional)",
}


def expected_tensors(fmt: Format, N: int, K: int):
    """name -> (shape, dtype) of every tensor a QuantLinear of this format and shape stores (bias excluded)."""
    meta = quantize_out_meta(torch.empty(stored_rows(fmt, N, K), device="meta"), fmt.name, fmt.variant,
                             fmt.group(K))
    out = {"qweight": meta[0].reshape(N, -1), "scales": meta[1], "zeros": meta[2], "global_scale": meta[3]}
    out = {k: (tuple(v.shape), v.dtype) for k, v in out.items() if v.numel()}
    if getattr(fmt, "double_quant", False):
        n = N * (K // fmt.group(K))
        del out["scales"]
        out.update(nested_codes=((n,), torch.uint8), nested_absmax=((-(-n // NESTED_BLOCK),), torch.float32),
                   nested_offset=((1,), torch.float32))
    return out


class QuantLinear(nn.Module):
    """A Linear layer whose weight is stored quantized in `fmt` (any fourbit format).

    Args:
        in_features, out_features: K and N.
        fmt: a fourbit.formats.Format (or preset name).
        bias: whether the layer has a bias.
        bias_dtype: dtype of the bias (the model's dtype).
        act: "bf16" (default, None the same: W4A16) or "fp8_e4m3" (W4A8: x quantized per token to FP8 E4M3, FP8
            tensor cores; int4 / mxfp4 only). A plain module attribute, set by QuantConfig(act=...): it is not in
            the state_dict (whose tensors are those of STATE_DICT_DOC whatever act is), so set it again after
            building a module to load a checkpoint into, or assign `module.act`.
    Build one from a float layer with `QuantLinear.from_linear(linear, fmt)`; the constructor alone allocates
    empty buffers of the right shapes, for loading a state_dict (see STATE_DICT_DOC for the tensor names).
    forward: x [..., K] float32/bfloat16/float16 -> [..., N] of x's dtype; fp32 accumulation; differentiable in x.
    """

    def __init__(self, in_features: int, out_features: int, fmt, bias: bool = True,
                 bias_dtype: torch.dtype = torch.float32, device=None, act: Optional[str] = None):
        super().__init__()
        self.format = resolve_format(fmt)
        self.format.check_shape(out_features, in_features)
        self.act = w4a8.check_act(act)
        if self.act == "fp8_e4m3":
            w4a8.check_format(self.format, in_features)
        self.in_features, self.out_features = in_features, out_features
        for name, (shape, dtype) in expected_tensors(self.format, out_features, in_features).items():
            self.register_buffer(name, torch.zeros(shape, dtype=torch.uint8, device=device).view(dtype)
                                 if dtype.itemsize == 1 else torch.zeros(shape, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=bias_dtype, device=device),
                                 requires_grad=False) if bias else None

    # --- construction --------------------------------------------------------------------------------------------
    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: Optional[torch.Tensor], fmt, act: Optional[str] = None
                    ) -> "QuantLinear":
        """weight: float [N, K] (out x in); bias: [N] or None. Quantizes on weight's device via the ops."""
        N, K = weight.shape
        if w4a8.check_act(act) == "fp8_e4m3":
            w4a8.check_format(fmt, K)  # before the (slow) quantization
        qw = quantize(weight.detach(), fmt)
        mod = cls(K, N, qw.format, bias is not None, bias.dtype if bias is not None else torch.float32,
                  device="meta", act=act)
        mod.load_quantized(qw)
        if bias is not None:
            mod.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        return mod

    @classmethod
    def from_linear(cls, linear: nn.Module, fmt, act: Optional[str] = None) -> "QuantLinear":
        """From nn.Linear, or Hugging Face's Conv1D (which stores its weight transposed, [in, out])."""
        weight = linear.weight
        if type(linear).__name__ == "Conv1D":
            weight = weight.t()
        return cls.from_weight(weight, linear.bias, fmt, act)

    def load_quantized(self, qw: QuantizedWeight) -> None:
        """Take the pieces of a QuantizedWeight as this module's buffers."""
        pieces = {"qweight": qw.qdata, "scales": qw.scales, "zeros": qw.zeros, "global_scale": qw.global_scale}
        if qw.nested is not None:
            pieces.update(nested_codes=qw.nested.codes, nested_absmax=qw.nested.absmax,
                          nested_offset=qw.nested.offset)
        for name in expected_tensors(self.format, self.out_features, self.in_features):
            setattr(self, name, pieces[name])

    # --- use -----------------------------------------------------------------------------------------------------
    def quantized_weight(self) -> QuantizedWeight:
        """The stored weight as a QuantizedWeight (views of this module's buffers)."""
        nested = None
        if hasattr(self, "nested_codes"):
            nested = DoubleQuant(self.nested_codes, self.nested_absmax, self.nested_offset)
        return QuantizedWeight(self.format, (self.out_features, self.in_features), self.qweight,
                               getattr(self, "scales", None), getattr(self, "zeros", None),
                               getattr(self, "global_scale", None), nested)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        if not torch.compiler.is_compiling() and x.data_ptr() % 16:
            x = x.clone()  # the ops need 16-byte-aligned activations; a fresh copy is
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if getattr(self, "act", "bf16") == "fp8_e4m3":
            if eager.usable(x, bias):  # plain eager CUDA call: replayed (fourbit.ops.eager)
                plan = eager.w4a8_plan_for(self, tuple(self._buffers.values()),
                                           lambda: w4a8.w4a8_args(self.quantized_weight()), self._cacheable())
                y = eager.w4a8_linear(x, plan, bias)
                if y is not None:
                    return y
            return torch.ops.fourbit.w4a8_linear(x, *w4a8.w4a8_args(self.quantized_weight()), bias)
        if eager.usable(x, bias):  # plain eager CUDA call: skip the op dispatch (fourbit.ops.eager)
            t = tuple(self._buffers.values())
            plan = eager.plan_for(self, t, lambda: self.quantized_weight().op_args(), self._cacheable())
            y = eager.linear(x, plan, bias)
            if y is not None:
                return y
        return torch.ops.fourbit.linear(x, *self.quantized_weight().op_args(), bias)

    def _cacheable(self) -> bool:  # QuantizedWeight.cacheable for this module's buffers
        K = self.in_features
        return not hasattr(self, "nested_codes") and self.format.kernel_group(K) == self.format.group(K)

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_fourbit_plan", None)  # .to() / .cuda() replace the buffers: drop the old plans' refs
        self.__dict__.pop("_fourbit_w4a8_plan", None)
        return super()._apply(fn, *args, **kwargs)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The dense [out_features, in_features] weight (for debugging)."""
        return self.quantized_weight().dequantize(dtype)

    @property
    def nbytes(self) -> int:
        """Bytes of the quantized weight (bias excluded)."""
        return self.quantized_weight().nbytes

    def extra_repr(self) -> str:
        G = self.format.group(self.in_features)
        group = "per-channel" if G == self.in_features else f"group={G}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"format={self.format.name}{'/' + self.format.variant if self.format.variant else ''}, {group}, "
                f"{'act=fp8_e4m3 (W4A8), ' if getattr(self, 'act', 'bf16') == 'fp8_e4m3' else ''}"
                f"{self.nbytes} bytes ({8 * self.nbytes / (self.in_features * self.out_features):.2f} bits/weight)")

    # --- checkpoints: reject truncated / misshapen / mistyped tensors, naming them ---------------------------------
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name, (shape, dtype) in expected_tensors(self.format, self.out_features, self.in_features).items():
            t = state_dict.get(prefix + name)
            if t is None:
                continue  # reported as missing by torch
            if t.dtype != dtype:
                raise ValueError(f"checkpoint tensor {prefix + name} has dtype {t.dtype}, expected {dtype} "
                                 f"for {self.format.name} [{self.out_features}, {self.in_features}]")
            if tuple(t.shape) != shape:
                raise ValueError(f"checkpoint tensor {prefix + name} has shape {tuple(t.shape)}, expected {shape} "
                                 f"for {self.format.name} [{self.out_features}, {self.in_features}] "
                                 f"(truncated or from another format/shape)")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
