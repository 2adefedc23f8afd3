"""nf4: the QLoRA NormalFloat4 codebook with an absmax scale per block (default 64), optional double quant.

Bit-compatible with bitsandbytes 0.50.2: same codebook, same reciprocal-multiply and tie rule (see _absmax.py).
Storage: codes uint8 (element 2i in the LOW nibble here; bitsandbytes' checkpoints put it in the HIGH nibble:
fourbit.layout.swap_nibbles converts), absmax float32 [N, K/G] or, with double quant, its DoubleQuant form.
NaN/Inf policy: a block holding NaN or Inf gets a NaN absmax and the 0.0 code, so it dequantizes to NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from . import _absmax
from ._base import Format, QuantParts

#: NF4 codebook, code 0..15 (float32 values of bitsandbytes / QLoRA)
CODEBOOK = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
], dtype=torch.float32)


@dataclass(frozen=True)
class _AbsmaxCodebook(Format):
    """Shared config of the absmax-codebook formats (nf4, bnb_fp4)."""

    block_size: int = 64
    double_quant: bool = False

    bits: ClassVar[int] = 4
    codebook: ClassVar[torch.Tensor]

    def __post_init__(self):
        if not isinstance(self.block_size, int) or self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"{self.name}: block_size must be a power of two >= 16, got {self.block_size!r}")
        if not isinstance(self.double_quant, bool):
            raise TypeError(f"{self.name}: double_quant must be a bool, got {self.double_quant!r}")

    @property
    def group_size(self) -> int:
        return self.block_size

    def lut(self) -> torch.Tensor:
        return self.codebook.clone()

    def quantize_ref(self, w: torch.Tensor) -> QuantParts:
        return _absmax.quantize(w, self.block_size, self.codebook, self.double_quant)

    def error_bound(self, w: torch.Tensor) -> torch.Tensor:
        return _absmax.error_bound(w, self.block_size, self.codebook, self.quantize_ref(w))


@dataclass(frozen=True)
class NF4(_AbsmaxCodebook):
    """block_size: power of two >= 16 (default 64). double_quant: compress the absmax to 8 bits (bitsandbytes)."""

    name: ClassVar[str] = "nf4"
    codebook: ClassVar[torch.Tensor] = CODEBOOK
