"""Integer grids shared by int4 and int8 (the seed formulas; GPTQ/AWQ-style scale and zero point).

Symmetric: s = amax / qmax, q = clamp(RNE(x / s), qmin, qmax), x' = q * s.
Asymmetric: the range [mn, mx] is widened to hold 0 (so 0 is exact and a constant group still has a range),
s = (mx - mn) / (2^bits - 1), z = clamp(RNE(-mn / s), 0, 2^bits - 1), q = clamp(RNE(x / s) + z, 0, 2^bits - 1),
x' = (q - z) * s. A zero scale becomes 1. RNE is round-half-to-even (torch.round), on x / s computed in float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple

import torch

from ._base import Format, QuantParts, bad_groups, expand_groups, finite_or_zero, grouped, nonzero_scale, poison_bound, slack


def quantize(w: torch.Tensor, G: int, bits: int, symmetric: bool, qmin: int, qmax: int, code_offset: int,
             code_dtype: torch.dtype) -> QuantParts:
    """Reference integer quantizer. The stored code is q + code_offset (int4 sym stores q + 8 in a nibble)."""
    wg = grouped(w, G)
    bad = bad_groups(wg)
    wf = finite_or_zero(wg)
    if symmetric:
        s = nonzero_scale(wf.abs().amax(dim=-1) / float(qmax))
        q = torch.round(wf / s[..., None]).clamp(qmin, qmax)
        zeros = None
    else:
        levels = float(2**bits - 1)
        mn = wf.amin(dim=-1).clamp(max=0.0)
        mx = wf.amax(dim=-1).clamp(min=0.0)
        s = nonzero_scale((mx - mn) / levels)
        z = torch.round(-mn / s).clamp(0, levels)
        q = (torch.round(wf / s[..., None]) + z[..., None]).clamp(0, levels)
        z = torch.where(bad, torch.zeros((), dtype=z.dtype), z)
        zeros = z.to(torch.uint8)
    q = torch.where(bad[..., None], torch.zeros((), dtype=q.dtype), q)  # zero code: dequantizes to 0 * NaN = NaN
    s = torch.where(bad, torch.full((), float("nan")), s)
    codes = (q + code_offset).to(code_dtype).reshape(w.shape)
    return QuantParts(codes=codes, scales=s, zeros=zeros)


def error_bound(w: torch.Tensor, G: int, parts: QuantParts, qmin: float, qmax: float) -> torch.Tensor:
    """Worst case per element, given the group scales s.

    Symmetric: |x / s| <= qmax when s is exact, so nothing clips and RNE errs by at most s / 2.
    Asymmetric: RNE(x / s) errs by s / 2, and the rounded zero point shifts the grid by up to half a step, so the
    top of the range can clip by up to another s / 2: at most s in all.
    A subnormal s (a group of tiny values) rounds with few significant bits, so s can land well below amax / qmax
    and values outside the grid [(qmin - z) s, (qmax - z) s] clip: add their distance to it (hypothesis found
    this with weights near 1e-43). Plus float32 slack (x / s, the product, the subtraction each round once).
    """
    wg = grouped(w, G)
    s = parts.scales.float()
    z = torch.zeros_like(s) if parts.zeros is None else parts.zeros.float()
    half = 0.5 if parts.zeros is None else 1.0
    x = w.float()
    lo, hi = expand_groups((qmin - z) * s, G), expand_groups((qmax - z) * s, G)
    bound = expand_groups(half * s, G) + (x - hi).clamp(min=0) + (lo - x).clamp(min=0)
    return poison_bound(bound + slack(x, bound), bad_groups(wg), G)


@dataclass(frozen=True)
class IntegerFormat(Format):
    """Shared config of int4 and int8: a group size (None: per channel) and a symmetric flag."""

    group_size: Optional[int] = None
    symmetric: bool = True

    sym_range: ClassVar[Tuple[int, int, int]]  # symmetric (qmin, qmax, code offset)

    def check_group_size(self) -> None:
        """Raise ValueError if group_size is not allowed for this format."""
        raise NotImplementedError

    def __post_init__(self):
        self.check_group_size()
        if not isinstance(self.symmetric, bool):
            raise TypeError(f"{self.name}: symmetric must be a bool, got {self.symmetric!r}")

    @property
    def has_zeros(self) -> bool:  # type: ignore[override]
        return not self.symmetric

    @property
    def variant(self) -> str:
        return "sym" if self.symmetric else "asym"

    def quantize_ref(self, w: torch.Tensor) -> QuantParts:
        G = self.group(w.shape[1])
        if self.symmetric:
            qmin, qmax, offset = self.sym_range
            return quantize(w, G, self.bits, True, qmin, qmax, offset, self.code_dtype())
        return quantize(w, G, self.bits, False, 0, 2**self.bits - 1, 0, torch.uint8)

    def error_bound(self, w: torch.Tensor) -> torch.Tensor:
        qmin, qmax = self.sym_range[:2] if self.symmetric else (0, 2**self.bits - 1)
        return error_bound(w, self.group(w.shape[1]), self.quantize_ref(w), qmin, qmax)
