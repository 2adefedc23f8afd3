"""mxfp4 (OCP MX v1.0): fp4_e2m1 elements with one E8M0 (power-of-two) scale per 32 elements along K.

Scale exponent e per block, bmax = max |x| over the block:
  "floor" (the OCP spec rule): e = floor(log2(bmax)) - 2, so bmax / 2^e lies in [4, 8): values above 6 clip to 6.
  "rceil" (NVIDIA/cuBLAS): e = ceil(log2(bmax / 6)) with bmax / 6 rounded in float32, so nothing clips.
  Both are exact (read off frexp, subnormals included); bmax = 0 gives e = -127; e is clamped to [-127, 127] and
  stored as the byte e + 127 (float8_e8m0fnu). Element: code = fp4_e2m1.encode(x * 2^-e), an exact scaling.
Dequantize: e2m1 * 2^e.
NaN/Inf policy: a block holding NaN or Inf gets the E8M0 NaN scale (0xFF) and code 0, so it dequantizes to NaN.
Storage: codes uint8 (element 2i in the LOW nibble), scales float8_e8m0fnu [N, K/32].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import fp4_e2m1
from ._base import Format, QuantParts, bad_groups, finite_or_zero, grouped, poison_bound, slack

BLOCK = 32
RULES = ("floor", "rceil")


def scale_exponent(bmax: torch.Tensor, rule: str) -> torch.Tensor:
    """int32 exponent e of the E8M0 scale 2^e for block maxima bmax (float32), clamped to [-127, 127]."""
    if rule == "floor":
        m, ex = torch.frexp(bmax)  # bmax = m * 2^ex, m in [0.5, 1): floor(log2 bmax) = ex - 1
        e = ex - 1 - 2
        zero = bmax == 0
    else:
        t = bmax / fp4_e2m1.MAX
        m, ex = torch.frexp(t)  # ceil(log2 t) = ex - 1 when t is a power of two (m == 0.5), else ex
        e = torch.where(m == 0.5, ex - 1, ex)
        zero = t == 0
    return torch.where(zero, torch.full((), -127, dtype=e.dtype), e).clamp(-127, 127).to(torch.int32)


@dataclass(frozen=True)
class MXFP4(Format):
    """scale_rule: "floor" (OCP spec, default) or "rceil" (cuBLAS)."""

    scale_rule: str = "floor"

    name: ClassVar[str] = "mxfp4"
    bits: ClassVar[int] = 4
    scale_dtype: ClassVar[torch.dtype] = torch.float8_e8m0fnu

    def __post_init__(self):
        if self.scale_rule not in RULES:
            raise ValueError(f"mxfp4: scale_rule must be one of {RULES}, got {self.scale_rule!r}")

    @property
    def group_size(self) -> int:
        return BLOCK

    @property
    def variant(self) -> str:
        return self.scale_rule

    def lut(self) -> torch.Tensor:
        return fp4_e2m1.LUT.clone()

    def _exponents(self, w: torch.Tensor):
        wg = grouped(w, BLOCK)
        wf = finite_or_zero(wg)
        return wf, bad_groups(wg), scale_exponent(wf.abs().amax(dim=-1), self.scale_rule)

    def quantize_ref(self, w: torch.Tensor) -> QuantParts:
        wf, bad, e = self._exponents(w)
        codes = fp4_e2m1.encode(torch.ldexp(wf, -e[..., None].float()))
        codes = torch.where(bad[..., None], torch.zeros((), dtype=torch.uint8), codes).reshape(w.shape)
        byte = torch.where(bad, torch.full((), 255, dtype=torch.int32), e + 127).to(torch.uint8)
        return QuantParts(codes=codes, scales=byte.view(torch.float8_e8m0fnu))

    def error_bound(self, w: torch.Tensor) -> torch.Tensor:
        """fp4_e2m1.rounding_error(x / 2^e) * 2^e per element: half the e2m1 gap, or the excess over 6 that clips
        (up to 2 * 2^e under "floor", where bmax / 2^e reaches [6, 8)), plus float32 slack."""
        wf, bad, e = self._exponents(w)
        step = torch.ldexp(torch.ones((), dtype=torch.float64), e.double())[..., None]
        bound = (fp4_e2m1.rounding_error(wf.double() / step) * step).reshape(w.shape).float()
        return poison_bound(bound + slack(w.float(), bound), bad, BLOCK)
