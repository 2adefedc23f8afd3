"""int4: group-wise 4-bit integers, symmetric or asymmetric (zero point), groups 32/64/128/256 or per-channel.

Storage: codes uint8 0..15 (packed two per byte, element 2i in the low nibble); scales float32 [N, K/G];
asymmetric adds zeros uint8 [N, K/G]. Symmetric codes hold q + 8 (q in [-8, 7]); the lookup table is [-8..7].
NaN/Inf policy: a group holding NaN or Inf gets a NaN scale (and zero point 0), so it dequantizes to NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from . import _integer
from ._base import Format, QuantParts

GROUP_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class Int4(Format):
    """group_size: 32, 64, 128, 256, or None for per-channel. symmetric: False adds an integer zero point."""

    group_size: Optional[int] = 128
    symmetric: bool = False

    name: ClassVar[str] = "int4"
    bits: ClassVar[int] = 4

    def __post_init__(self):
        if self.group_size is not None and self.group_size not in GROUP_SIZES:
            raise ValueError(f"int4: group_size must be one of {GROUP_SIZES} or None (per-channel), got {self.group_size}")
        if not isinstance(self.symmetric, bool):
            raise TypeError(f"int4: symmetric must be a bool, got {self.symmetric!r}")

    @property
    def has_zeros(self) -> bool:  # type: ignore[override]
        return not self.symmetric

    @property
    def variant(self) -> str:
        return "sym" if self.symmetric else "asym"

    def lut(self) -> torch.Tensor:
        start = -8 if self.symmetric else 0
        return torch.arange(start, start + 16, dtype=torch.float32)

    def quantize_ref(self, w: torch.Tensor) -> QuantParts:
        if self.symmetric:
            return _integer.quantize(w, self.group(w.shape[1]), 4, True, -8, 7, 8, torch.uint8)
        return _integer.quantize(w, self.group(w.shape[1]), 4, False, 0, 15, 0, torch.uint8)

    def error_bound(self, w: torch.Tensor) -> torch.Tensor:
        return _integer.error_bound(w, self.group(w.shape[1]), self.symmetric, self.quantize_ref(w).scales)
