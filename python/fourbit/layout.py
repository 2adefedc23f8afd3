"""Byte layouts, kept apart from the formats: nibble packing, bitsandbytes' nibble order, Blackwell scale tiles.

Nibble order (fourbit, OCP, torch, Triton dot_scaled): element 2i in the LOW nibble, 2i+1 in the HIGH nibble.
bitsandbytes stores element 2i in the HIGH nibble; `swap_nibbles` converts either way.
"""
from __future__ import annotations

import torch


def pack_nibbles_ref(codes: torch.Tensor) -> torch.Tensor:
    """Reference pack. codes: uint8 [..., 2n], values 0..15 -> uint8 [..., n] (element 2i in the low nibble)."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_nibbles_ref(packed: torch.Tensor) -> torch.Tensor:
    """Reference unpack. packed: uint8 [..., n] -> uint8 [..., 2n] codes 0..15."""
    return torch.stack([packed & 0xF, packed >> 4], dim=-1).flatten(-2)


def swap_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Convert between low-nibble-first (fourbit) and high-nibble-first (bitsandbytes) packing of uint8 bytes."""
    return ((packed & 0xF) << 4) | (packed >> 4)


def blocked_scale_offsets(rows: int, cols: int) -> torch.Tensor:
    """int64 [rows, cols]: byte offset of scale (r, c) in the 128x4-tile layout of cuBLAS / torch._scaled_mm /
    Blackwell block-scaled MMA (shared FORMATS.md): tiles of 128 rows x 4 scale columns, 512 bytes each,
    offset = ((r // 128) * ceil(C / 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4."""
    r = torch.arange(rows).view(-1, 1)
    c = torch.arange(cols).view(1, -1)
    tiles_c = (cols + 3) // 4
    return ((r // 128) * tiles_c + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4


def to_blocked_scales(scales: torch.Tensor) -> torch.Tensor:
    """[R, C] one-byte scales (float8_e4m3fn / float8_e8m0fnu / uint8) -> flat bytes in the 128x4-tile layout,
    rows padded to a multiple of 128 and columns to a multiple of 4 with zero bytes. Returns uint8
    [ceil(R/128)*128 * ceil(C/4)*4]."""
    if scales.dim() != 2 or scales.element_size() != 1:
        raise ValueError(f"scales must be a 2-D tensor of one-byte elements, got {tuple(scales.shape)} {scales.dtype}")
    R, C = scales.shape
    Rp, Cp = -(-R // 128) * 128, -(-C // 4) * 4
    out = torch.zeros(Rp * Cp, dtype=torch.uint8, device=scales.device)
    out[blocked_scale_offsets(R, C).to(scales.device).flatten()] = scales.contiguous().view(torch.uint8).flatten()
    return out


def from_blocked_scales(blocked: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Inverse of to_blocked_scales: uint8 [rows, cols]."""
    return blocked[blocked_scale_offsets(rows, cols).to(blocked.device)]
