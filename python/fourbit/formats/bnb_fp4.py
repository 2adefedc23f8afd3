"""bnb_fp4: bitsandbytes' own 4-bit float, NOT fp4_e2m1, kept so bitsandbytes "fp4" checkpoints can be read.

Codebook, code 0..15: [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12 (bit 3 is the sign).
bitsandbytes builds it from a Python list where "-0" is the integer 0, so code 8 decodes to +0.0; so does ours.
Quantization is nf4's rule with this codebook (absmax per block, reciprocal multiply, ties to the lower value:
-0.2083 -> -0.25, +0.2083 -> +0.1667, as bitsandbytes 0.50.2 on CPU). The two zeros sort code 0 first, so the
bound between them is 0: t <= 0 near zero gives code 0 and small t > 0 gives code 8, exactly as bitsandbytes does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .nf4 import _AbsmaxCodebook

CODEBOOK = torch.tensor([0, 0.0625, 8, 12, 4, 6, 2, 3, 0.0, -0.0625, -8, -12, -4, -6, -2, -3],
                        dtype=torch.float32) / 12


@dataclass(frozen=True)
class BnbFP4(_AbsmaxCodebook):
    """block_size: power of two >= 16 (default 64). double_quant: compress the absmax to 8 bits (bitsandbytes)."""

    name: ClassVar[str] = "bnb_fp4"
    codebook: ClassVar[torch.Tensor] = CODEBOOK
