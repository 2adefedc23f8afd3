"""int8: 8-bit integers, symmetric per-channel (or per group) or asymmetric with a zero point.

Storage: symmetric codes int8 in [-127, 127] (the value itself); asymmetric codes uint8 in [0, 255] with zeros uint8;
scales float32 [N, K/G]. No lookup table: the kernels use the integer directly.
Rules and bound: _integer.py. NaN/Inf policy: a group holding NaN or Inf gets a NaN scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from ._integer import IntegerFormat


@dataclass(frozen=True)
class Int8(IntegerFormat):
    """group_size: None (per-channel, the default) or a positive multiple of 16. symmetric: False adds zero points."""

    group_size: Optional[int] = None
    symmetric: bool = True

    name: ClassVar[str] = "int8"
    bits: ClassVar[int] = 8
    sym_range: ClassVar = (-127, 127, 0)

    def check_group_size(self) -> None:
        if self.group_size is not None and (not isinstance(self.group_size, int) or self.group_size <= 0
                                            or self.group_size % 16):
            raise ValueError(f"int8: group_size must be None (per-channel) or a positive multiple of 16, "
                             f"got {self.group_size!r}")

    def code_dtype(self) -> torch.dtype:
        return torch.int8 if self.symmetric else torch.uint8
