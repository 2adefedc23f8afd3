"""fp4_e2m1: the OCP Microscaling 4-bit float element (1 sign, 2 exponent bits with bias 1, 1 mantissa bit).

Codes 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 is the sign (0b1000 is -0). No Inf, no NaN. It is the element type
of nvfp4 and mxfp4, which add the block scales; it has no scale of its own, so it is an element codec, not a
weight format.

Encoding (`encode`): round to nearest, ties to the even code; |v| > 5 saturates to 6 (5 itself ties to 4); the sign
bit is kept, so a small negative value becomes -0 (0b1000), as the PTX cvt.rn.satfinite.e2m1x2 does. Inputs must
be finite: NaN/Inf never reach the encoder, because the formats' NaN policy poisons the whole block's scale first.

Nibble order when packed: element 2i in the LOW nibble, 2i+1 in the HIGH nibble (OCP, torch, Triton dot_scaled).
"""
from __future__ import annotations

import torch

from ._codebook import half_gap, nearest_index

#: magnitude of codes 0..7
MAGNITUDES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=torch.float32)
#: value of each code 0..15 (the 16-entry lookup table the kernels use)
LUT = torch.cat([MAGNITUDES, -MAGNITUDES])
MAX = 6.0


def encode(v: torch.Tensor) -> torch.Tensor:
    """float32 tensor -> uint8 codes 0..15 (RNE on the code, ties to even, saturating at +-6, sign kept).

    The ties, one per decision bound (magnitudes): 0.25 -> 0 (code 0), 0.75 -> 1 (code 2), 1.25 -> 1 (code 2),
    1.75 -> 2 (code 4), 2.5 -> 2 (code 4), 3.5 -> 4 (code 6), 5 -> 4 (code 6).
    """
    mag = nearest_index(v.float().abs(), MAGNITUDES, ties="even").to(torch.uint8)
    return mag | (torch.signbit(v).to(torch.uint8) << 3)


def decode(codes: torch.Tensor) -> torch.Tensor:
    """uint8 codes 0..15 -> float32 values."""
    return LUT.to(codes.device)[codes.long()]


def rounding_error(v: torch.Tensor) -> torch.Tensor:
    """Worst-case |decode(encode(v)) - v| at v: half the grid gap around |v| (0.25 below 2, 0.5 up to 4, 1 up to 6),
    or |v| - 6 where saturation clips."""
    return half_gap(v.abs(), MAGNITUDES)
