"""nvfp4: fp4_e2m1 elements, one FP8 E4M3 scale per 16 elements along K, one float32 scale per tensor.

The NVIDIA Model Optimizer recipe, with fourbit's operation order written down (it decides exact ties):
  A = max |x| over the finite elements of the tensor; g = A / 2688 (6 * 448) in float32, and 1 if that is 0;
  per block: sf = bmax / (6 * g) (the product rounds first); s = E4M3(sf), round to nearest even with saturation
  at 448 (subnormals down to 2^-9), and 1.0 if that is 0;
  element: v = x / (s * g) (the product rounds first, then the true division); code = fp4_e2m1.encode(v). Where
  s * g underflows to 0 (a tensor whose amax is below ~5e-42), x = +-0 gives v = x (code 0 / 8), not 0 / 0.
  Dequantize: (e2m1 * s) * g. e2m1 * s has at most 6 significant bits, so it is exact in float32 and in bf16; only
  the global scale rounds.
torchao instead computes x * ((1 / g) / s); on a block where s * g is exactly 1 a tie such as 0.75 can land on
the other side (see shared FORMATS.md). compressed-tensors stores 1 / g ("weight_global_scale"); importers invert it.
NaN/Inf policy: a block holding NaN or Inf gets the E4M3 NaN scale (0x7F) and code 0, so it dequantizes to NaN; the
global amax skips non-finite values, so the other blocks are unaffected.
Storage: codes uint8 (element 2i in the LOW nibble), scales float8_e4m3fn [N, K/16], global_scale float32 [1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import fp4_e2m1
from ._base import Format, QuantParts, bad_groups, finite_or_zero, grouped, poison_bound, slack

BLOCK = 16
E4M3_MAX = 448.0


def e4m3(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float8_e4m3fn, round to nearest even, saturating at +-448 (NaN stays NaN)."""
    return x.float().clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def global_scale(w: torch.Tensor) -> torch.Tensor:
    """float32 [1]: amax over finite elements / (6 * 448); 1 when that is 0."""
    a = finite_or_zero(w.float()).abs().amax()
    g = a / (fp4_e2m1.MAX * E4M3_MAX)
    return torch.where(g == 0, torch.ones(()), g).reshape(1)


@dataclass(frozen=True)
class NVFP4(Format):
    """No parameters: the block is 16 elements with an E4M3 scale, plus one float32 scale per tensor."""

    name: ClassVar[str] = "nvfp4"
    bits: ClassVar[int] = 4
    scale_dtype: ClassVar[torch.dtype] = torch.float8_e4m3fn
    has_global_scale: ClassVar[bool] = True

    @property
    def group_size(self) -> int:
        return BLOCK

    def lut(self) -> torch.Tensor:
        return fp4_e2m1.LUT.clone()

    def _scales(self, w: torch.Tensor):
        """(groups [N, K/16, 16] float32, bad groups, block scales as float32, global scale [1])."""
        wg = grouped(w, BLOCK)
        bad = bad_groups(wg)
        wf = finite_or_zero(wg)
        g = global_scale(w)
        s = e4m3(wf.abs().amax(dim=-1) / (fp4_e2m1.MAX * g)).float()
        return wf, bad, torch.where(s == 0, torch.ones(()), s), g

    def quantize_ref(self, w: torch.Tensor) -> QuantParts:
        wf, bad, s, g = self._scales(w)
        wf = wf.float()
        codes = fp4_e2m1.encode(torch.where(wf == 0, wf, wf / (s * g)[..., None]))  # 0 / 0's NaN sign is the CPU's
        codes = torch.where(bad[..., None], torch.zeros((), dtype=torch.uint8), codes).reshape(w.shape)
        s = torch.where(bad, torch.full((), float("nan")), s)
        return QuantParts(codes=codes, scales=s.to(torch.float8_e4m3fn), global_scale=g)

    def error_bound(self, w: torch.Tensor) -> torch.Tensor:
        """fp4_e2m1.rounding_error(x / (s * g)) * s * g per element: half the e2m1 gap at that magnitude, or the
        clipped excess over 6 (E4M3 rounding of s, up to 1/16 relative, or an underflowed subnormal s, can push
        |x / (s g)| past 6), plus float32 slack for the division, the product and the global-scale multiply."""
        wf, bad, s, g = self._scales(w)
        step = (s.double() * g.double())[..., None]
        bound = (fp4_e2m1.rounding_error(wf.double() / step) * step).reshape(w.shape).float()
        return poison_bound(bound + slack(w.float(), bound), bad, BLOCK)
