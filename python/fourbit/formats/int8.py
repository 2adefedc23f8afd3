"""int8: 8-bit integers, symmetric per-channel (or per group) or asymmetric with a zero point.

Storage: symmetric codes int8 in [-127, 127] (the value itself); asymmetric codes uint8 in [0, 255] with zeros uint8;
scales float32 [N, K/G]. No lookup table: the kernels use the integer directly.
NaN/Inf policy: a group holding NaN or Inf gets a NaN scale, so it dequantizes to NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from . import _integer
from ._base import Format, QuantParts


@dataclass(frozen=True)
class Int8(Format):
    """group_size: None (per-channel, the default) or a positive multiple of 16. symmetric: False adds zero points."""

    group_size: Optional[int] = None
    symmetric: bool = True

    name: ClassVar[str] = "int8"
    bits: ClassVar[int] = 8

    def __post_init__(self):
        if self.group_size is not None and (not isinstance(self.group_size, int) or self.group_size <= 0
                                            or self.group_size % 16):
            raise ValueError(f"int8: group_size must be None (per-channel) or a positive multiple of 16, "
                             f"got {self.group_size!r}")
        if not isinstance(self.symmetric, bool):
            raise TypeError(f"int8: symmetric must be a bool, got {self.symmetric!r}")

    @property
    def has_zeros(self) -> bool:  # type: ignore[override]
        return not self.symmetric

    @property
    def variant(self) -> str:
        return "sym" if self.symmetric else "asym"

    def code_dtype(self) -> torch.dtype:
        return torch.int8 if self.symmetric else torch.uint8

    def quantize_ref(self, w: torch.Tensor) -> QuantParts:
        G = self.group(w.shape[1])
        if self.symmetric:
            return _integer.quantize(w, G, 8, True, -127, 127, 0, torch.int8)
        return _integer.quantize(w, G, 8, False, 0, 255, 0, torch.uint8)

    def error_bound(self, w: torch.Tensor) -> torch.Tensor:
        return _integer.error_bound(w, self.group(w.shape[1]), self.symmetric, self.quantize_ref(w).scales)
