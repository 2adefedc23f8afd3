"""int4: group-wise 4-bit integers, symmetric or asymmetric (zero point), groups 32/64/128/256 or per-channel.

Storage: codes uint8 0..15 (packed two per byte, element 2i in the low nibble); scales float32 [N, K/G];
asymmetric adds zeros uint8 [N, K/G]. Symmetric codes hold q + 8 (q in [-8, 7]); the lookup table is [-8..7].
Rules and bound: _integer.py. NaN/Inf policy: a group holding NaN or Inf gets a NaN scale (and zero point 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from ._integer import IntegerFormat

GROUP_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class Int4(IntegerFormat):
    """group_size: 32, 64, 128, 256, or None for per-channel. symmetric: False adds an integer zero point."""

    group_size: Optional[int] = 128
    symmetric: bool = False

    name: ClassVar[str] = "int4"
    bits: ClassVar[int] = 4
    sym_range: ClassVar = (-8, 7, 8)  # q in [-8, 7] stored as q + 8

    def check_group_size(self) -> None:
        if self.group_size is not None and self.group_size not in GROUP_SIZES:
            raise ValueError(f"int4: group_size must be one of {GROUP_SIZES} or None (per-channel), "
                             f"got {self.group_size}")

    def lut(self) -> torch.Tensor:
        start = -8 if self.symmetric else 0
        return torch.arange(start, start + 16, dtype=torch.float32)
