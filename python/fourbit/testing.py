"""fourbit.testing: what another project's CI needs to check its own 4-bit kernels and models against fourbit.

- FP32 references: `reference_quantize`, `reference_dequantize`, `reference_linear` (plain PyTorch, no kernels).
- Worst-case error bounds for a given input: `error_bound(fmt, w)` (quantization round trip, derived per format in
  fourbit/formats/*.py) and `matmul_error_bound(x, w, out_dtype)` (float32 accumulation, derived below).
- Assertions that report the worst element, its index and the bound it broke: `assert_bit_exact`,
  `assert_within_bound`, `assert_quantization_error`, `assert_linear_close`.
"""
from __future__ import annotations

from typing import Optional

import torch

from .formats import Format, QuantParts
from .formats._base import U32
from .layout import pack_nibbles_ref
from .quantized import QuantizedWeight, resolve_format, stored_rows

#: unit roundoff of each output dtype (half an ulp at 1.0)
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
#: smallest positive subnormal of each dtype (absolute rounding floor near zero)
TINY = {torch.float32: 2.0**-149, torch.bfloat16: 2.0**-133, torch.float16: 2.0**-24}


# --- references ---------------------------------------------------------------------------------------------------

def _rows(w: torch.Tensor, fmt: Format) -> torch.Tensor:
    """w as the quantizer groups it: [N, K], or [N*K/G, G] when groups of G row-major elements cross rows."""
    return w.detach().cpu().reshape(stored_rows(fmt, *w.shape))


def reference_parts(w: torch.Tensor, fmt) -> QuantParts:
    """The format's FP32 reference quantization of w [N, K] (viewed as [N*K/G, G] when K % G != 0), codes
    unpacked."""
    fmt = resolve_format(fmt)
    return fmt.quantize_ref(_rows(w, fmt))


def reference_quantize(w: torch.Tensor, fmt) -> QuantizedWeight:
    """A QuantizedWeight built by the plain-PyTorch reference (packed like the kernels' output)."""
    fmt = resolve_format(fmt)
    p = reference_parts(w, fmt)
    qdata = (pack_nibbles_ref(p.codes) if fmt.bits == 4 else p.codes).reshape(w.shape[0], -1)
    nested = getattr(p, "nested", None)
    return QuantizedWeight(fmt, tuple(w.shape), qdata, None if nested is not None else p.scales, p.zeros,
                           p.global_scale, nested)


def reference_dequantize(w: torch.Tensor, fmt) -> torch.Tensor:
    """float32 [N, K]: dequantize(quantize(w)) computed entirely by the reference."""
    fmt = resolve_format(fmt)
    return fmt.dequantize_ref(fmt.quantize_ref(_rows(w, fmt))).reshape(w.shape)


def reference_linear(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """float64 oracle of y = x @ w^T (+ bias); w is the dense (dequantized) weight."""
    y = x.detach().double().cpu() @ w.detach().double().cpu().T
    return y if bias is None else y + bias.detach().double().cpu()


# --- bounds --------------------------------------------------------------------------------------------------------

def error_bound(fmt, w: torch.Tensor) -> torch.Tensor:
    """float32 like w: the worst-case |dequantize(quantize(w)) - w| per element for this input (+inf in groups
    holding NaN/Inf, which dequantize to NaN by policy). Each format derives its bound in its module."""
    fmt = resolve_format(fmt)
    return fmt.error_bound(_rows(w, fmt)).reshape(w.shape)


def matmul_error_bound(x: torch.Tensor, w: torch.Tensor, out_dtype: torch.dtype,
                       bias: Optional[torch.Tensor] = None, operand_dtype: torch.dtype = torch.float32,
                       operand_roundings: float = 1.0) -> torch.Tensor:
    """Worst-case |y - y_exact| of y = x @ w^T (+ bias) accumulated in float32 then rounded to out_dtype.

    Derivation: a K-term float32 dot product, summed in any order with or without FMA, errs by at most
    gamma_K * sum_k |x_k w_k| with gamma_K = K u / (1 - K u) and u = 2^-24 (Higham, Accuracy and Stability, 3.1);
    we use 1.01 K u (valid for K u < 0.0099, i.e. K < 1.6e5). The bias add rounds once more (u |y|), and the
    conversion to out_dtype rounds once (u_out |y|, bf16 2^-8, fp16 2^-11), with an absolute floor of the dtype's
    smallest subnormal. bf16/fp16 inputs convert to float32 exactly, so they add nothing.
    operand_dtype: when a tensor-core kernel rounds the dequantized weight to bf16/fp16 before multiplying (x is
    already in that dtype), each product carries operand_roundings more relative errors of that dtype's unit
    roundoff (1 when the weight is rounded once; a kernel that rounds lut - z, s and their product separately in
    bf16 needs ~4.1, since (1 + u)^4 - 1 <= 4.1 u), plus half that dtype's smallest subnormal per |x_k| (fp16
    weights can be subnormal). Tensor cores do not promise round-to-nearest fp32 accumulation, so the
    accumulation term is doubled for them. This is what the same computation in bf16/fp16 achieves.
    """
    K = x.shape[-1]
    absdot = x.detach().double().abs().cpu() @ w.detach().double().abs().cpu().T
    y = reference_linear(x, w, bias).abs()
    tensor_core = operand_dtype != torch.float32
    acc = ((2.02 if tensor_core else 1.01) * K * U32 + operand_roundings * UNIT_ROUNDOFF[operand_dtype]) * absdot
    if tensor_core:
        acc = acc + operand_roundings * 0.5 * TINY[operand_dtype] * x.detach().double().abs().cpu().sum(-1, True)
    b = acc + U32 * y + UNIT_ROUNDOFF[out_dtype] * (y + acc)
    return b + TINY[out_dtype] + TINY[torch.float32]


# --- assertions ----------------------------------------------------------------------------------------------------

def _where(t: torch.Tensor, flat_index: int):
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_index), t.shape))


def assert_bit_exact(actual: torch.Tensor, expected: torch.Tensor, name: str = "tensor") -> None:
    """Same shape, dtype and bits (any NaN matches any NaN; -0.0 differs from 0.0). Reports the first mismatch and
    the count."""
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise AssertionError(f"{name}: got {actual.dtype}{tuple(actual.shape)}, "
                             f"expected {expected.dtype}{tuple(expected.shape)}")
    a, e = actual.detach().cpu().contiguous(), expected.detach().cpu().contiguous()
    if a.is_floating_point() and a.element_size() > 1:  # NaN matches NaN whatever its sign and payload bits
        nan_a, nan_e = torch.isnan(a), torch.isnan(e)
        a, e = torch.where(nan_a, torch.full((), float("nan"), dtype=a.dtype), a), \
            torch.where(nan_e, torch.full((), float("nan"), dtype=e.dtype), e)
    if a.element_size() in (1, 2, 4, 8) and a.is_floating_point():
        view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        a, e = a.view(view), e.view(view)
    diff = (a != e).flatten()
    n = int(diff.sum())
    if n:
        i = int(torch.nonzero(diff)[0])
        raise AssertionError(f"{name}: {n} of {diff.numel()} elements differ; first at index "
                             f"{_where(actual, i)}: got {actual.flatten()[i].item()!r}, "
                             f"expected {expected.flatten()[i].item()!r}")


def assert_within_bound(actual: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor,
                        name: str = "tensor") -> None:
    """|actual - expected| <= bound elementwise (float64). NaN in actual passes only where expected is NaN too.
    Reports the element with the largest error / bound."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    b = bound.detach().double().cpu().expand_as(e)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {tuple(a.shape)} != expected {tuple(e.shape)}")
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    if not torch.equal(nan_a, nan_e):
        i = int(torch.nonzero((nan_a != nan_e).flatten())[0])
        raise AssertionError(f"{name}: NaN mismatch at {_where(e, i)}: got {a.flatten()[i].item()}, "
                             f"expected {e.flatten()[i].item()}")
    err = torch.where(nan_e, torch.zeros(()), (a - e).abs())
    ratio = torch.where(b > 0, err / b, torch.where(err > 0, torch.full((), float("inf")), torch.zeros(())))
    i = int(torch.argmax(ratio.flatten()))
    if ratio.flatten()[i] > 1:
        raise AssertionError(
            f"{name}: {int((ratio > 1).sum())} of {ratio.numel()} elements exceed the bound; worst at "
            f"{_where(e, i)}: got {a.flatten()[i].item()!r}, expected {e.flatten()[i].item()!r}, "
            f"|error| {err.flatten()[i].item():.3e} > bound {b.flatten()[i].item():.3e} "
            f"({ratio.flatten()[i].item():.3g}x)")


def assert_quantization_error(fmt, w: torch.Tensor, w_dequantized: torch.Tensor, name: str = "") -> None:
    """w_dequantized (from any implementation) is within the format's worst-case bound of w."""
    fmt = resolve_format(fmt)
    wf = w.detach().float().cpu()
    assert_within_bound(w_dequantized.float(), torch.where(torch.isfinite(wf), wf, torch.full((), float("nan"))),
                        error_bound(fmt, wf), name or f"{fmt} round trip")


def assert_linear_close(y: torch.Tensor, x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor] = None,
                        name: str = "linear", operand_dtype: torch.dtype = torch.float32,
                        operand_roundings: float = 1.0) -> None:
    """y (from any kernel) matches x @ w^T (+ bias) within float32-accumulation error (see matmul_error_bound);
    operand_dtype=torch.bfloat16 / float16 allows the weight's rounding to that dtype in tensor-core kernels."""
    x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    assert_within_bound(y2, reference_linear(x2, w, bias),
                        matmul_error_bound(x2, w, y.dtype, bias, operand_dtype, operand_roundings), name)


__all__ = ["reference_parts", "reference_quantize", "reference_dequantize", "reference_linear", "error_bound",
           "matmul_error_bound", "assert_bit_exact", "assert_within_bound", "assert_quantization_error",
           "assert_linear_close", "Format"]
