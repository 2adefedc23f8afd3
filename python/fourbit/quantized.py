"""QuantizedWeight and the functional API: quantize / dequantize / linear through the registered ops."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .formats import Format, PRESETS, make_format
from .formats._absmax import DoubleQuant, compress
from .ops import eager


@dataclass
class QuantizedWeight:
    """A quantized [N, K] weight (N = out_features, K = in_features) and the pieces it is stored as.

    qdata: uint8 [N, K/2] packed 4-bit codes (element 2i in the LOW nibble), or int8/uint8 [N, K] for int8.
    scales: [N, K/G] float32 / float8_e4m3fn / float8_e8m0fnu (None when `nested` holds them, double quant);
        [N*K/G, 1] when K is not a multiple of G (groups of G consecutive row-major elements then cross rows).
    zeros: uint8, shaped like scales, or None. global_scale: float32 [1] or None. nested: double-quantized scales or None.
    """

    format: Format
    shape: Tuple[int, int]
    qdata: torch.Tensor
    scales: Optional[torch.Tensor]
    zeros: Optional[torch.Tensor] = None
    global_scale: Optional[torch.Tensor] = None
    nested: Optional[DoubleQuant] = None

    def stored_tensors(self):
        """name -> tensor of everything this weight keeps in memory."""
        t = {"qdata": self.qdata, "scales": self.scales, "zeros": self.zeros, "global_scale": self.global_scale}
        if self.nested is not None:
            t.update(nested_codes=self.nested.codes, nested_absmax=self.nested.absmax,
                     nested_offset=self.nested.offset)
        return {k: v for k, v in t.items() if v is not None}

    @property
    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.stored_tensors().values())

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / (self.shape[0] * self.shape[1])

    @property
    def device(self) -> torch.device:
        return self.qdata.device

    def op_args(self):
        """(qdata, scales, zeros, global_scale, lut, group_size) as the ops take them (absent pieces empty).

        Groups that run across rows (K not a multiple of G) reach the kernels as per-row sub-groups of
        gcd(K, G), each carrying its group's scale and zero point."""
        dev = self.qdata.device
        N, K = self.shape
        scales = self.scales if self.nested is None else self.nested.decode()
        zeros = self.zeros
        G, Gk = self.format.group(K), self.format.kernel_group(K)
        if Gk != G:
            idx = _subgroup_index(N, K, G, Gk, dev)
            scales = scales.reshape(-1)[idx]
            zeros = None if zeros is None else zeros.reshape(-1)[idx]
        return (self.qdata, scales.reshape(N, K // Gk),
                torch.empty(0, dtype=torch.uint8, device=dev) if zeros is None else zeros.reshape(N, K // Gk),
                torch.empty(0, dtype=torch.float32, device=dev) if self.global_scale is None else self.global_scale,
                _lut(self.format, dev), Gk)

    def eager_plan(self) -> "eager.Plan":
        """The checked op arguments for fourbit.ops.eager, cached while the stored tensors are the same objects
        (not for double-quantized scales or row-crossing groups, whose op arguments are computed per call)."""
        return eager.plan_for(self, tuple(self.stored_tensors().values()), self.op_args, self.cacheable())

    def cacheable(self) -> bool:
        """Whether op_args() are views of the stored tensors (no double-quantized scales, no row-crossing groups),
        so a cached plan sees in-place updates."""
        return self.nested is None and self.format.kernel_group(self.shape[1]) == self.format.group(self.shape[1])

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[N, K] of dtype: ((lut[code] - zero) * scale) * global_scale, computed in float32."""
        return torch.ops.fourbit.dequantize(*self.op_args(), dtype)

    def to(self, device) -> "QuantizedWeight":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        nested = None if self.nested is None else DoubleQuant(*(mv(t) for t in (self.nested.codes,
                                                                              self.nested.absmax,
                                                                              self.nested.offset)))
        return QuantizedWeight(self.format, self.shape, mv(self.qdata), mv(self.scales), mv(self.zeros),
                               mv(self.global_scale), nested)

    def __repr__(self) -> str:
        return (f"QuantizedWeight({self.format}, shape={self.shape}, {self.nbytes} bytes, "
                f"{self.bits_per_weight:.3f} bits/weight, device={self.device})")


_LUTS: dict = {}
_SUBGROUPS: dict = {}


def stored_rows(fmt: Format, N: int, K: int) -> Tuple[int, int]:
    """Shape the quantize op sees: [N, K], or [N*K/G, G] when groups run across rows (the same bytes, row-major)."""
    G = fmt.group(K)
    return (N, K) if K % G == 0 else (N * K // G, G)


def _subgroup_index(N: int, K: int, G: int, Gk: int, device) -> torch.Tensor:
    """int64 [N, K/Gk]: the flat group (n*K + j*Gk) // G of each per-row sub-group of Gk elements, cached."""
    key = (N, K, G, Gk, str(device))
    if key not in _SUBGROUPS:
        n = torch.arange(N, device=device).view(-1, 1)
        j = torch.arange(K // Gk, device=device).view(1, -1)
        _SUBGROUPS[key] = (n * K + j * Gk) // G
    return _SUBGROUPS[key]


def _lut(fmt: Format, device: torch.device) -> torch.Tensor:
    """The format's 16-entry lookup table on `device`, cached (it is read on every call)."""
    key = (fmt.name, fmt.variant, str(device))
    if key not in _LUTS:
        _LUTS[key] = fmt.lut().to(device)
    return _LUTS[key]


def resolve_format(fmt) -> Format:
    """A Format, or a preset/format name."""
    if isinstance(fmt, Format):
        return fmt
    if isinstance(fmt, str):
        return make_format(fmt)
    raise TypeError(f"format must be a fourbit.formats.Format or a name in {sorted(PRESETS)}, got {type(fmt)}")


def quantize(w: torch.Tensor, fmt) -> QuantizedWeight:
    """Quantize a weight. w: float32/bfloat16/float16 [N, K] (out_features x in_features); fmt: Format or name."""
    fmt = resolve_format(fmt)
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise ValueError(f"w must be a 2-D tensor [N, K], got {getattr(w, 'shape', type(w))}")
    fmt.check_shape(*w.shape)
    N, K = w.shape
    rows = w.contiguous().reshape(stored_rows(fmt, N, K))  # groups of G consecutive row-major elements
    qdata, scales, zeros, gscale = torch.ops.fourbit.quantize(rows, fmt.name, fmt.variant, fmt.group(K))
    qdata = qdata.reshape(N, -1)
    nested = None
    if getattr(fmt, "double_quant", False):
        # on the CPU whatever the device: the offset is a mean, whose float32 bits depend on the reduction order,
        # and this keeps the stored statistics identical everywhere (and equal to bitsandbytes' CPU path)
        nested = compress(scales.reshape(-1).cpu())
        nested, scales = DoubleQuant(*(t.to(scales.device) for t in (nested.codes, nested.absmax,
                                                                       nested.offset))), None
    return QuantizedWeight(fmt, tuple(w.shape), qdata, scales, zeros if zeros.numel() else None,
                           gscale if gscale.numel() else None, nested)


def dequantize(qw: QuantizedWeight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[N, K] dense weight of dtype."""
    return qw.dequantize(dtype)


def linear(x: torch.Tensor, qw: QuantizedWeight, bias: Optional[torch.Tensor] = None,
           act: Optional[str] = None) -> torch.Tensor:
    """y = x @ dequant(W)^T (+ bias). x: [..., K] float32/bfloat16/float16 contiguous; y: [..., N] of x's dtype.
    Accumulates in float32. Differentiable in x and bias. Plain eager CUDA calls skip the op dispatch
    (fourbit.ops.eager); everything else goes through torch.ops.fourbit.linear.
    act: None / "bf16" (W4A16, the default) or "fp8_e4m3": W4A8, x quantized per row to FP8 E4M3 and multiplied on
    FP8 tensor cores (int4 and mxfp4 weights only; torch.ops.fourbit.w4a8_linear, fourbit/ops/w4a8.py)."""
    from .ops import w4a8  # noqa: PLC0415
    if w4a8.check_act(act) == "fp8_e4m3":
        if eager.usable(x, bias):  # plain eager CUDA call: replayed (fourbit.ops.eager)
            plan = eager.w4a8_plan_for(qw, tuple(qw.stored_tensors().values()), lambda: w4a8.w4a8_args(qw),
                                       qw.cacheable())
            y = eager.w4a8_linear(x, plan, bias)
            if y is not None:
                return y
        return torch.ops.fourbit.w4a8_linear(x, *w4a8.w4a8_args(qw), bias)
    if eager.usable(x, bias):
        y = eager.linear(x, qw.eager_plan(), bias)
        if y is not None:
            return y
    return torch.ops.fourbit.linear(x, *qw.op_args(), bias)
